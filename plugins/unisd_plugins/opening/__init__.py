"""Built-in plugin: skip or down-weight the first completion tokens (the opening)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.guards.add(
        "skip_opening",
        "unisd_plugins.opening.guard:SkipOpening",
        config="unisd_plugins.opening.config:SkipOpeningConfig",
        description="drop (or down-weight) the first N completion tokens from the divergence",
    )
