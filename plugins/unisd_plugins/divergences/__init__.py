"""Built-in divergences: forward KL, reverse KL and generalized JSD(β)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.divergences.add(
        "forward_kl",
        "unisd_plugins.divergences.functions:ForwardKL",
        default=True,
        description="KL(teacher ‖ student), mean-seeking (reference default, α=0)",
    )
    registry.divergences.add(
        "reverse_kl",
        "unisd_plugins.divergences.functions:ReverseKL",
        description="KL(student ‖ teacher), mode-seeking (SDFT)",
    )
    registry.divergences.add(
        "jsd", "unisd_plugins.divergences.functions:GeneralizedJSD", description="generalized JSD(β), bounded by log 2"
    )
