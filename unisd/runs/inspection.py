"""``unisd inspect RUN``: where the divergence mass of a run sits, and what its teacher knows.

For a run directory it measures, on the run's own recipe (data, teacher template, divergence,
temperature, token budget):

* the per-token divergence between the answer-aware teacher and the student on the student's own
  samples, by completion position and by token class (``opening``: the first ``opening`` tokens;
  ``answer``: the tokens spelling the record's gold answer where the completion last writes it;
  then ``digits``, ``words``, ``format`` (whitespace, punctuation) and ``eos``), with each class's
  share of the total mass and its mean relative to the content tokens (answer, digits and words);
* the accuracy of the student and of its teacher under the same greedy decoding and budget;
* the held-out accuracy over training steps (``evaluation.heldout_every``, plus before/after).

The student is the base model and, when the run has a ``final/adapter``, also the trained one;
the teacher is the base weights with the teacher prompt (the ``base`` teacher). Everything goes to
``RUN/inspect/``: ``inspect.json`` (every number), ``inspect.md`` (tables) and three plots.
"""

from __future__ import annotations

import itertools

import json
import logging
import math
import statistics
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from collections.abc import Sequence

import torch

from unisd.engine.batching import completion_mask_from_ids, pad_token_id, tokenize_prompts
from unisd.runs.heldout import heldout_accuracy, heldout_max_new_tokens
from unisd.engine.rollout import adapter_disabled, eos_ids
from unisd.engine.scoring import score

if TYPE_CHECKING:  # pragma: no cover
    from unisd.components.kinds import DatasetConfig

log = logging.getLogger("unisd.inspect")

CLASSES = ("opening", "answer", "digits", "words", "format", "eos")
POSITION_BINS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256, 512, 1024, 2048)


def answer_positions(pieces: Sequence[str], answer: str) -> set[int]:
    """Indices of the tokens (decoded ``pieces``) that overlap the last occurrence of ``answer``."""
    text = "".join(pieces)
    start = text.rfind(answer.strip()) if answer and answer.strip() else -1
    if start < 0:
        return set()
    end, out, pos = start + len(answer.strip()), set(), 0
    for i, piece in enumerate(pieces):
        if pos < end and pos + len(piece) > start:
            out.add(i)
        pos += len(piece)
    return out


def token_class(position: int, text: str, is_eos: bool, opening: int, in_answer: bool = False) -> str:
    """The class of a completion token (see the module docstring)."""
    if position < opening:
        return "opening"
    if is_eos:
        return "eos"
    if in_answer:
        return "answer"
    if any(ch.isdigit() for ch in text):
        return "digits"
    if any(ch.isalpha() for ch in text):
        return "words"
    return "format"


def position_bin(position: int) -> str:
    """``"3"`` for the first positions, ``"8-11"`` further on."""
    for lo, hi in itertools.pairwise(POSITION_BINS):
        if lo <= position < hi:
            return str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}"
    return f"{POSITION_BINS[-1]}+"


class _Tally:
    """Sums of divergence per key."""

    def __init__(self) -> None:
        self.sum: dict[str, float] = {}
        self.n: dict[str, int] = {}

    def add(self, key: str, value: float) -> None:
        self.sum[key] = self.sum.get(key, 0.0) + value
        self.n[key] = self.n.get(key, 0) + 1

    def table(self, order: Sequence[str]) -> dict[str, dict[str, float]]:
        total = sum(self.sum.values()) or 1.0
        return {
            k: {"tokens": self.n[k], "mean": self.sum[k] / self.n[k], "share": self.sum[k] / total}
            for k in order
            if k in self.n
        }


