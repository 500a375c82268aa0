"""The recipe model: fixed sections plus plugin-contributed component configs.

Component configs are discriminated by ``type``, the component's registry name. The union is built
from the registries once plugins are loaded, so a third-party component validates its own config
and appears in ``unisd recipe schema`` with no core change.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, ClassVar, Literal, Union, cast

from pydantic import Field, create_model, model_validator

from unisd.components.base import ComponentConfig, StrictModel
from unisd.recipe.sections import (
    CheckpointConfig,
    DataConfig,
    DistributedConfig,
    EvaluationConfig,
    GenerationConfig,
    LoggingConfig,
    LoraConfig,
    ModelConfig,
    OptimConfig,
    PrecisionConfig,
    TrainingConfig,
)
from unisd.registries import COMPONENT_KINDS, Registries
from unisd.registry import DuplicateEntryError, Registry


class RecipeBase(StrictModel):
    """A complete, validated description of one run."""

    #: the registries this recipe model was built from (set by :func:`recipe_model`); validation passes
    #: them to every validator as ``info.context["registries"]``
    registries: ClassVar[Any] = None

    name: str = Field("custom", description="recipe name, used in run directories and tables")
    description: str = ""
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    objective: Any = None
    divergence: Any = None
    components: list[Any] = Field(default_factory=list)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    precision: PrecisionConfig = Field(default_factory=PrecisionConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    @model_validator(mode="after")
    def _one_teacher(self) -> RecipeBase:
        teachers = [c.type for c in self.components if getattr(c, "_unisd_kind", None) == "teacher"]
        if len(teachers) > 1:
            raise ValueError(f"components: at most one teacher provider, got {teachers}")
        names = [c.name or c.type for c in self.components]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(
                f"components: {', '.join(dup)} listed more than once; give each a name: of its own "
                "(e.g. name: early and name: late) to use one type twice"
            )
        term = self.divergence.name or self.divergence.type  # the divergence's loss term is named like a component
        if term in names:
            raise ValueError(
                f"components: {term!r} is also the name of the divergence's loss term; give the "
                "component (or the divergence) another name:"
            )
        return self

    @model_validator(mode="after")
    def _generations_need_sampling(self) -> RecipeBase:
        if self.generation.num_generations > 1 and not getattr(type(self.objective), "samples", True):
            raise ValueError(
                f"generation.num_generations > 1 needs sampled completions; objective "
                f"{self.objective.type!r} trains on the gold completion only (set num_generations: 1)"
            )
        return self

    def score_temperature(self) -> float:
        """The temperature of student and teacher log-probs: ``objective.score_temperature``, else the
        generation temperature, and 1.0 when generation is greedy (temperature 0)."""
        gen_t = self.generation.temperature
        return self.objective.score_temperature or (gen_t if gen_t > 0 else 1.0)


def _tagged(name: str, base: type, kind: str) -> type[ComponentConfig]:
    """The config model ``base`` with ``type`` narrowed to ``Literal[name]`` (one model per registry name)."""
    narrowed: Any = Literal[name]  # a Literal of a name known at run time only
    model = cast(
        "type[ComponentConfig]",
        create_model(
            f"{_camel(name)}Config",
            __base__=base,
            __module__=base.__module__,
            type=(narrowed, Field(name, description=f"{kind} '{name}'")),
        ),
    )
    model.__doc__ = base.__doc__
    model._unisd_kind = kind
    return model


def _camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.replace("-", "_").split("_"))


def _union(models: list[type]) -> Any:
    if not models:
        return Any
    if len(models) == 1:
        return Annotated[models[0], Field(discriminator="type")]
    return Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007 (built from a runtime list)


def _list_of(item: Any) -> Any:
    """``list[item]`` for an item type built at run time."""
    return list[item]


def _tagged_all(reg: Registry, kind: str) -> list[type]:
    return [_tagged(n, reg.config(n), kind) for n in reg.names()]


def _registered_default(reg: Registry, description: str) -> Any:
    """``{"type": <the registry's default>}`` when a plugin registered one (``default=True``), else
    the field is required: the core names no built-in."""
    name = reg.default
    if name is None:
        return Field(..., description=f"{description} (no plugin registers a default {reg.kind})")
    return Field(default_factory=lambda: {"type": name}, validate_default=True, description=description)


@functools.lru_cache(maxsize=8)
def _build(registries_id: int, registries: Registries) -> type[RecipeBase]:
    component_models: list[type] = []
    owner: dict[str, Registry] = {}
    for attr in COMPONENT_KINDS:
        reg: Registry = getattr(registries, attr)
        for n in reg.names():
            if n in owner:
                other = owner[n]
                raise DuplicateEntryError(
                    f"component name {n!r} is registered as {other.kind} by {other.origin(n)} and as "
                    f"{reg.kind} by {reg.origin(n)}; recipe component names must be unique across kinds"
                )
            owner[n] = reg
        component_models += _tagged_all(reg, reg.kind)
    data_model = create_model(
        "Data",
        __base__=DataConfig,
        dataset=(
            _union(_tagged_all(registries.datasets, "dataset")),
            _registered_default(registries.datasets, "a dataset adapter config; 'type' names the adapter"),
        ),
    )
    generation_model = create_model(
        "Generation",
        __base__=GenerationConfig,
        backend=(
            _union(_tagged_all(registries.generators, "generator")),
            _registered_default(
                registries.generators, "generation backend; 'type' names it, a bare name stands for its defaults"
            ),
        ),
    )
    divergences = _tagged_all(registries.divergences, "divergence")
    objectives = _tagged_all(registries.objectives, "objective")
    model = create_model(
        "Recipe",
        __base__=RecipeBase,
        data=(data_model, Field(default_factory=data_model)),
        generation=(generation_model, Field(default_factory=generation_model)),
        objective=(
            _union(objectives),
            _registered_default(registries.objectives, "what the student learns from; 'type' names the objective"),
        ),
        divergence=(
            _union(divergences),
            _registered_default(registries.divergences, "per-token divergence; 'type' names it"),
        ),
        components=(
            _list_of(_union(component_models)),
            Field(default_factory=list, description="components in the order they act; 'type' names each"),
        ),
    )
    model.registries = registries
    return model


def recipe_json_schema(registries: Registries | None = None) -> dict:
    """The JSON Schema of a recipe *file*, for editors: the recipe model's schema (every field
    optional, unknown keys refused) plus ``extends``, which names the recipe the file builds on."""
    schema = recipe_model(registries).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "UniSD recipe"
    schema["properties"] = {
        "extends": {
            "type": "string",
            "title": "Extends",
            "description": "a shipped recipe name or a recipe file (relative to this one) whose fields "
            "this file starts from; mappings merge, lists are replaced",
        },
        **schema["properties"],
    }
    return schema


def recipe_model(registries: Registries | None = None) -> type[RecipeBase]:
    """The recipe model for the loaded plugins (cached)."""
    if registries is None:
        from unisd.plugins import get_registries

        registries = get_registries()
    return _build(id(registries), registries)
