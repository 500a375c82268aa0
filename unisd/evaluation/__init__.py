"""Evaluation of UniSD models through lm-eval-harness (see ``docs/evaluation.md``).

Modules (imported lazily by the CLI; none imports torch at package import):

- :mod:`~unisd.sandbox`: ``run_program`` / ``run_many`` execute model-written code in a
  locked-down subprocess;
- :mod:`~unisd.components.evaluators`: ``TaskSpec`` / ``GroupSpec``, what a plugin registers in
  ``registry.evaluators`` to add a task or group, and ``DataUnavailable``;
- :mod:`~unisd.evaluation.tasks`: task and group lookup through that registry (``resolve_tasks``,
  ``describe_tasks``, ``include_paths``…) and ``select_tasks``, which hands every other name to
  lm-eval's ``TaskManager``; the built-in tasks (``unisd-six``, ``unisd-mc``) are the ``evaluation``
  plugin's, with their scoring (MCQA letters, code pass@1, ToolAlpaca calls) in
  ``unisd_plugins.evaluation.scoring``;
- :mod:`~unisd.evaluation.runner`: ``evaluate_model(model, tokenizer, tasks, limit, data_dir, output_dir)``;
- :mod:`~unisd.evaluation.retention`: gold-completion fit, base retention (PPLret), JSD to the base;
- :mod:`~unisd.evaluation.compare`: ``unisd compare`` (``unisd eval`` itself is :mod:`unisd.cli.eval_run`).
"""
