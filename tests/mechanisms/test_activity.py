"""Is each mechanism acting? Per-step diagnostics, the per-run activity summary and its inert reasons."""

import json

import pytest
import torch

from unisd.runs.activity import activity_markdown, component_activity, run_activity, warnings
from unisd.runs.launch import train
from unisd.engine.step import gradient_shares, loss_shares
from unisd.plugins import get_registries
from unisd_plugins.agreement.measure import Agreement, AgreementConfig
from unisd_plugins.clipping.guard import ClipConfig, DivergenceClip
from unisd_plugins.contrastive.loss import ContrastiveConfig, TokenContrastive

STAR = [
    "components.ema.every=1",
    "components.agreement.contexts={type: retrieval, k: 2, lexical: true}",
    "logging.diagnostics_every=1",
]


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_unisd_star_logs_what_shows_each_mechanism_acting(make_recipe, tmp_path):
    summary = train(make_recipe("unisd-star", *STAR), tmp_path / "run")
    rows = _rows(tmp_path / "run")
    for key in (
        "agreement/weight_std",
        "agreement/below_0.9",
        "agreement/weight_min",
        "ema/syncs",
        "ema/dist_base",
        "ema/dist_student",
        "ema/kl_base",
        "ema/kl_student",
        "contrastive/active",
        "contrastive/margin",
        "feature_matching/distance",
        "clip/fraction",
        "clip/mass_removed",
        "share/loss/forward_kl",
        "share/grad/contrastive",
        "grad/feature_matching_norm",
    ):
        assert all(key in r for r in rows), key
    assert [r["ema/syncs"] for r in rows] == [1, 2, 3]
    assert rows[0]["ema/kl_base"] == pytest.approx(0, abs=1e-6)  # step 1 is scored before the first sync
    assert rows[-1]["ema/dist_base"] > 0 and rows[-1]["ema/kl_base"] > 0
    for r in rows:  # the shares of one micro-batch, not divided by grad_accum = 2
        assert sum(r[k] for k in r if k.startswith("share/grad/")) == pytest.approx(1.0)
        assert sum(r[k] for k in r if k.startswith("share/loss/")) == pytest.approx(1.0)
    by_name = {a["name"]: a for a in summary["mechanisms"]}
    assert list(by_name) == ["agreement", "contrastive", "feature_matching", "ema", "clip"]
    assert by_name["ema"]["status"] == "active" and by_name["ema"]["metrics"]["syncs"]["last"] == 3
    assert by_name["ema"]["metrics"]["syncs"]["value"] == 3  # a count: its last value, not the mean of 1, 2, 3
    from unisd.runs.activity import merge_runs

    merged = {m["name"]: m for m in merge_runs([summary["mechanisms"], summary["mechanisms"]])}
    assert merged["ema"]["metrics"]["syncs"] == 3
    assert by_name["contrastive"]["grad_share"] is not None


def test_an_ema_that_never_syncs_is_named_inert_in_the_summary(make_recipe, tmp_path, capsys):
    from unisd.cli.train_cmd import print_summary

    summary = train(make_recipe("unisd-ema", "training.max_steps=2"), tmp_path / "run")
    (ema,) = summary["mechanisms"]
    assert ema["status"] == "inert"
    assert ema["reason"] == "EMA syncs every 10 steps, run has 2: the teacher was the base model throughout"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["mechanisms"][0]["reason"] == ema["reason"]
    print_summary(summary, tmp_path / "run")
    assert "EMA syncs every 10 steps, run has 2" in capsys.readouterr().out


def test_diagnostics_every_zero_skips_the_costly_measurements(make_recipe, tmp_path):
    train(make_recipe("unisd-star", *STAR[:2], "logging.diagnostics_every=0", "training.max_steps=1"), tmp_path / "run")
    (row,) = _rows(tmp_path / "run")
    assert "ema/kl_base" not in row and not any(k.startswith("share/grad/") for k in row)
    assert "share/loss/contrastive" in row and "ema/dist_base" in row  # the cheap ones stay


