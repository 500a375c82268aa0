"""Built-in plugin: datasets (registration only; implementation modules are imported lazily)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    add = registry.datasets.add
    add(
        "mbpp",
        "unisd_plugins.datasets.mbpp:MBPPAdapter",
        description="MBPP code generation (full config for train; local mbpp.jsonl / sanitized-mbpp.json)",
    )
    add(
        "cose",
        "unisd_plugins.datasets.cose:CoSEAdapter",
        description="CoS-E v1.11 commonsense MCQA with abstractive explanations (hub export or raw cos-e + "
        "CommonsenseQA files)",
    )
    add(
        "scienceqa",
        "unisd_plugins.datasets.scienceqa:ScienceQAAdapter",
        description="ScienceQA text-only MCQA, lecture as context (local: official problems.json + pid_splits.json)",
    )
    add(
        "toolalpaca",
        "unisd_plugins.datasets.toolalpaca:ToolAlpacaAdapter",
        description="ToolAlpaca ReAct tool use (local: official list-of-APIs JSON files)",
    )
    add(
        "gsm8k",
        "unisd_plugins.datasets.gsm8k:GSM8KAdapter",
        description="GSM8K math word problems, '#### n' answers (local: train.jsonl / test.jsonl)",
    )
    add(
        "jsonl",
        "unisd_plugins.datasets.jsonl:JsonlAdapter",
        description="your own training records (JSONL in the unisd.data.records schema)",
    )
    add(
        "reasoning_gym",
        "unisd_plugins.datasets.reasoning_gym:ReasoningGymAdapter",
        default=True,
        description="procedural tasks from the reasoning-gym package (the embedded default; no hub)",
    )