@torch.no_grad()
def divergence_profile(
    model,
    tokenizer,
    records: list[dict[str, Any]],
    divergence,
    *,
    temperature: float,
    score_temperature: float,
    max_new_tokens: int,
    opening: int,
    seed: int,
    use_base: bool,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Sample one completion per record at ``temperature`` from the student (base weights if
    ``use_base``), score it at ``score_temperature`` with the student and with the base-weight
    teacher on ``teacher_prompt``, and tally the divergence."""
    by_pos, by_cls = _Tally(), _Tally()
    eos = eos_ids(tokenizer, model)
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    for i in range(0, len(records), batch_size):
        rows = records[i : i + batch_size]
        prompt = tokenize_prompts(tokenizer, [r["prompt"] for r in rows])
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        student_ctx = adapter_disabled(model) if use_base else nullcontext()
        with student_ctx:
            out = model.generate(
                input_ids=prompt.ids,
                attention_mask=prompt.mask,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                top_k=0,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad_token_id(tokenizer),
                eos_token_id=eos,
            )
            ids = out[:, prompt.ids.shape[1] :]
            present, _ = completion_mask_from_ids(ids, eos)
            student = score(model, model, prompt, ids, present, temperature=score_temperature)
        with adapter_disabled(model):
            teacher = score(
                model,
                model,
                tokenize_prompts(tokenizer, [r["teacher_prompt"] for r in rows]),
                ids,
                present,
                temperature=score_temperature,
            )
        div = divergence.per_token(teacher.logprobs, student.logprobs)
        for b in range(len(rows)):
            n = int(present[b].sum())
            token_ids = [int(x) for x in ids[b, :n]]
            pieces = [tokenizer.decode([x]) if x not in eos else "" for x in token_ids]
            answer = answer_positions(pieces, str(rows[b].get("answer", "")))
            for j, tok_id in enumerate(token_ids):
                value = float(div[b, j])
                by_pos.add(position_bin(j), value)
                by_cls.add(token_class(j, pieces[j], tok_id in eos, opening, j in answer), value)
    classes = by_cls.table(CLASSES)
    content = [classes[c] for c in ("answer", "digits", "words") if c in classes]
    content_mean = (
        (sum(c["mean"] * c["tokens"] for c in content) / sum(c["tokens"] for c in content)) if content else math.nan
    )
    for c in classes.values():
        c["vs_content"] = c["mean"] / content_mean if content_mean and not math.isnan(content_mean) else math.nan
    positions = by_pos.table(sorted(by_pos.n, key=lambda k: int(k.split("-")[0].rstrip("+"))))
    return {"by_position": positions, "by_class": classes}


def greedy_accuracy(
    model, tokenizer, adapter, records, max_new_tokens: int, *, teacher: bool, use_base: bool
) -> dict[str, Any]:
    """Greedy accuracy of the student prompt (or of the teacher prompt) on ``records``."""
    rows = [{**r, "prompt": r["teacher_prompt"]} for r in records] if teacher else records
    with adapter_disabled(model) if (use_base or teacher) else nullcontext():
        result = heldout_accuracy(model, tokenizer, adapter, rows, max_new_tokens)
    return {"accuracy": result["accuracy"], "n": result["n"], "examples": result["answers"][:8]}


def step_seconds(run_dir: Path) -> float:
    """Median wall time of a run's optimizer steps (``time/step_s``), leaving out the steps that also
    ran the diagnostics (an extra backward per loss term: their rows carry ``share/grad/…``)."""
    metrics = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    times = [r["time/step_s"] for r in rows if "time/step_s" in r and not any(k.startswith("share/grad/") for k in r)]
    return statistics.median(times) if times else math.nan


def heldout_curve(run_dir: Path) -> list[dict[str, Any]]:
    """(step, accuracy) from heldout-before.json, metrics.jsonl's heldout/accuracy and heldout-after.json."""
    points: list[dict[str, Any]] = []
    before, after = run_dir / "heldout-before.json", run_dir / "heldout-after.json"
    if before.is_file():
        points.append({"step": 0, "accuracy": json.loads(before.read_text())["accuracy"]})
    last_step = 0
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            last_step = max(last_step, int(row.get("step", 0)))
            if row.get("heldout/accuracy") is not None:
                points.append({"step": int(row["step"]), "accuracy": row["heldout/accuracy"]})
    if after.is_file():
        points.append({"step": last_step, "accuracy": json.loads(after.read_text())["accuracy"]})
    return points


def inspect_run(
    run_dir: Path, *, records: int = 64, split: str = "train", opening: int = 3, seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    """Measure and write ``run_dir/inspect/``; returns the report."""
    from unisd.data.templates import apply_teacher_template
    from unisd.models.loading import load_model_and_tokenizer
    from unisd.plugins import get_host
    from unisd.recipe import load_recipe

    run_dir = Path(run_dir)
    recipe_path = run_dir / "recipe.yaml"
    if not recipe_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no recipe.yaml)")
    recipe = load_recipe(recipe_path)
    reg = get_host().registries
    # the recipe model validates data.dataset into the adapter's config (DataConfig declares a dict)
    cfg = cast("DatasetConfig", recipe.data.dataset).model_copy(update={"split": split})
    adapter = reg.datasets.get(cfg.type)(cfg)
    rows = list(adapter.load())[:records]
    if recipe.data.teacher_template is not None:
        apply_teacher_template(rows, recipe.data.teacher_template)
    if not rows:
        raise ValueError(f"split {split!r} of dataset {cfg.type!r} has no records")
    model: torch.nn.Module  # the base model, or the trained one: it under the run's adapter
    model, tok = load_model_and_tokenizer(recipe.model)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    final_adapter = run_dir / "final" / "adapter"
    students = ["base"]
    if (final_adapter / "adapter_config.json").is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(final_adapter))
        students.append("trained")
    div_cfg = recipe.divergence
    divergence = reg.divergences.get(div_cfg.type)(div_cfg)
    from unisd.engine.step import score_temperature

    tau = score_temperature(recipe)
    budget = heldout_max_new_tokens(recipe)
    report: dict[str, Any] = {
        "run": str(run_dir),
        "recipe": recipe.name,
        "split": split,
        "records": len(rows),
        "divergence": div_cfg.type,
        "temperature": tau,
        "opening_tokens": opening,
        "max_new_tokens": recipe.generation.max_new_tokens,
        "students": {},
    }
    steps = [(s, what) for s in students for what in ("divergence", "student", "teacher")]
    bar = _bar(len(steps), progress)
    teacher_acc = None
    for student, what in steps:
        entry = report["students"].setdefault(student, {})
        use_base = student == "base"
        if what == "divergence":
            entry.update(
                divergence_profile(
                    model,
                    tok,
                    rows,
                    divergence,
                    temperature=recipe.generation.temperature,
                    score_temperature=tau,
                    max_new_tokens=recipe.generation.max_new_tokens,
                    opening=opening,
                    seed=seed,
                    use_base=use_base,
                )
            )
        elif what == "student":
            entry["greedy_student"] = greedy_accuracy(
                model, tok, adapter, rows, budget, teacher=False, use_base=use_base
            )
        else:
            teacher_acc = teacher_acc or greedy_accuracy(model, tok, adapter, rows, budget, teacher=True, use_base=True)
            entry["greedy_teacher"] = teacher_acc
        bar.update(1)
    bar.close()
    report["heldout_curve"] = heldout_curve(run_dir)
    out = run_dir / "inspect"
    out.mkdir(exist_ok=True)
    report["mechanisms"] = mechanism_report(run_dir, out, recipe=recipe)
    (out / "inspect.json").write_text(json.dumps(report, indent=2))
    (out / "inspect.md").write_text(report_markdown(report))
    plot_report(report, out)
    return report


