"""Evaluation tasks are plugins: the core finds them only through ``registry.evaluators``.

A third-party plugin registered in process adds its own lm-eval YAML task over a local JSONL and a
group; ``evaluate_model``, ``--list-tasks``, the data check and the retention metrics pick them up
exactly like the built-ins. The core (``unisd/``) never imports ``unisd_plugins``.
"""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path

import pytest

import unisd.plugins as plugins
from unisd import hookimpl
from unisd.components.evaluators import DataUnavailable, GroupSpec, TaskSpec, current_settings, eval_settings
from unisd.evaluation.tasks import UnknownTaskError, catalog, describe_tasks, include_paths, resolve_tasks
from unisd.plugins import PluginError, PluginHost

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "unisd-thirdparty-eval"

DOCS = [
    {"question": "What is the capital of France?", "choices": ["Paris", "Rome"], "answer": 0},
    {"question": "What is the capital of Italy?", "choices": ["Paris", "Rome"], "answer": 1},
    {"question": "What is the capital of Spain?", "choices": ["Madrid", "Oslo"], "answer": 0},
]

TASK_YAML = """\
task: thirdparty_capitals
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: answer
num_fewshot: 0
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


# -- the core never imports a plugin ------------------------------------------------------------------
def _plugin_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"{path}:{node.lineno} import {a.name}" for a in node.names if a.name.split(".")[0] == "unisd_plugins"
            ]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "unisd_plugins"
        ):
            found.append(f"{path}:{node.lineno} from {node.module} import ...")
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("unisd_plugins")
        ):
            found.append(f"{path}:{node.lineno} import_module({node.args[0].value!r})")
    return found


def test_core_never_imports_a_plugin_module() -> None:
    files = sorted((REPO / "unisd").rglob("*.py"))
    assert len(files) > 20
    found = [hit for f in files for hit in _plugin_imports(f)]
    assert not found, f"the core imports plugin modules (use a registry instead): {found}"
    yamls = [p for p in (REPO / "unisd").rglob("*.y*ml") if "!function unisd_plugins" in p.read_text(encoding="utf-8")]
    assert not yamls


def test_the_import_check_sees_every_spelling(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text(
        textwrap.dedent("""
        '''Example: reg.add("x", "unisd_plugins.divergences:ForwardKL")'''
        import os, unisd_plugins.datasets
        from unisd_plugins import evaluation
        if True:
            from unisd_plugins.evaluation.sources import (
                load_docs,
            )
        importlib.import_module("unisd_plugins.evaluation")
    """)
    )
    assert len(_plugin_imports(src)) == 4  # the docstring mention is not an import


# -- a third-party task ---------------------------------------------------------------------------
@pytest.fixture
def thirdparty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    """The process-wide plugin host plus an in-process plugin with one YAML task over a JSONL, one
    task whose data is missing, and a group of both."""
    data = tmp_path / "capitals.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    (task_dir / "thirdparty_capitals.yaml").write_text(TASK_YAML.format(data=data), encoding="utf-8")

    def capitals_docs(data_dir=None):
        return [{**d, "prompt": f"Question: {d['question']}\nAnswer:"} for d in DOCS]

    def missing_docs(data_dir=None):
        raise DataUnavailable("thirdparty_missing: nothing here, pass --data-dir")

    capitals = TaskSpec(
        "thirdparty_capitals",
        task_dir,
        "acc_norm",
        benchmark="capitals",
        docs=capitals_docs,
        gold_completion=lambda doc: doc["choices"][doc["answer"]],
        breakdown_field=None,
        aliases=("capitals",),
        description="capital cities, log-likelihood",
    )
    missing = TaskSpec("thirdparty_missing", task_dir, "acc", docs=missing_docs, gold_completion=lambda doc: "")

    class Plugin:
        @hookimpl
        def unisd_register(self, registry):
            registry.evaluators.add("thirdparty_capitals", capitals, description="capital cities")
            registry.evaluators.add("thirdparty_missing", missing)
            registry.evaluators.add(
                "thirdparty", GroupSpec("thirdparty", ("thirdparty_capitals", "thirdparty_missing"))
            )

    for var in ("UNISD_PLUGINS", "UNISD_BLOCK_PLUGINS", "UNISD_DISABLE_PLUGIN_AUTOLOAD"):
        monkeypatch.delenv(var, raising=False)
    host = PluginHost()
    host.register_plugin(Plugin(), "thirdparty-eval", package=PACKAGE)
    host.load()
    monkeypatch.setattr(plugins, "_HOST", host)  # what get_registries() returns for this test
    return host


def test_thirdparty_task_is_registered_next_to_the_builtins(thirdparty: PluginHost, capsys) -> None:
    cat = catalog()
    assert cat.origins["thirdparty_capitals"] == PACKAGE and cat.origins["unisd_mbpp"] == "unisd"
    assert cat.groups_of("thirdparty_capitals") == ["thirdparty"]
    assert resolve_tasks("thirdparty,capitals,mbpp") == ["thirdparty_capitals", "thirdparty_missing", "unisd_mbpp"]
    assert resolve_tasks("capitals", thirdparty.registries) == ["thirdparty_capitals"]
    assert include_paths(["thirdparty_capitals", "unisd_mbpp"]) == [
        str(thirdparty.registries.evaluators.get("thirdparty_capitals").include_dir.resolve()),
        str((REPO / "plugins" / "unisd_plugins" / "evaluation").resolve()),
    ]
    listing = describe_tasks()
    assert f"thirdparty_capitals  (benchmark capitals, metric acc_norm, aliases capitals)  [{PACKAGE}]" in listing
    assert f"thirdparty: thirdparty_capitals, thirdparty_missing  [{PACKAGE}]" in listing

    from unisd.cli.main import main

    assert main(["eval", "--list-tasks"]) == 0
    out = capsys.readouterr().out
    assert f"[{PACKAGE}]" in out and "unisd-six: " in out and "[unisd]" in out


def test_unknown_task_suggests_close_names(thirdparty: PluginHost) -> None:
    with pytest.raises(
        UnknownTaskError, match=r"unknown task or group 'thirdparty_capitls'\. Did you mean 'thirdparty_capitals'"
    ):
        resolve_tasks("thirdparty_capitls")
    with pytest.raises(ValueError, match="Available: .*thirdparty_capitals"):
        resolve_tasks(["nope"])


def test_bad_specs_are_reported() -> None:
    with pytest.raises(ValueError, match="primary_metric"):
        TaskSpec("x", ".", "")
    with pytest.raises(ValueError, match="lists no task"):
        GroupSpec("g", ())
    with pytest.raises(DataUnavailable, match="no document loader"):
        TaskSpec("x", ".", "acc").load_docs()

    class Plugin:
        @hookimpl
        def unisd_register(self, registry):
            registry.evaluators.add("a", TaskSpec("a", ".", "acc"))
            registry.evaluators.add("renamed", TaskSpec("other", ".", "acc"))

    host = PluginHost()
    host.register_plugin(Plugin(), "bad", package="bad-pkg")
    host.run_register()
    with pytest.raises(ValueError, match="evaluator 'renamed' from bad-pkg is a TaskSpec named 'other'"):
        resolve_tasks("a", host.registries)


def test_group_with_unregistered_task_and_ambiguous_alias() -> None:
    class Plugin:
        @hookimpl
        def unisd_register(self, registry):
            registry.evaluators.add("g", GroupSpec("g", ("a", "ghost")))
            registry.evaluators.add("a", TaskSpec("a", ".", "acc", aliases=("same",)))
            registry.evaluators.add("b", TaskSpec("b", ".", "acc", aliases=("same",)))

    host = PluginHost()
    host.register_plugin(Plugin(), "odd", package="odd-pkg")
    host.run_register()
    assert resolve_tasks("a,b", host.registries) == ["a", "b"]
    with pytest.raises(ValueError, match="group 'g' from odd-pkg lists unregistered task\\(s\\) ghost"):
        resolve_tasks("g", host.registries)
    with pytest.raises(UnknownTaskError, match="alias 'same' is ambiguous: it names a, b"):
        resolve_tasks("same", host.registries)


def test_eval_settings_are_scoped() -> None:
    assert current_settings().code_timeout_s == 10.0
    with eval_settings(code_timeout_s=3.0) as s:
        assert s.code_timeout_s == 3.0 == current_settings().code_timeout_s
    assert current_settings().code_timeout_s == 10.0


def test_thirdparty_task_runs_through_evaluate_model(
    thirdparty: PluginHost, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from unisd.evaluation.loading import load_for_eval
    from unisd.evaluation.retention import retention_for_tasks
    from unisd.evaluation.runner import evaluate_model

    model, tok = load_for_eval(str(tiny_model_dir))
    out = tmp_path / "eval"
    report = evaluate_model(model, tok, "thirdparty", limit=2, output_dir=out, batch_size=2, log_samples=True)
    assert set(report["summary"]) == {"thirdparty_capitals"}
    row = report["summary"]["thirdparty_capitals"]
    assert row["n"] == 2 and 0.0 <= row["acc"] <= 1.0 and 0.0 <= row["acc_norm"] <= 1.0
    assert report["skipped"] == {"thirdparty_missing": "thirdparty_missing: nothing here, pass --data-dir"}
    md = (out / "results.md").read_text()
    assert "| thirdparty_capitals | acc_norm |" in md and "| thirdparty_missing | – | data unavailable |" in md
    assert (out / "samples_thirdparty_capitals.jsonl").is_file()
    assert json.loads((out / "results.json").read_text())["unisd"]["summary"] == report["summary"]

    ret = retention_for_tasks(model, model, tok, "thirdparty", limit=2, max_new_tokens=2, batch_size=2)
    assert set(ret) == {"thirdparty_capitals", "thirdparty_missing"}
    assert "nothing here" in ret["thirdparty_missing"]["skipped"]
    assert "jsd" in json.dumps(ret["thirdparty_capitals"]).lower()
    assert len(ret["thirdparty_capitals"]["per_example"]["model_logp_of_gold"]) == 2  # gold from the spec


def test_an_evaluator_that_is_not_a_spec_is_rejected_naming_its_plugin() -> None:
    class Plugin:
        @hookimpl
        def unisd_register(self, registry):
            registry.evaluators.add("not_a_task", object())

    host = PluginHost()
    host.register_plugin(Plugin(), "bad-eval", package="unisd-bad-eval")
    with pytest.raises(PluginError, match="unisd-bad-eval.*must be an EvaluatorSpec"):
        host.load()
