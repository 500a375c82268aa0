"""EMA teacher (spec §2b, §7.1, §9): closed form after n syncs, fp32, reference no-op, state round trip."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from unisd.engine.modeling import build_student
from unisd.testing import randomize_lora
from unisd_plugins.ema.teacher import EMAConfig, EMATeacher


class _Run:
    def __init__(self, model):
        self.model = model

    def place_frozen(self, module):
        return module


def _student(tiny_model_dir, make_recipe):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return build_student(model, make_recipe("vanilla")).eval()  # no LoRA dropout in comparisons


def _perturb(model, seed):
    randomize_lora(model, seed, 0.1)


def _first_lora(model):
    for name, m in model.named_modules():
        if hasattr(m, "lora_A") and hasattr(m, "base_layer") and "default" in m.lora_A:
            return name, m


def test_closed_form_after_n_syncs(tiny_model_dir, make_recipe):
    model = _student(tiny_model_dir, make_recipe)
    beta = 0.8
    t = EMATeacher(EMAConfig(type="ema", beta=beta, every=1))
    t.setup(_Run(model))
    name, layer = _first_lora(model)
    deltas = []
    for j in range(3):
        _perturb(model, j)
        deltas.append(t.lora_delta(layer).clone())
        t.sync()
    expected = sum((1 - beta) * beta ** (3 - 1 - j) * d for j, d in enumerate(deltas))
    key = f"{name}.base_layer.weight"
    assert t.ema[key].dtype == torch.float32
    assert torch.allclose(t.ema[key], expected, atol=1e-6)
    W = t.teacher_weights()[key]
    assert torch.allclose(W, layer.base_layer.weight + expected, atol=1e-6)


def test_teacher_forward_uses_ema_weights_and_leaves_student_untouched(tiny_model_dir, make_recipe):
    model = _student(tiny_model_dir, make_recipe)
    t = EMATeacher(EMAConfig(type="ema", beta=0.5, every=1))
    t.setup(_Run(model))
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad(), model.disable_adapter():
        base_logits = model(input_ids=ids).logits
    _perturb(model, 3)
    with torch.no_grad(), t.teacher_forward() as fwd:  # before any sync the teacher is the base
        assert torch.allclose(fwd(input_ids=ids).logits, base_logits, atol=1e-5)
    t.sync()
    with torch.no_grad():
        merged = model(input_ids=ids).logits
        with t.teacher_forward() as fwd:
            teacher = fwd(input_ids=ids).logits
    assert not torch.allclose(teacher, base_logits, atol=1e-5) and not torch.allclose(teacher, merged, atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, merged)  # student unchanged


def test_reference_mode_never_moves(tiny_model_dir, make_recipe):
    model = _student(tiny_model_dir, make_recipe)
    t = EMATeacher(EMAConfig(type="ema", beta=0.5, every=1, mode="reference"))
    t.setup(_Run(model))
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad(), model.disable_adapter():
        base = model(input_ids=ids).logits
    for j in range(3):
        _perturb(model, j)
        t.sync()
    with torch.no_grad(), t.teacher_forward() as fwd:
        assert torch.allclose(fwd(input_ids=ids).logits, base, atol=1e-6)


def test_state_round_trips_through_checkpoint_hooks(tiny_model_dir, make_recipe):
    model = _student(tiny_model_dir, make_recipe)
    a = EMATeacher(EMAConfig(type="ema", beta=0.5, every=2))
    a.setup(_Run(model))
    _perturb(model, 1)
    logged = {}
    a.unisd_on_step_end(None, 1, logged)  # not a sync step
    assert a.syncs == 0 and logged["ema/syncs"] == 0 and logged["ema/dist_base"] == 0
    a.unisd_on_step_end(None, 2, logged)
    assert logged["ema/syncs"] == 1 and logged["ema/dist_base"] > 0
    state = a.unisd_checkpoint_state(None)
    b = EMATeacher(EMAConfig(type="ema", beta=0.5, every=2))
    b.setup(_Run(model))
    b.unisd_load_checkpoint_state(None, state)
    assert b.syncs == 1 and all(torch.equal(a.ema[k], b.ema[k]) for k in a.ema)


def test_distances_place_the_ema_teacher_between_base_and_student(tiny_model_dir, make_recipe):
    model = _student(tiny_model_dir, make_recipe)
    t = EMATeacher(EMAConfig(type="ema", beta=0.75, every=1))
    t.setup(_Run(model))
    _perturb(model, 5)
    assert t.distances()["dist_base"] == 0  # no sync yet: the teacher is the base model
    t.sync()
    d = t.distances()
    # one sync from E = 0: E = (1 − β)·Δ, so ‖E‖ = 0.25‖Δ‖ and ‖E − Δ‖ = 0.75‖Δ‖
    assert d["dist_base"] == pytest.approx(0.25 * d["student_dist_base"], rel=1e-5)
    assert d["dist_student"] == pytest.approx(0.75 * d["student_dist_base"], rel=1e-5)


def test_inert_reasons_name_the_setting():
    t = EMATeacher(EMAConfig(type="ema", beta=0.9, every=10))
    assert (
        t.inert_reason([{"step": 8, "ema/syncs": 0.0}], 8)
        == "EMA syncs every 10 steps, run has 8: the teacher was the base model throughout"
    )
    assert t.inert_reason([{"step": 20, "ema/dist_base": 0.3}], 20) is None
    ref = EMATeacher(EMAConfig(type="ema", mode="reference"))
    assert "mode: reference" in ref.inert_reason([], 100)
