"""Contrastive negatives are generated once per (model, records, prompts), cached and reused; a
sweep trains its grid and tabulates it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from unisd.runs.launch import train


def test_negatives_generated_cached_and_reused(make_recipe, tmp_path, shared_data, monkeypatch):
    import unisd_plugins.contrastive.loss as loss_mod

    recipe = make_recipe(
        "unisd-contrastive",
        "training.max_steps=1",
        "training.grad_accum=1",
        f"data.dataset={{type: gsm8k, path: '{shared_data / 'gsm8k'}', limit: 6}}",
        "components.contrastive.negatives_per_item=2",
        "components.contrastive.max_new_tokens=8",
    )
    calls = {"n": 0}
    real = loss_mod.hf_generator

    def counting(*a, **kw):
        gen = real(*a, **kw)

        def wrapped(prompts):
            calls["n"] += len(prompts)
            return gen(prompts)

        return wrapped

    monkeypatch.setattr(loss_mod, "hf_generator", counting)
    train(recipe, tmp_path / "a")
    cache_files = list(Path(os.environ["UNISD_CACHE"]).rglob("negatives/*.json"))  # set per test session
    assert calls["n"] >= 2 * 2  # 2 visited records x 2 negatives (retries may add more)
    assert cache_files
    cached = json.loads(cache_files[0].read_text())
    assert all(len(v) == 2 for v in cached.values())
    first = calls["n"]
    train(recipe, tmp_path / "b")  # same model, records and prompts: no generation
    assert calls["n"] == first
    row = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["loss/contrastive"] >= 0


def test_sweep_runs_the_grid_and_writes_a_table(tiny_model_dir, records_file, tmp_path, capsys):
    import dataclasses

    from unisd.runs.sweep import Sweep, run_sweep

    sweep = Sweep(
        recipes=["vanilla", "unisd-clip"],
        seeds=[1],
        grid=["optim.lr=1e-3,1e-2"],
        model=str(tiny_model_dir),
        max_steps=1,
        overrides=[
            f"data.dataset={{type: jsonl, path: '{records_file}'}}",
            "generation.max_new_tokens=4",
            "training.batch_size=2",
            "training.grad_accum=1",
            "lora.r=4",
            "logging.progress_bar=false",
        ],
    )
    out = tmp_path / "sweep"
    assert run_sweep(sweep, out) == 0
    table = (tmp_path / "sweep" / "sweep.md").read_text()
    assert table.count("\n| ") == 4 and "vanilla-s1-lr=1e-3" in table and "unisd-clip-s1-lr=1e-2" in table
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["runs"]
    assert {r["grid"]["optim.lr"] for r in rows} == {"1e-3", "1e-2"}
    capsys.readouterr()
    assert run_sweep(sweep, out) == 0  # finished runs are reused, not retrained
    assert "Training" not in capsys.readouterr().err
    from unisd.errors import UserError

    # same labels, another recipe: the old results must not pass for the new ones
    with pytest.raises(UserError, match="holds a finished run of another recipe"):
        run_sweep(dataclasses.replace(sweep, max_steps=2), out)


def test_sweep_reports_the_heldout_gain_over_seeds_with_intervals(tiny_model_dir, tmp_path, shared_data):
    from unisd.runs.sweep import Sweep, run_sweep

    sweep = Sweep(
        recipes=["vanilla"],
        seeds=[1, 2],
        model=str(tiny_model_dir),
        max_steps=1,
        overrides=[
            f"data.dataset={{type: gsm8k, path: '{shared_data / 'gsm8k'}'}}",
            "generation.max_new_tokens=4",
            "training.batch_size=2",
            "training.grad_accum=1",
            "lora.r=4",
            "logging.progress_bar=false",
            "evaluation.heldout=4",
            "checkpoint.save_merged=false",
        ],
    )
    assert run_sweep(sweep, tmp_path / "sweep") == 0
    gains = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["heldout_gains"]
    assert len(gains) == 1 and gains[0]["group"] == "vanilla" and gains[0]["seeds"] == [1, 2] and gains[0]["n"] == 4
    g = gains[0]
    assert g["gain"] == pytest.approx(g["after"] - g["before"])
    lo, hi = g["gain_ci_items"]
    assert lo <= g["gain"] <= hi
    assert "paired bootstrap" in (tmp_path / "sweep" / "sweep.md").read_text()


def test_sweep_rejects_a_malformed_grid():
    from unisd.runs.sweep import Sweep, expand
    from unisd.errors import UserError

    with pytest.raises(UserError, match="KEY=V1,V2"):
        expand(Sweep(recipes=["vanilla"], grid=["optim.lr"]))


def test_sweep_seeds_and_grid_values_are_parsed_as_input(capsys):
    from unisd.runs.sweep import Sweep, expand, parse_seeds
    from unisd.errors import UserError

    with pytest.raises(UserError, match=r"--seeds '1,x': 'x' is not an integer"):
        parse_seeds("1,x")
    with pytest.raises(UserError, match=r"--seeds ' , ': no seed given"):
        parse_seeds(" , ")
    assert parse_seeds("3, 1,") == [3, 1]
    runs = expand(
        Sweep(
            recipes=["vanilla"],
            seeds=[1],
            grid=["lora.target_modules=[[q_proj], [q_proj, v_proj]]", "optim.lr=1e-4,1e-3"],
        )
    )
    assert len(runs) == 4 and runs[0]["overrides"] == ['lora.target_modules=["q_proj"]', "optim.lr=1e-4"]
    from unisd.cli.main import main

    # a bad grid value is named as one, not as a --set the user never typed; exit code 2 (bad input)
    assert main(["sweep", "-r", "vanilla", "--grid", "optim.lr=1e-4,fast", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--grid value optim.lr=fast" in err and "--set optim.lr" not in err
    assert main(["sweep", "-r", "vanilla", "--seeds", "1,x", "--dry-run"]) == 2
