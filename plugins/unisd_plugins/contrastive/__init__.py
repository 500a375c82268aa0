"""Built-in plugin: token-level contrastive loss against a negative ("bad teacher") context (spec §2c)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.losses.add(
        "contrastive",
        "unisd_plugins.contrastive.loss:TokenContrastive",
        config="unisd_plugins.contrastive.config:ContrastiveConfig",
        description="hinge: stay closer to the good teacher than to a bad-teacher context, per token",
    )
