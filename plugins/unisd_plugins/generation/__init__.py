"""Built-in generation backends for student rollouts."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.generators.add("hf", "unisd_plugins.generation.hf:HFGenerate", description="transformers generate() (CPU or GPU)")
