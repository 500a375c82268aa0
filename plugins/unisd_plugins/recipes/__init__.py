"""Built-in plugin: the shipped recipes (every ``*.yaml`` beside this file)."""

from pathlib import Path

from unisd import hookimpl

HERE = Path(__file__).parent
DEFAULT_RECIPE = "demo"  # what `unisd train` runs when no --recipe is given


@hookimpl
def unisd_register(registry):
    for path in sorted(HERE.glob("*.yaml")):
        registry.recipes.add(path.stem, path, description=_summary(path), default=path.stem == DEFAULT_RECIPE)


def _summary(path: Path) -> str:
    """The first line of the recipe's description (read without a YAML parser)."""
    text = path.read_text(encoding="utf-8")
    _, _, rest = text.partition("description: |")
    lines = [ln.strip() for ln in rest.splitlines()[1:] if ln.startswith("  ")]
    return lines[0].rstrip(":") if lines else ""