def test_gradient_shares_are_the_norms_of_each_weighted_term():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    terms = {"a": (x**2).sum(), "b": x.sum()}
    out = gradient_shares(terms, {"a": 1.0, "b": 0.5}, [x])
    assert out["grad/a_norm"] == pytest.approx(float(torch.tensor([2.0, 4.0]).norm()))
    assert out["grad/b_norm"] == pytest.approx(float(torch.tensor([0.5, 0.5]).norm()))
    assert out["share/grad/a"] + out["share/grad/b"] == pytest.approx(1.0)
    assert x.grad is None  # nothing accumulated: the real backward comes after
    assert loss_shares({"a": torch.tensor(3.0), "b": torch.tensor(-2.0)}, {"a": 1.0, "b": 0.5}) == {
        "share/loss/a": pytest.approx(0.75),
        "share/loss/b": pytest.approx(0.25),
    }
    assert gradient_shares({"a": terms["a"]}, {}, [x]) == {} and loss_shares({"a": terms["a"]}, {}) == {}


def test_inert_and_weak_components_are_named_with_their_setting():
    agreement = Agreement(AgreementConfig(type="agreement", gamma=0.001))
    entry = component_activity(agreement, [{"step": 1, "agreement/weight_min": 0.991}], 1)
    assert entry["status"] == "inert" and "1/(1 + gamma·cap) = 0.990" in entry["reason"]
    assert component_activity(agreement, [{"step": 1, "agreement/weight_min": 0.6}], 1)["status"] == "active"

    clip = DivergenceClip(ClipConfig(type="clip", cap=10.0))
    entry = component_activity(clip, [{"step": s, "clip/fraction": 0.0, "clip/max_divergence": 2.5} for s in (1, 2)], 2)
    assert entry["reason"] == (
        "nothing was clipped: cap 10 (mode static) was never reached (the largest per-token divergence logged: 2.5)"
    )

    contrastive = TokenContrastive(ContrastiveConfig(type="contrastive", weight=0.01))
    never = [{"step": 1, "contrastive/active": 0.0}]
    assert "hinge was never active" in component_activity(contrastive, never, 1)["reason"]
    weak = component_activity(contrastive, [{"step": 1, "contrastive/active": 0.4, "share/grad/contrastive": 0.002}], 1)
    assert weak["status"] == "weak" and weak["reason"] == "its term is 0.20% of the gradient norm (weight 0.01)"
    assert warnings([weak]) == [
        "contrastive (contrastive) was weak over the run: its term is 0.20% of the gradient norm (weight 0.01)"
    ]
    table = activity_markdown([weak])
    assert "| contrastive (contrastive) | active | 0.4 | 0.4 → 0.4 |" in table and "weak: its term" in table


def test_run_activity_builds_every_recipe_component_from_its_config(make_recipe):
    recipe = make_recipe("unisd-star-reference")
    names = [a["name"] for a in run_activity(recipe, [], get_registries())]
    assert names == [c.name or c.type for c in recipe.components]


def test_inspect_reports_the_activity_of_a_finished_run(make_recipe, tmp_path, capsys):
    from unisd.cli.main import main

    train(make_recipe("unisd-clip", "training.max_steps=2", "components.clip.cap=1000"), tmp_path / "run")
    assert main(["inspect", str(tmp_path / "run"), "--mechanisms"]) == 0
    out = capsys.readouterr().out
    assert "| clip (clip) | fraction | 0 |" in out
    assert "warning: clip (clip) was inert over the run: nothing was clipped: cap 1000 (mode static)" in out
    assert (tmp_path / "run" / "inspect" / "mechanisms.png").stat().st_size > 0


def test_components_with_nothing_to_report_are_left_out(make_recipe):
    recipe = make_recipe("sdft")  # its one component is the plain base teacher
    assert [c.type for c in recipe.components] == ["base"]
    assert run_activity(recipe, [], get_registries()) == []


def test_the_diagnostics_do_not_change_what_is_trained(make_recipe, tmp_path):
    """Extra backwards per term and the EMA's extra forwards leave the weights bit-identical."""
    from safetensors.torch import load_file

    weights = []
    for every in (0, 1):
        train(
            make_recipe("unisd-star", *STAR[:2], f"logging.diagnostics_every={every}", "training.max_steps=2"),
            tmp_path / f"every{every}",
        )
        weights.append(load_file(str(tmp_path / f"every{every}" / "final" / "adapter" / "adapter_model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
