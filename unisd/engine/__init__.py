"""The training engine: data → rollout → teacher scoring → divergence → guards → loss terms → update.

Modules, in the order data flows through them: :mod:`~unisd.engine.data` (records and their
schedule), :mod:`~unisd.engine.batching` (chat rendering and padding), :mod:`~unisd.engine.rollout`
(student samples), :mod:`~unisd.engine.scoring` (aligned log-probs and features),
:mod:`~unisd.engine.step` (divergence → guards → weights → loss terms), :mod:`~unisd.engine.reduction`
(masked normalisation), :mod:`~unisd.engine.trainer` (the loop), :mod:`~unisd.engine.checkpoint`
(atomic save and exact resume), :mod:`~unisd.runs.launch` (``unisd train``).
"""
