"""Built-in evaluation tasks: lm-eval-harness tasks of the six UniSD benchmarks (YAMLs in this folder).

Generation tasks (student prompt, chat template, greedy): ``unisd_scienceqa``, ``unisd_gpqa``,
``unisd_mbpp``, ``unisd_humaneval``, ``unisd_cose``, ``unisd_toolalpaca`` (group ``unisd-six``);
log-likelihood variants of the MCQA tasks: ``unisd_scienceqa_mc``, ``unisd_gpqa_mc``,
``unisd_cose_mc`` (group ``unisd-mc``), and ``unisd_cose_options`` (each option's text scored, as
lm-eval scores CommonsenseQA). Each is a :class:`~unisd.components.evaluators.TaskSpec` (or
``GroupSpec``) in :mod:`unisd_plugins.evaluation.specs`, registered lazily in ``registry.evaluators``.
"""

from unisd import hookimpl

_SPECS = "unisd_plugins.evaluation.specs"
DEFAULT_GROUP = "unisd-six"  # what `unisd eval` runs when no --tasks is given

# registry name → description; the spec is the attribute of specs.py named like it ('-' → '_').
# Kept here so that registering imports nothing.
_ENTRIES = {
    "unisd_scienceqa": "ScienceQA test (text-only), generated answer letter; metric acc",
    "unisd_gpqa": "GPQA main, generated answer letter; metric acc",
    "unisd_mbpp": "MBPP sanitized test, sandboxed pass@1",
    "unisd_humaneval": "HumanEval, sandboxed pass@1",
    "unisd_cose": "CoS-E v1.11 validation, generated answer letter; metric acc",
    "unisd_toolalpaca": "ToolAlpaca real + simulated, ReAct scoring; metric full_acc",
    "unisd_scienceqa_mc": "ScienceQA, log-likelihood of the option letters; metric acc",
    "unisd_gpqa_mc": "GPQA, log-likelihood of the option letters; metric acc",
    "unisd_cose_mc": "CoS-E, log-likelihood of the option letters; metric acc",
    "unisd_cose_options": "CoS-E, log-likelihood of each option's text; metric acc_norm",
    "unisd-six": "group: the six generation tasks",
    "unisd-mc": "group: the three log-likelihood tasks",
}


@hookimpl
def unisd_register(registry):
    for name, description in _ENTRIES.items():
        registry.evaluators.add(
            name, f"{_SPECS}:{name.replace('-', '_')}", description=description, default=name == DEFAULT_GROUP
        )
