"""Teacher providers: the LoRA-disabled teacher equals the base model (spec §1.1, issue: no second copy)."""

import torch
from transformers import AutoModelForCausalLM

from unisd.engine.modeling import build_student
from unisd_plugins.teachers.providers import BaseTeacher, FrozenCopyTeacher, LiveStudentTeacher


class _Run:
    def __init__(self, model):
        self.model = model

    def place_frozen(self, module):
        return module


def _trained_student(tiny_model_dir, make_recipe):
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    student = build_student(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), make_recipe("vanilla")
    )
    with torch.no_grad():  # as if trained: non-zero adapter
        for n, p in student.named_parameters():
            if "lora_B" in n:
                p.add_(0.05)
    return base, student


def test_lora_disabled_teacher_equals_base_model(tiny_model_dir, make_recipe):
    base, student = _trained_student(tiny_model_dir, make_recipe)
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    t = BaseTeacher(BaseTeacher.Config(type="base"))
    t.setup(_Run(student))
    assert t.copy is None  # no second copy under LoRA
    student.train()
    with torch.no_grad(), t.teacher_forward() as fwd:
        got = fwd(input_ids=ids).logits
    assert student.training  # mode restored
    with torch.no_grad():
        assert torch.allclose(got, base(input_ids=ids).logits, atol=1e-5)
        student.eval()
        assert not torch.allclose(student(input_ids=ids).logits, got, atol=1e-4)


def test_frozen_copy_equals_base_and_live_student_equals_student(tiny_model_dir, make_recipe):
    base, student = _trained_student(tiny_model_dir, make_recipe)
    ids = torch.tensor([[5, 6, 7]])
    f = FrozenCopyTeacher(FrozenCopyTeacher.Config(type="frozen_copy"))
    f.setup(_Run(student))
    live = LiveStudentTeacher(LiveStudentTeacher.Config(type="student"))
    live.setup(_Run(student))
    with torch.no_grad():
        with f.teacher_forward() as fwd:
            assert torch.allclose(fwd(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-5)
        assert not any(p.requires_grad for p in f.copy.parameters())
        student.eval()
        with live.teacher_forward() as fwd:
            assert torch.allclose(fwd(input_ids=ids).logits, student(input_ids=ids).logits)
