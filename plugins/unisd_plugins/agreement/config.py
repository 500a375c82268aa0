"""Config models of the agreement plugin's components: importing them needs no torch, so a recipe
validates without importing the components themselves (registered with ``config=``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from unisd.components.base import ComponentConfig
from unisd.components.kinds import ContextBuilderConfig


class InductionConfig(ContextBuilderConfig):
    num_instructions: int = Field(100, ge=1, description="instructions to induce (reference: up to 100)")
    num_demos: int = Field(3, ge=1, description="training examples shown per induction prompt (reference runner: 3)")
    temperature: float = Field(0.7, gt=0.0)
    max_new_tokens: int = Field(256, ge=8)


class RetrievalConfig(ContextBuilderConfig):
    """Nearest neighbours of each item's ``retrieval_text``."""

    encoder: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="HF model id or local directory of a sentence encoder (mean-pooled, L2-normalised)",
    )
    fallback: Literal["tfidf", "error"] = Field(
        "tfidf", description="when the encoder cannot be loaded: lexical TF-IDF retrieval, or stop"
    )
    lexical: bool = Field(False, description="use TF-IDF retrieval directly, without an encoder")
    batch_size: int = Field(64, ge=1)


class AgreementConfig(ComponentConfig):
    """Multi-teacher agreement (spec §2a)."""

    contexts: dict[str, Any] = Field(
        default_factory=lambda: {"type": "random", "k": 3},
        description="context builder config: type (random|retrieval|induction|…), k, demos, seed, …",
    )
    granularity: Literal["token", "sequence"] = "token"
    statistic: Literal["variance", "std", "range", "entropy"] = Field(
        "variance",
        description="spread of the K log-probs: variance (token: unbiased; sequence: biased), std, "
        "max−min range, or log K − entropy of the normalised probabilities",
    )
    gamma: float = Field(1.0, ge=0.0, description="agreement strength γ")
    quantile: float = Field(
        0.95, gt=0.0, le=1.0, description="token level: disagreement is scaled by this masked quantile"
    )
    cap: float = Field(10.0, gt=0.0, description="token level: cap of the scaled disagreement")
    floor: float = Field(0.01, ge=0.0, le=1.0, description="token level: smallest weight")
    temperature: float = Field(1.0, gt=0.0, description="temperature of the K context scores (reference: 1.0)")
    normalization: Literal["fixed", "reference"] = Field(
        "fixed",
        description="'fixed': sequence weights scale each sequence's loss; 'reference': they cancel as in the authors' code",
    )

    @field_validator("contexts")
    @classmethod
    def _check_contexts(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "type" not in v:
            raise ValueError("contexts needs a 'type' (a context builder name)")
        registries = (info.context or {}).get("registries")
        if registries is None:  # validated outside a recipe: the loaded plugins' registries
            from unisd import get_registries

            registries = get_registries()
        builders = registries.context_builders
        if v["type"] not in builders:
            raise ValueError(builders.unknown_message(v["type"]))
        cfg = builders.config(v["type"]).model_validate(v)
        if cfg.k < 2:
            raise ValueError("contexts.k must be at least 2 to measure disagreement")
        return cfg.model_dump()
