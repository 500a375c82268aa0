"""Built-in plugin: multi-teacher agreement (spec §2a) — the disagreement measure and the three
context builders (random, retrieval, induction)."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.disagreements.add(
        "agreement",
        "unisd_plugins.agreement.measure:Agreement",
        config="unisd_plugins.agreement.config:AgreementConfig",
        description="down-weight tokens/sequences where K auxiliary teacher contexts disagree",
    )
    registry.context_builders.add(
        "random",
        "unisd_plugins.agreement.builders:RandomContexts",
        config="unisd.components.kinds:ContextBuilderConfig",
        description="K random donor items (never the item itself)",
    )
    registry.context_builders.add(
        "retrieval",
        "unisd_plugins.agreement.builders:RetrievalContexts",
        config="unisd_plugins.agreement.config:RetrievalConfig",
        description="K nearest neighbours by sentence embedding (TF-IDF fallback), self excluded",
    )
    registry.context_builders.add(
        "induction",
        "unisd_plugins.agreement.induction:InductionContexts",
        config="unisd_plugins.agreement.config:InductionConfig",
        description="K instructions induced by the model itself from training examples",
    )
