"""The training engine: data → rollout → teacher scoring → divergence → guards → loss terms → update.

Modules, in the order data flows through them: :mod:`~unisd.engine.batching` (chat rendering and
padding), :mod:`~unisd.engine.rollout` (student samples), :mod:`~unisd.engine.scoring` (aligned
log-probs and features), :mod:`~unisd.engine.objective` (loss assembly), :mod:`~unisd.engine.trainer`
(the loop), :mod:`~unisd.engine.checkpoint` (atomic save and exact resume).
"""
