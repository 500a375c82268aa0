"""Evaluation of UniSD models through lm-eval-harness (see ``docs/evaluation.md``).

Modules (imported lazily by the CLI; none imports torch at package import):

- :mod:`~unisd.evaluation.sandbox`: ``run_program`` / ``run_many`` execute model-written code in a
  locked-down subprocess;
- :mod:`~unisd.evaluation.metrics`: MCQA letter extraction, code extraction and pass@1, ToolAlpaca
  ReAct scoring;
- :mod:`~unisd.evaluation.tasks`: the lm-eval tasks (``unisd-six``, ``unisd-mc``) and their data loaders;
- :mod:`~unisd.evaluation.runner`: ``evaluate_model(model, tokenizer, tasks, limit, data_dir, output_dir)``;
- :mod:`~unisd.evaluation.retention`: gold-completion fit, base retention (PPLret), JSD to the base;
- :mod:`~unisd.evaluation.cli` / :mod:`~unisd.evaluation.compare`: ``unisd eval`` / ``unisd compare``.
"""
