"""In-process evaluation of a loaded model through lm-eval-harness (no reloading after training)."""

from __future__ import annotations

import datetime
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable

from unisd.evaluation.report import breakdown, results_markdown, summarize
from unisd.components.evaluators import DataUnavailable, eval_settings
from unisd.evaluation.tasks import (
    TaskSelection,
    find_task,
    get_task,
    include_paths,
    lm_eval_task_manager,
    select_tasks,
)

if TYPE_CHECKING:  # pragma: no cover
    from unisd.registries import Registries

log = logging.getLogger("unisd.eval")


def available_tasks(
    tasks: Iterable[str], data_dir: str | Path | None, registries: Registries | None = None
) -> tuple[list[str], dict[str, str]]:
    """Split task names into those whose data loads and ``{task: reason}`` for the others.

    A task whose spec has no ``docs`` loader is always kept (lm-eval loads its data itself)."""
    ok, skipped = [], {}
    for task in tasks:
        spec = get_task(task, registries)
        if spec.docs is None:
            ok.append(task)
            continue
        try:
            spec.load_docs(data_dir)
            ok.append(task)
        except DataUnavailable as exc:
            skipped[task] = str(exc)
            log.warning("skipping %s: %s", task, exc)
    return ok, skipped


def _quiet_lm_eval() -> None:
    for name in ("lm_eval", "lm-eval", "lm_eval.api.task", "lm_eval.tasks", "lm_eval.evaluator"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _make_lm(model: Any, tokenizer: Any, batch_size: int | str, max_gen_toks: int | None):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    if max_gen_toks is not None and max_gen_toks >= lm.max_length:
        raise ValueError(f"max_gen_toks={max_gen_toks} must be below the model's context length {lm.max_length}")
    return lm


#: lm-eval's own defaults (``simple_evaluate``), used for its tasks so that the numbers are lm_eval's
LM_EVAL_SEEDS = {"random_seed": 0, "numpy_random_seed": 1234, "torch_random_seed": 1234, "fewshot_random_seed": 1234}
LM_EVAL_BOOTSTRAP = 100_000


def evaluate_model(
    model: Any,
    tokenizer: Any,
    tasks: str | Iterable[str] | TaskSelection | None = None,
    limit: int | float | None = None,
    data_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    *,
    batch_size: int | str = 8,
    seed: int | None = None,
    max_gen_toks: int | None = None,
    code_timeout_s: float = 10.0,
    mcqa_rule: str = "fixed",
    log_samples: bool = False,
    model_name: str | None = None,
    registries: Registries | None = None,
    include_path: Iterable[str] = (),
    apply_chat_template: bool | None = None,
    num_fewshot: int | None = None,
    gen_kwargs: str | None = None,
) -> dict[str, Any]:
    """Evaluate an in-memory HF model on registered tasks; optionally write ``results.json``/``results.md``.

    ``tasks`` are names, groups or aliases of :class:`~unisd.components.evaluators.TaskSpec` objects in
    ``registry.evaluators`` (of ``registries``, default the process-wide plugin host's); lm-eval
    reads their YAMLs from the specs' ``include_dir``. Other names go to lm-eval's ``TaskManager``
    with its stock tasks and ``include_path`` (directories of plain lm-eval YAML tasks). ``max_gen_toks`` overrides the tasks' 1024;
    left unset with a model context of at most 1088 tokens, half the context is used. Tasks whose
    data cannot be loaded are skipped and reported. Returns ``{"summary", "breakdown", "skipped",
    "lm_eval", "settings"}`` (lm-eval's results, without samples; the settings of each task).

    UniSD's tasks run with the paper's settings (the chat template when the tokenizer has one, ``seed``
    or 42 for every seed). lm-eval's own tasks (stock, or plain YAML under ``include_path``) run as
    ``lm_eval`` runs them: no chat template unless ``apply_chat_template``, lm-eval's seeds unless
    ``seed``, its generation settings unless ``gen_kwargs`` (lm-eval's ``k=v,k=v`` string) or
    ``max_gen_toks``, so that the numbers are lm-eval's.
    """
    import lm_eval

    _quiet_lm_eval()
    selection = tasks if isinstance(tasks, TaskSelection) else select_tasks(tasks, include_path, registries)
    names, skipped = available_tasks(selection.registered, data_dir, registries)
    stock = selection.lm_eval  # names no plugin registers, so never among the registered ones
    if any(get_task(n, registries).executes_code for n in names):
        from unisd.sandbox import require_isolation

        report = require_isolation()  # refuses before any generation when the kernel layers are missing
        log.info(
            "code sandbox layers active: %s%s",
            ", ".join(report["active"]) or "none",
            f" (missing, opted in: {'; '.join(report['layer_problems'])})" if report["layer_problems"] else "",
        )
    summary: dict[str, Any] = {}
    details: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    if names or stock:
        data = str(Path(data_dir).expanduser().resolve()) if data_dir else None
        manager = lm_eval_task_manager(
            [*include_paths(names, registries), *selection.include_path],
            defaults=selection.stock,
            metadata={"data_dir": data},
        )
        was_training = getattr(model, "training", False)
        try:
            lm = _make_lm(model, tokenizer, batch_size, max_gen_toks)
            gen_tokens = max_gen_toks
            if gen_tokens is None and lm.max_length <= 1024 + 64:
                gen_tokens = lm.max_length // 2
                log.warning("context length %d is short: generating at most %d tokens", lm.max_length, gen_tokens)
            model.eval()
            runs = []
            if names:  # UniSD's tasks: the paper's settings
                chat = (
                    bool(getattr(tokenizer, "chat_template", None))
                    if apply_chat_template is None
                    else apply_chat_template
                )
                kwargs = gen_kwargs or ({"max_gen_toks": gen_tokens} if gen_tokens else None)
                runs.append(
                    (
                        names,
                        {
                            "apply_chat_template": chat,
                            "gen_kwargs": kwargs,
                            "num_fewshot": num_fewshot,
                            **{k: 42 if seed is None else seed for k in LM_EVAL_SEEDS},
                            "bootstrap_iters": 1000,
                        },
                    )
                )
            if stock:  # lm-eval's tasks: lm-eval's defaults unless told otherwise
                kwargs = gen_kwargs or ({"max_gen_toks": max_gen_toks} if max_gen_toks else None)
                runs.append(
                    (
                        stock,
                        {
                            "apply_chat_template": bool(apply_chat_template),
                            "gen_kwargs": kwargs,
                            "num_fewshot": num_fewshot,
                            "bootstrap_iters": LM_EVAL_BOOTSTRAP,
                            **(LM_EVAL_SEEDS if seed is None else {k: seed for k in LM_EVAL_SEEDS}),
                        },
                    )
                )
            with eval_settings(code_timeout_s=code_timeout_s, mcqa_rule=mcqa_rule):
                for task_names, options in runs:
                    part = (
                        lm_eval.simple_evaluate(
                            model=lm, tasks=task_names, task_manager=manager, limit=limit, log_samples=True, **options
                        )
                        or {}
                    )
                    raw = _merge(raw, part)
                    for name in part.get("results", {}):
                        settings[name] = {
                            "apply_chat_template": options["apply_chat_template"],
                            "limit": limit,
                            "num_fewshot": (part.get("n-shot") or {}).get(name, num_fewshot),
                            "gen_kwargs": options["gen_kwargs"],
                            "seeds": {k: options[k] for k in LM_EVAL_SEEDS},
                            "conventions": "unisd" if task_names is names else "lm-eval",
                        }
        finally:
            if was_training:
                model.train()
        samples = raw.pop("samples", {}) or {}
        summary, details = summarize(raw), breakdown(samples, registries)
        if log_samples and output_dir:
            _write_samples(Path(output_dir), samples, registries)
    report = {
        "summary": summary,
        "breakdown": details,
        "skipped": skipped,
        "lm_eval": raw,
        "settings": settings,
        "model": model_name or getattr(getattr(model, "config", None), "_name_or_path", ""),
        "limit": limit,
        "data_dir": str(data_dir) if data_dir else None,
    }
    if output_dir:
        write_report(report, Path(output_dir), registries)
    return report


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two ``simple_evaluate`` results as one: their per-task tables joined, the rest from the first."""
    if not a:
        return b
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        elif key not in out:
            out[key] = value
    return out


def _write_samples(out: Path, samples: dict[str, list[dict[str, Any]]], registries: Registries | None = None) -> None:
    """Per-task generations as JSONL, except for tasks whose spec says ``write_samples=False``
    (GPQA: its questions must stay out of plain text)."""
    from lm_eval.utils import handle_non_serializable

    out.mkdir(parents=True, exist_ok=True)
    for task, rows in samples.items():
        spec = find_task(task, registries)
        if spec is not None and not spec.write_samples:
            continue
        with open(out / f"samples_{task}.jsonl", "w", encoding="utf-8") as fh:
            for s in rows:
                fh.write(json.dumps(s, default=handle_non_serializable, ensure_ascii=False) + "\n")


def write_report(report: dict[str, Any], out: Path, registries: Registries | None = None) -> None:
    """``results.json`` (lm-eval's JSON plus a ``unisd`` section) and ``results.md``."""
    from lm_eval.utils import handle_non_serializable

    out.mkdir(parents=True, exist_ok=True)
    payload = dict(report.get("lm_eval") or {})
    payload["unisd"] = {
        k: report.get(k) for k in ("summary", "breakdown", "skipped", "model", "limit", "data_dir", "settings")
    }
    text = json.dumps(payload, indent=2, default=handle_non_serializable)
    (out / "results.json").write_text(text, encoding="utf-8")
    # lm-eval's own name for the same file, so that its tooling (and `lm_eval`-style scripts) read the directory
    stamp = payload.get("date") or time.time()
    name = f"results_{datetime.datetime.fromtimestamp(float(stamp)).strftime('%Y-%m-%dT%H-%M-%S.%f')}.json"
    (out / name).write_text(text, encoding="utf-8")  # `unisd eval` moves earlier results aside before writing
    title = f"Evaluation of {report.get('model') or 'model'}" + (
        f" (limit {report['limit']})" if report.get("limit") else ""
    )
    (out / "results.md").write_text(
        results_markdown(report["summary"], report["skipped"], report["breakdown"], title, registries=registries),
        encoding="utf-8",
    )