def mechanism_report(run_dir: Path, out: Path | None = None, *, recipe=None) -> list[dict[str, Any]]:
    """The run's per-mechanism activity from ``metrics.jsonl`` (:mod:`unisd.runs.activity`; no model
    is loaded); with ``out``, also ``out/mechanisms.png`` (each activity metric over the steps)."""
    from unisd.runs.activity import activity_keys, plot_activity, run_activity
    from unisd.engine.metrics import read_metrics
    from unisd.plugins import get_host
    from unisd.recipe import load_recipe

    run_dir = Path(run_dir)
    if recipe is None:
        if not (run_dir / "recipe.yaml").is_file():
            raise FileNotFoundError(f"{run_dir} is not a run directory (no recipe.yaml)")
        recipe = load_recipe(run_dir / "recipe.yaml")
    rows = read_metrics(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
    activity = run_activity(recipe, rows, get_host().registries)
    if out is not None and activity:
        out.mkdir(parents=True, exist_ok=True)
        plot_activity(
            {recipe.name: rows},
            activity_keys(activity),
            out / "mechanisms.png",
            title=f"{run_dir.name}: mechanism activity",
        )
    return activity


def _bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="inspect", unit="part", disable=not enabled, dynamic_ncols=True)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def report_markdown(report: dict[str, Any]) -> str:
    """The tables of ``inspect.md``."""
    lines = [
        f"# inspect: {report['run']}",
        "",
        f"recipe `{report['recipe']}`, {report['records']} `{report['split']}` records, divergence "
        f"`{report['divergence']}` at τ = {report['temperature']}, first {report['opening_tokens']} tokens = opening.",
        "",
    ]
    for student, entry in report["students"].items():
        lines += [
            f"## {student} student",
            "",
            f"greedy accuracy: student {_pct(entry['greedy_student']['accuracy'])}, answer-aware teacher "
            f"{_pct(entry['greedy_teacher']['accuracy'])} (n = {entry['greedy_student']['n']})",
            "",
            "| token class | tokens | mean divergence | share of mass | mean vs content |",
            "|---|---|---|---|---|",
        ]
        for name, c in entry["by_class"].items():
            lines.append(
                f"| {name} | {c['tokens']} | {c['mean']:.4f} | {100 * c['share']:.1f}% | {c['vs_content']:.2f}× |"
            )
        lines += ["", "| position | tokens | mean divergence | share of mass |", "|---|---|---|---|"]
        for name, c in entry["by_position"].items():
            lines.append(f"| {name} | {c['tokens']} | {c['mean']:.4f} | {100 * c['share']:.1f}% |")
        lines.append("")
    curve = report.get("heldout_curve") or []
    if curve:
        lines += ["## held-out accuracy over training", "", "| step | accuracy |", "|---|---|"]
        lines += [f"| {p['step']} | {_pct(p['accuracy'])} |" for p in curve]
    if report.get("mechanisms"):
        from unisd.runs.activity import activity_markdown

        lines += [
            "",
            "## mechanism activity (mean over the logged steps; `mechanisms.png` shows them over steps)",
            "",
            activity_markdown(report["mechanisms"]),
        ]
    return "\n".join(lines) + "\n"


