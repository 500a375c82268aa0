"""``unisd replicate``: experiment files, the run plan, resuming, and the table's numbers."""

import json
import textwrap
from pathlib import Path

import pytest

from unisd.runs.replicate import load_experiment, plan, run_replication
from unisd.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def _experiment(tmp_path, tiny_model_dir, shared_data, extra=""):
    path = tmp_path / "exp.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        name: tiny
        seeds: [1, 2]
        methods: [base, sft, vanilla]
        baselines: [sft]
        set: [model.name_or_path={tiny_model_dir}, training.batch_size=2, training.grad_accum=1, training.max_steps=2,
              generation.max_new_tokens=4, lora.r=4, lora.alpha=8, logging.progress_bar=false, logging.tensorboard=false,
              checkpoint.save_merged=false, evaluation.heldout_every=1]
        tasks:
          - name: gsm8k
            data: {{type: gsm8k, path: '{shared_data / "gsm8k"}'}}
            heldout: 3
        retention: {{reference: sft, records: 3}}
        """)
        + extra
    )
    return path


def test_bad_experiment_files_name_the_field_and_line(tmp_path, tiny_model_dir, shared_data):
    path = _experiment(tmp_path, tiny_model_dir, shared_data, "seedz: [1]\n")
    with pytest.raises(
        UserError, match=r"(?s)invalid experiment .*line 13: seedz: unknown field. Did you mean 'seeds'"
    ):
        load_experiment(str(path))
    with pytest.raises(UserError, match="(?s)unknown experiment 'nope'.*mini-table"):
        load_experiment("nope")


def test_a_bad_method_is_refused_before_anything_trains(tmp_path, tiny_model_dir, shared_data):
    path = _experiment(tmp_path, tiny_model_dir, shared_data)
    exp = load_experiment(str(path)).model_copy(update={"methods": ["sft", "vanila"]})
    with pytest.raises(UserError, match="(?s)method 'vanila'.*Did you mean 'vanilla'"):
        plan(exp)


def test_shipped_experiment_and_its_quick_variant_validate():
    full, quick = load_experiment("mini-table"), load_experiment("mini-table", quick=True)
    assert len(full.seeds) >= 3 and {"unisd-star", "unisd-star-reference", "sft", "gkd"} <= set(full.methods)
    assert len(full.tasks) >= 2 and quick.seeds == [1] and all(t.heldout == 8 for t in quick.tasks)


@pytest.mark.parametrize("name", ["mechanisms-budget", "mechanisms-grid"])
def test_the_study_chooses_its_settings_on_a_validation_split(name):
    runs = plan(load_experiment(name))
    assert all(r["recipe"].evaluation.heldout_split == "validation" for r in runs)  # settings are never chosen on test
    assert {r["recipe"].training.max_steps for r in runs} == {12}  # the budget every method of the study shares


def test_the_mechanisms_grid_validates_every_run_on_a_validation_split():
    exp = load_experiment("mechanisms-grid")
    runs = plan(exp)
    assert all(r["recipe"].evaluation.heldout_split == "validation" for r in runs)  # settings are never chosen on test
    assert all(len(values) <= 4 for axes in exp.grid.values() for values in axes.values())
    steps = {r["recipe"].training.max_steps for r in runs}
    assert steps == {12} and all(r["recipe"].components[0].every == 1 for r in runs if r["recipe"].name == "unisd-ema")
    assert len(plan(load_experiment("mechanisms-grid", quick=True))) == 1 + 2  # vanilla and the EMA grid


def test_the_mechanisms_study_reports_on_test_with_the_settings_chosen_on_validation():
    import yaml

    exp = load_experiment("mechanisms")
    runs = plan(exp)
    assert all(r["recipe"].evaluation.heldout_split == "test" for r in runs)  # the study only reports on test
    assert {r["recipe"].training.max_steps for r in runs} == {12} and len(exp.seeds) >= 3
    by_task = {t.name: {r["method"] for r in runs if r["task"] == t.name} for t in exp.tasks}
    singles = {"agreement", "ema", "contrastive", "feature", "clip", "unisd-star-tuned"}
    assert len(by_task) >= 3 and all(singles | {"sft-lr3e-4", "sdft"} <= m for m in by_task.values())
    assert {"opsd", "gkd", "ssd", "token-clip-lr3e-4", "vanilla-lr3e-4"} <= by_task["basic_arithmetic"]
    # each mechanism's recipe holds a value mechanisms-grid tried, on the budget it was tried with
    grid = load_experiment("mechanisms-grid")
    tried = {axis.rsplit(".", 1)[-1]: set(values) for axes in grid.grid.values() for axis, values in axes.items()}
    chosen = {r["method"]: r["recipe"] for r in runs if r["task"] == "basic_arithmetic" and r["seed"] == 1}
    gridded = {r["method"]: r["recipe"] for r in plan(grid)}
    for name in singles - {"unisd-star-tuned"}:
        recipe = chosen[name]
        assert recipe.divergence.type == "reverse_kl" and recipe.optim.lr == 1e-4
        fields = recipe.components[0].model_dump()
        assert any(fields[k] in v for k, v in tried.items() if k in fields and k != "every"), name
        twin = next(
            g
            for label, g in gridded.items()
            if label.startswith(f"unisd-{name}[") and g.components[0].model_dump() == fields
        )  # the very configuration the grid trained
        assert twin.training == recipe.training and twin.generation == recipe.generation and twin.lora == recipe.lora
    star = [c.model_dump() for c in chosen["unisd-star-tuned"].components]
    assert star == [
        chosen[n].components[0].model_dump() for n in ("agreement", "contrastive", "feature", "ema", "clip")
    ]
    recipes = Path(load_experiment.__globals__["resolve_experiment"]("mechanisms")).parent / "mechanisms"
    assert {p.stem for p in recipes.glob("*.yaml")} == {
        yaml.safe_load(p.read_text())["name"] for p in recipes.glob("*.yaml")
    }
    quick = plan(load_experiment("mechanisms", quick=True))
    assert {r["task"] for r in quick} == {"basic_arithmetic"} and {r["recipe"].training.max_steps for r in quick} == {2}


def test_recipe_files_beside_an_experiment_and_per_task_methods(tmp_path, tiny_model_dir, shared_data):
    path = _experiment(tmp_path, tiny_model_dir, shared_data)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "slow-sft.yaml").write_text("extends: sft\nname: slow-sft\noptim: {lr: 1.0e-5}\n")
    text = path.read_text().replace("methods: [base, sft, vanilla]", "methods: [base, mine/slow-sft.yaml, vanilla]")
    text = text.replace("baselines: [sft]", "baselines: [slow-sft]").replace("reference: sft", "reference: slow-sft")
    other = f"  - name: other\n    data: {{type: gsm8k, path: '{shared_data / 'gsm8k'}'}}\n    heldout: 3\n    methods: [base, slow-sft]\n"
    path.write_text(text.replace("retention:", other + "retention:"))
    exp = load_experiment(str(path))  # read from another directory: the file is found beside the experiment
    assert exp.labels == ["base", "slow-sft", "vanilla"] and exp.methods[1] == str(
        (tmp_path / "mine" / "slow-sft.yaml").resolve()
    )
    runs = plan(exp)
    assert sorted({(r["task"], r["method"]) for r in runs}) == [
        ("gsm8k", "slow-sft"),
        ("gsm8k", "vanilla"),
        ("other", "slow-sft"),
    ]
    r = next(r for r in runs if r["task"] == "other")
    assert r["recipe"].optim.lr == 1e-5 and str(r["dir"]) == "other/slow-sft/s1"
    from unisd.runs.replicate import collect, table_markdown

    for r in runs:  # what finished runs leave, enough for the table
        run = tmp_path / "out" / r["dir"]
        run.mkdir(parents=True)
        after = 0.6 if r["method"] == "vanilla" else 0.5
        (run / "summary.json").write_text(
            json.dumps({"heldout": {"accuracy_before": 0.4, "accuracy_after": after, "n": 3}})
        )
        (run / "retention.json").write_text(json.dumps({"jsd": [0.1], "base_logp_of_model_completion": [-1.0]}))
        (run / "recipe.yaml").write_text((REPO / "plugins/unisd_plugins/recipes/sft.yaml").read_text())
    res = collect(exp, tmp_path / "out")
    assert (
        list(res["tasks"]["other"]["methods"]) == ["base", "slow-sft"]
        and res["tasks"]["other"]["best_baseline"] == "slow-sft"
    )
    assert "| vanilla | 60.0 ± 0.0 | – |" in table_markdown(exp, res)
    # a column run alone (--tasks other) reports with every other task whose runs have all finished
    from unisd.runs.replicate import with_finished_tasks

    one = exp.only_tasks(["other"])
    assert [t.name for t in with_finished_tasks(exp, one, tmp_path / "out").tasks] == ["gsm8k", "other"]
    (tmp_path / "out" / "gsm8k" / "vanilla" / "s1" / "retention.json").unlink()  # gsm8k not finished
    assert [t.name for t in with_finished_tasks(exp, one, tmp_path / "out").tasks] == ["other"]
    path.write_text(path.read_text().replace("methods: [base, slow-sft]", "methods: [base, slow_sft]"))
    with pytest.raises(UserError, match="task 'other': methods slow_sft are not among the experiment's methods"):
        load_experiment(str(path))


def test_replication_trains_tabulates_and_resumes(tmp_path, tiny_model_dir, shared_data):
    exp = load_experiment(str(_experiment(tmp_path, tiny_model_dir, shared_data)))
    out = tmp_path / "out"
    res = run_replication(exp, out, progress=False)
    t = res["tasks"]["gsm8k"]
    assert list(t["methods"]) == ["base", "sft", "vanilla"] and t["best_baseline"] == "sft"
    for m in ("sft", "vanilla"):
        e = t["methods"][m]
        after = [e["per_seed"][s]["after"] for s in (1, 2)]
        assert e["mean"] == pytest.approx(sum(after) / 2)
        assert e["vs_base"]["mean"] == pytest.approx(e["mean"] - t["base"])
        assert [p["step"] for p in e["per_seed"][1]["curve"]] == [0, 1, 2]
    v, s = t["methods"]["vanilla"], t["methods"]["sft"]
    assert v["vs_best_baseline"]["mean"] == pytest.approx(v["mean"] - s["mean"])
    assert 0.0 <= v["retention_vs_reference"]["jsd_lower"] <= 1.0
    table = (out / "table.md").read_text()
    assert "| vanilla |" in table and "JSD lower" in table
    assert v["step_s"] > 0 and "Cost: seconds per optimizer step" in table  # step 2 ran no diagnostics
    for name in ("results.json", "accuracy_vs_step.png", "jsd_to_base.png"):
        assert (out / name).is_file()
    # a finished replication is reused; a run that lost its summary is resumed, not retrained from scratch
    stamp = (out / "gsm8k" / "sft" / "s1" / "summary.json").stat().st_mtime_ns
    (out / "gsm8k" / "vanilla" / "s2" / "summary.json").unlink()
    again = run_replication(exp, out, progress=False)
    assert (out / "gsm8k" / "sft" / "s1" / "summary.json").stat().st_mtime_ns == stamp
    assert again["tasks"]["gsm8k"]["methods"]["vanilla"]["mean"] == pytest.approx(v["mean"])
    assert json.loads((out / "results.json").read_text())["experiment"] == "tiny"
    # the same directory with other settings: refused before anything trains, nothing touched
    other = exp.model_copy(update={"set": [*exp.set, "optim.lr=1e-3"]})
    with pytest.raises(UserError, match=r"holds runs of other settings .*gsm8k/sft/s1"):
        run_replication(other, out, progress=False)
    assert (out / "gsm8k" / "sft" / "s1" / "summary.json").stat().st_mtime_ns == stamp


def test_base_is_scored_once_and_shared_and_workers_run_in_parallel(tmp_path, tiny_model_dir, shared_data):
    exp = load_experiment(str(_experiment(tmp_path, tiny_model_dir, shared_data)))
    out = tmp_path / "par"
    res = run_replication(exp, out, progress=False, workers=2)
    base = json.loads((out / "gsm8k" / "base" / "heldout.json").read_text())
    assert base["key"]["ids"] == res["tasks"]["gsm8k"]["heldout_ids"] and len(base["key"]["ids"]) == 3
    for m in ("sft", "vanilla"):
        for s in (1, 2):
            run = out / "gsm8k" / m / f"s{s}"
            # every run's "before" is the one base check, not a fresh one
            assert json.loads((run / "heldout-before.json").read_text()) == base["result"]
            assert (run / "retention.json").is_file() and (run / "summary.json").is_file()
    assert res["tasks"]["gsm8k"]["base"] == base["result"]["accuracy"]
    # a changed held-out budget is not served from the cache
    exp2 = load_experiment(str(_experiment(tmp_path, tiny_model_dir, shared_data).rename(tmp_path / "e2.yaml")))
    exp2 = exp2.model_copy(
        update={"tasks": [exp2.tasks[0].model_copy(update={"heldout": 2})], "methods": ["sft"], "seeds": [1]}
    )
    with pytest.raises(UserError, match="holds runs of other settings"):  # the old sft/s1 ran another budget
        run_replication(exp2, out, progress=False)
    import shutil

    shutil.rmtree(out / "gsm8k" / "sft")
    run_replication(exp2, out, progress=False)
    assert len(json.loads((out / "gsm8k" / "base" / "heldout.json").read_text())["key"]["ids"]) == 2


def test_the_table_reports_each_mechanisms_activity_and_names_the_inert(tmp_path, tiny_model_dir, shared_data):
    (tmp_path / "ema-late.yaml").write_text("extends: unisd-ema\nname: ema-late\n")  # syncs every 10 steps; runs have 2
    (tmp_path / "ema-each.yaml").write_text("extends: unisd-ema\nname: ema-each\ncomponents: [{type: ema, every: 1}]\n")
    path = _experiment(tmp_path, tiny_model_dir, shared_data)
    text = (
        path.read_text()
        .replace(
            "methods: [base, sft, vanilla]",
            f"methods: [base, sft, {tmp_path / 'ema-late.yaml'}, {tmp_path / 'ema-each.yaml'}]",
        )
        .replace("seeds: [1, 2]", "seeds: [1]")
    )
    path.write_text(text)
    out = tmp_path / "out"
    res = run_replication(load_experiment(str(path)), out, progress=False)
    methods = res["tasks"]["gsm8k"]["methods"]
    (late,) = methods["ema-late"]["activity"]  # a recipe file's row: its stem
    (each,) = methods["ema-each"]["activity"]
    assert late["statuses"] == {"inert": 1} and late["reasons"] == [
        "EMA syncs every 10 steps, run has 2: the teacher was the base model throughout"
    ]
    assert each["statuses"] == {"active": 1} and each["metrics"]["syncs"] == 2  # a count: its last value
    assert methods["sft"]["activity"] == []
    table = (out / "table.md").read_text()
    assert "| ema (ema) | syncs 0; dist_base 0;" in table and "inert 1/1: EMA syncs every 10 steps, run has 2" in table
    assert (out / "mechanisms_gsm8k.png").stat().st_size > 0


def test_a_grid_trains_one_row_per_combination_of_values(tmp_path, tiny_model_dir, shared_data):
    path = _experiment(
        tmp_path,
        tiny_model_dir,
        shared_data,
        extra=textwrap.dedent("""\
        grid:
          vanilla: {optim.lr: [1.0e-4, 3.0e-4], divergence.type: [forward_kl, reverse_kl]}
        """),
    )
    exp = load_experiment(str(path))
    assert exp.labels == [
        "base",
        "sft",
        "vanilla[lr=0.0001,type=forward_kl]",
        "vanilla[lr=0.0001,type=reverse_kl]",
        "vanilla[lr=0.0003,type=forward_kl]",
        "vanilla[lr=0.0003,type=reverse_kl]",
    ]
    runs = {(r["method"], r["seed"]): r for r in plan(exp)}
    r = runs[("vanilla[lr=0.0003,type=reverse_kl]", 2)]
    assert (
        r["recipe"].optim.lr == 3e-4 and r["recipe"].divergence.type == "reverse_kl" and r["recipe"].name == "vanilla"
    )
    assert str(r["dir"]) == "gsm8k/vanilla[lr=0.0003,type=reverse_kl]/s2"
    from unisd.runs.replicate import collect

    fake = {"sft": 0.5, "vanilla[lr=0.0001,type=forward_kl]": 0.7}  # a gridded baseline competes by its variants
    for label, after in fake.items():
        for seed in (1, 2):
            run = tmp_path / "out" / "gsm8k" / label / f"s{seed}"
            run.mkdir(parents=True)
            (run / "summary.json").write_text(
                json.dumps({"heldout": {"accuracy_before": 0.4, "accuracy_after": after, "n": 3}})
            )
            (run / "retention.json").write_text(json.dumps({"jsd": [], "base_logp_of_model_completion": []}))
            (run / "recipe.yaml").write_text((REPO / "plugins/unisd_plugins/recipes/sft.yaml").read_text())
    baselined = exp.model_copy(
        update={
            "methods": ["sft", "vanilla"],
            "baselines": ["sft", "vanilla"],
            "grid": {"vanilla": {"optim.lr": [1.0e-4], "divergence.type": ["forward_kl"]}},
        }
    )
    assert (
        collect(baselined, tmp_path / "out")["tasks"]["gsm8k"]["best_baseline"] == "vanilla[lr=0.0001,type=forward_kl]"
    )
    for bad, message in (
        ("grid: {ssd: {optim.lr: [0.1]}}", "ssd not in methods"),
        ("grid: {vanilla: {optim.lr: []}}", "every field needs at least one value"),
    ):
        path.write_text(path.read_text().split("grid:")[0] + bad + "\n")
        with pytest.raises(UserError, match=message):
            load_experiment(str(path))


def test_forgetting_probes_score_every_run_and_the_base_item_by_item(tmp_path, tiny_model_dir, shared_data):
    extra = textwrap.dedent(f"""\
        forgetting:
          - name: chain_sum
            data: {{type: reasoning_gym, task: chain_sum, size: 16, validation_size: 4}}
            heldout: 4
            max_new_tokens: 4
          - name: cose_options
            lm_eval: unisd_cose_options
            metric: acc
            limit: 4
            data_dir: '{shared_data}'
        """)
    path = _experiment(tmp_path, tiny_model_dir, shared_data, extra=extra)
    path.write_text(path.read_text().replace("methods: [base, sft, vanilla]", "methods: [base, sft]"))
    out = tmp_path / "out"
    res = run_replication(load_experiment(str(path)), out, progress=False)
    base = json.loads((out / "base-forgetting.json").read_text())
    assert len(base["cose_options"]["ids"]) == 4 and base["cose_options"]["key"]["model"] == str(tiny_model_dir)
    assert res["forgetting_base"]["chain_sum"] == base["chain_sum"]["accuracy"]
    change = res["tasks"]["gsm8k"]["methods"]["sft"]["forgetting"]["cose_options"]
    runs = [
        json.loads((out / "gsm8k" / "sft" / f"s{s}" / "forgetting.json").read_text())["cose_options"] for s in (1, 2)
    ]
    afters = [sum(r["correct"]) / 4 for r in runs]
    assert change["n"] == 4 and change["per_seed_after"] == pytest.approx(afters)
    assert change["change"] == pytest.approx(sum(afters) / 2 - base["cose_options"]["accuracy"])
    assert "| gsm8k | sft |" in (out / "table.md").read_text().split("Forgetting:")[1]
    # a probe whose settings change is scored again; the others are reused
    stamp = (out / "base-forgetting.json").stat().st_mtime_ns
    run_replication(load_experiment(str(path)), out, progress=False)
    assert (out / "base-forgetting.json").stat().st_mtime_ns == stamp


def test_a_probe_names_exactly_one_source():
    from unisd.runs.forgetting import ProbeSpec

    with pytest.raises(ValueError, match="exactly one of data"):
        ProbeSpec(name="x")
    with pytest.raises(ValueError, match="exactly one of data"):
        ProbeSpec(name="x", data={"type": "gsm8k"}, lm_eval="unisd_cose_mc")


def test_a_run_killed_between_two_probes_is_not_taken_as_scored(tmp_path):
    """score_probes writes its cache after each probe: a file holding some probes is unfinished."""
    import json

    from unisd.runs.forgetting import ProbeSpec, probes_scored

    probes = [ProbeSpec(name="a", data={"type": "gsm8k"}), ProbeSpec(name="b", lm_eval="unisd_cose_options")]
    path = tmp_path / "forgetting.json"
    assert not probes_scored(path, probes, model_name="m")
    first = {"a": {"key": {**probes[0].key(), "model": "m"}, "accuracy": 0.5}}
    path.write_text(json.dumps(first))
    assert not probes_scored(path, probes, model_name="m")
    path.write_text(json.dumps({**first, "b": {"key": {**probes[1].key(), "model": "m"}, "accuracy": 0.4}}))
    assert probes_scored(path, probes, model_name="m")
    assert not probes_scored(path, probes, model_name="another model")
