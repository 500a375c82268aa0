"""Built-in generation backends for student rollouts."""

from unisd import hookimpl


@hookimpl
def unisd_register(registry):
    registry.generators.add(
        "hf",
        "unisd_plugins.generation.hf:HFGenerate",
        config="unisd_plugins.generation.config:HFGenerateConfig",
        default=True,
        description="transformers generate() (CPU or GPU)",
    )
    registry.generators.add(
        "vllm",
        "unisd_plugins.generation.vllm_engine:VLLMGenerate",
        config="unisd_plugins.generation.config:VLLMConfig",
        description="a vLLM engine in the training process, synced to the student's weights each step (needs vllm)",
    )
