"""Built-in divergences: forward KL, reverse KL and generalized JSD(β)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.divergences.add(
        "forward_kl",
        "unisd_plugins.divergences.functions:ForwardKL",
        config="unisd.components.kinds:DivergenceConfig",
        default=True,
        description="KL(teacher ‖ student), mean-seeking (reference default, α=0)",
    )
    registry.divergences.add(
        "reverse_kl",
        "unisd_plugins.divergences.functions:ReverseKL",
        config="unisd.components.kinds:DivergenceConfig",
        description="KL(student ‖ teacher), mode-seeking (SDFT)",
    )
    registry.divergences.add(
        "jsd",
        "unisd_plugins.divergences.functions:GeneralizedJSD",
        config="unisd_plugins.divergences.config:JSDConfig",
        description="generalized JSD(β), bounded by log 2",
    )