def plot_report(report: dict[str, Any], out: Path) -> None:
    """``divergence_by_position.png``, ``divergence_by_class.png`` and ``heldout_curve.png``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: inspect wrote tables only (pip install matplotlib)")
        return
    students = report["students"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for student, entry in students.items():
        keys = list(entry["by_position"])
        ax.plot(
            range(len(keys)), [entry["by_position"][k]["mean"] for k in keys], marker="o", label=f"{student} student"
        )
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(keys, rotation=45)
    ax.set_xlabel("completion position")
    ax.set_ylabel(f"mean {report['divergence']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "divergence_by_position.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(students))
    for i, (student, entry) in enumerate(students.items()):
        names = list(entry["by_class"])
        xs = [k + (i - (len(students) - 1) / 2) * width for k in range(len(names))]
        ax.bar(xs, [100 * entry["by_class"][n]["share"] for n in names], width, label=f"{student} student")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names)
    ax.set_ylabel("share of divergence mass (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "divergence_by_class.png", dpi=110)
    plt.close(fig)

    curve = report.get("heldout_curve") or []
    if curve:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([p["step"] for p in curve], [100 * (p["accuracy"] or 0) for p in curve], marker="o")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("held-out accuracy (%)")
        fig.tight_layout()
        fig.savefig(out / "heldout_curve.png", dpi=110)
        plt.close(fig)
