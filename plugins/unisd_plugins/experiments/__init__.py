"""Built-in plugin: the shipped replication experiments (every ``*.yaml`` beside this file)."""

from pathlib import Path

from unisd import hookimpl

HERE = Path(__file__).parent


@hookimpl
def unisd_register(registry):
    for path in sorted(HERE.glob("*.yaml")):
        registry.experiments.add(path.stem, path, description="unisd replicate experiment")
