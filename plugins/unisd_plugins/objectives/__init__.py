"""Built-in objectives: on-policy distillation (with GKD's gold/sampled mixture), SFT and SSD."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.objectives.add(
        "distill",
        "unisd_plugins.objectives.builtin:Distill",
        config="unisd_plugins.objectives.config:DistillConfig",
        default=True,
        description="on-policy self-distillation: the student samples, the teacher scores, the "
        "divergence is minimised (on_policy_fraction < 1: GKD's mixture with gold "
        "completions)",
    )
    registry.objectives.add(
        "sft",
        "unisd_plugins.objectives.builtin:SFT",
        config="unisd_plugins.objectives.config:SFTConfig",
        description="cross-entropy on the gold completion",
    )
    registry.objectives.add(
        "ssd",
        "unisd_plugins.objectives.builtin:SSD",
        config="unisd.components.kinds:ObjectiveConfig",
        description="cross-entropy on the base model's own unverified samples",
    )
