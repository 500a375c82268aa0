"""Built-in plugin: divergence clipping (spec §2e)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.guards.add(
        "clip",
        "unisd_plugins.clipping.guard:DivergenceClip",
        config="unisd_plugins.clipping.config:ClipConfig",
        description="cap per-token divergences (static or adaptive quantile), before weighting",
    )
