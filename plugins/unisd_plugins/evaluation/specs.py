"""The TaskSpecs and GroupSpecs of the built-in benchmarks (registered lazily by ``__init__``).

Each task's YAML is in this folder; its documents come from :mod:`unisd_plugins.evaluation.sources`
(imported only when a task runs), its lm-eval hooks from :mod:`unisd_plugins.evaluation.hooks`.
"""

from __future__ import annotations

from pathlib import Path

from unisd.api import GroupSpec, TaskSpec

#: the folder holding the task YAMLs (lm-eval's include path)
TASK_DIR = Path(__file__).resolve().parent
_SOURCES = "unisd_plugins.evaluation.sources"
_GOLD = f"{_SOURCES}:gold_completion"


def _task(
    name: str,
    benchmark: str,
    metric: str,
    *,
    mc: bool = False,
    breakdown: str | None = None,
    description: str = "",
    write_samples: bool = True,
) -> TaskSpec:
    return TaskSpec(
        name=name,
        include_dir=TASK_DIR,
        primary_metric=metric,
        benchmark=benchmark,
        loglikelihood=mc,
        docs=f"{_SOURCES}:{benchmark}_docs",
        gold_completion=None if mc else _GOLD,
        breakdown_field=breakdown,
        write_samples=write_samples,
        executes_code=metric == "pass@1",
        aliases=(name.removeprefix("unisd_"),),
        description=description,
    )


# GPQA questions must never be written to disk in plain text: write_samples=False
unisd_scienceqa = _task(
    "unisd_scienceqa",
    "scienceqa",
    "acc",
    breakdown="domain",
    description="ScienceQA test, text-only, generated answer letter",
)
unisd_gpqa = _task(
    "unisd_gpqa",
    "gpqa",
    "acc",
    breakdown="domain",
    write_samples=False,
    description="GPQA main (448), generated answer letter",
)
unisd_mbpp = _task("unisd_mbpp", "mbpp", "pass@1", description="MBPP sanitized test (257), sandboxed pass@1")
unisd_humaneval = _task("unisd_humaneval", "humaneval", "pass@1", description="HumanEval (164), sandboxed pass@1")
unisd_cose = _task("unisd_cose", "cose", "acc", description="CoS-E v1.11 validation, generated answer letter")
unisd_toolalpaca = _task(
    "unisd_toolalpaca",
    "toolalpaca",
    "full_acc",
    breakdown="source",
    description="ToolAlpaca real + simulated (214), ReAct action/argument accuracy",
)
unisd_scienceqa_mc = _task(
    "unisd_scienceqa_mc",
    "scienceqa",
    "acc",
    mc=True,
    breakdown="domain",
    description="ScienceQA, log-likelihood of the option letters",
)
unisd_gpqa_mc = _task(
    "unisd_gpqa_mc",
    "gpqa",
    "acc",
    mc=True,
    breakdown="domain",
    write_samples=False,
    description="GPQA, log-likelihood of the option letters",
)
unisd_cose_mc = _task(
    "unisd_cose_mc", "cose", "acc", mc=True, description="CoS-E, log-likelihood of the option letters"
)
unisd_cose_options = _task(
    "unisd_cose_options",
    "cose",
    "acc_norm",
    mc=True,
    description="CoS-E, log-likelihood of each option's text (lm-eval's CommonsenseQA way)",
)

unisd_six = GroupSpec(
    "unisd-six",
    ("unisd_scienceqa", "unisd_gpqa", "unisd_mbpp", "unisd_humaneval", "unisd_cose", "unisd_toolalpaca"),
    description="the six UniSD benchmarks, generated answers",
)
unisd_mc = GroupSpec(
    "unisd-mc",
    ("unisd_scienceqa_mc", "unisd_gpqa_mc", "unisd_cose_mc"),
    description="log-likelihood variants of the multiple-choice benchmarks",
)
