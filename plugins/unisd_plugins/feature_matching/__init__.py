"""Built-in plugin: feature matching (spec §2d)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.losses.add(
        "feature_matching",
        "unisd_plugins.feature_matching.loss:FeatureMatching",
        config="unisd_plugins.feature_matching.config:FeatureMatchingConfig",
        description="match student and teacher hidden states at chosen layers (MSE or cosine)",
    )
