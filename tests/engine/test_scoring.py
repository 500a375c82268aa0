"""Position alignment of scores across prompt lengths and padding (spec §1.2, §9)."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from unisd.engine.batching import completion_mask_from_ids, pad_left, pad_right
from unisd.engine.scoring import LM_HEAD_INPUT, score


def _load(d):
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(d)
    return model, tok


def _reference_logps(model, prompt, completion, temperature=1.0):
    """Unpadded, one row at a time: log p(y_t | prompt, y_<t)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float() / temperature
    lp = torch.log_softmax(logits, -1)
    return torch.stack([lp[len(prompt) - 1 + t, completion[t]] for t in range(len(completion))])


def test_scores_align_with_unpadded_rows(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    prompts = [[5, 6, 7, 8, 9, 10, 11], [12, 13], [14, 15, 16, 17]]
    completions = [[20, 21, 22, 23], [24, 25], [26, 27, 28]]
    prompt = pad_left(prompts, tok.pad_token_id)
    cids, cmask = pad_right(completions, tok.pad_token_id)
    with torch.no_grad():
        s = score(model, model, prompt, cids, cmask, temperature=0.7)
    for b, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ref = _reference_logps(model, p, c, 0.7)
        assert torch.allclose(s.token_logps[b, : len(c)], ref, atol=1e-4), b
        assert torch.allclose(s.logprobs[b, : len(c)].gather(-1, torch.tensor(c)[:, None]).squeeze(-1), ref, atol=1e-4)


def test_teacher_and_student_contexts_of_different_lengths_score_the_same_tokens(tiny_model_dir):
    model, tok = _load(tiny_model_dir)
    completion = [[30, 31, 32]]
    cids, cmask = pad_right(completion, tok.pad_token_id)
    short, long = [40, 41], [42, 43, 44, 45, 46, 47, 48, 49]
    with torch.no_grad():
        s_short = score(model, model, pad_left([short], tok.pad_token_id), cids, cmask, temperature=1.0)
        s_long = score(model, model, pad_left([long], tok.pad_token_id), cids, cmask, temperature=1.0)
    assert torch.allclose(s_short.token_logps[0], _reference_logps(model, short, completion[0]), atol=1e-4)
    assert torch.allclose(s_long.token_logps[0], _reference_logps(model, long, completion[0]), atol=1e-4)


def test_feature_hook_captures_lm_head_input(tiny_model_dir):
    """The matched feature is the LM-head input: lm_head(feature) reproduces the logits (spec §9)."""
    model, tok = _load(tiny_model_dir)
    prompt = pad_left([[5, 6, 7], [8, 9]], tok.pad_token_id)
    cids, cmask = pad_right([[20, 21], [22]], tok.pad_token_id)
    with torch.no_grad():
        s = score(model, model, prompt, cids, cmask, temperature=1.0, feature_layers=[LM_HEAD_INPUT, "model.norm"])
        logits = model.lm_head(s.features[LM_HEAD_INPUT])
    assert torch.allclose(torch.log_softmax(logits.float(), -1), s.logprobs, atol=1e-5)
    assert torch.allclose(s.features["model.norm"], s.features[LM_HEAD_INPUT])


def test_completion_mask_includes_eos_and_flags_truncation():
    ids = torch.tensor([[5, 2, 0, 0], [5, 6, 7, 8]])
    mask, truncated = completion_mask_from_ids(ids, [2])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert truncated.tolist() == [False, True]
    mask, _ = completion_mask_from_ids(torch.tensor([[2, 2, 2]]), 2)  # EOS at once: one scored token
    assert mask.tolist() == [[1, 0, 0]]


def test_length_groups_fit_the_budget_and_cover_every_row_once():
    from unisd.engine.scoring import length_groups

    p = torch.tensor([30, 5, 28, 6, 7, 29])
    c = torch.tensor([4, 2, 4, 3, 1, 2])
    groups = length_groups(p, c, 70)
    assert sorted(torch.cat(groups).tolist()) == list(range(6))
    for g in groups:
        assert len(g) == 1 or len(g) * (int(p[g].max()) + int(c[g].max())) <= 70
    assert [sorted(g.tolist()) for g in groups] == [[0, 5], [2, 4], [1, 3]]  # in order of length, as many as fit
    assert [g.tolist() for g in length_groups(p, c, 10)] == [[0], [5], [2], [4], [3], [1]]  # a row alone exceeds it


@pytest.mark.parametrize("mode", ["full", "blocks", "hidden"])
def test_scoring_in_length_groups_equals_one_forward(tiny_model_dir, mode):
    """Rows scored in groups (each trimmed to its own padding) give the one-forward scores and the
    same gradients at every completion token, in row order."""
    model, tok = _load(tiny_model_dir)
    model.train(False)
    prompts = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [12, 13], [14, 15, 16, 17, 18, 19, 20, 21], [22, 23, 24]]
    completions = [[20, 21], [24, 25, 26, 27, 28], [26, 27, 28], [29]]
    prompt = pad_left(prompts, tok.pad_token_id)
    cids, cmask = pad_right(completions, tok.pad_token_id)
    kw = dict(
        temperature=0.7,
        full_logprobs=mode == "full",
        logit_chunk=0 if mode == "full" else 2,
        keep_hidden=mode == "hidden",
        feature_layers=["model.layers.0", LM_HEAD_INPUT],
    )

    def run(max_tokens):
        model.zero_grad()
        s = score(model, model, prompt, cids, cmask, max_tokens=max_tokens, **kw)
        out = s.hidden if mode == "hidden" else s.token_logps
        (out * cmask[..., None] if out.dim() == 3 else out * cmask).sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return s, grads

    one, g_one = run(0)
    grouped, g_grouped = run(16)
    from unisd.engine.scoring import length_groups

    assert len(length_groups(prompt.lengths, cmask.sum(-1), 16)) > 1  # the budget does split the rows
    m = cmask > 0
    if mode == "hidden":
        assert torch.allclose(grouped.hidden[m], one.hidden[m], atol=1e-5)
        assert grouped.head[0] is one.head[0]
    else:
        assert torch.allclose(grouped.token_logps[m], one.token_logps[m], atol=1e-5)
    if mode == "full":
        assert torch.allclose(grouped.logprobs[m], one.logprobs[m], atol=1e-5)
    for name in one.features:
        assert torch.allclose(grouped.features[name][m], one.features[name][m], atol=1e-5), name
    assert len(g_one) == len(g_grouped) and all(
        torch.allclose(a, b, atol=1e-5) for a, b in zip(g_one, g_grouped, strict=True)
    )


def test_no_length_groups_where_processes_must_run_the_same_forwards(make_recipe):
    """Under FSDP2 every forward gathers weights collectively, and a DDP student takes one forward
    per backward: there the budget is not applied."""
    from types import SimpleNamespace

    from unisd.engine.step import MicroStep

    recipe = make_recipe("vanilla")
    student = torch.nn.Linear(1, 1)

    def budgets(model, sharded):
        run = SimpleNamespace(
            recipe=recipe, tokenizer=None, model=student, sharded=sharded, divergence=None, components=[]
        )
        step = MicroStep(run, model, None, None, None)
        return step.student_max_tokens, step.teacher_max_tokens

    assert budgets(student, False) == (1024, 1024)
    assert budgets(torch.nn.Sequential(student), False) == (0, 1024)  # a wrapper: the DDP student
    assert budgets(student, True) == (0, 0)


@pytest.mark.parametrize("mode", ["full", "blocks", "hidden"])
@pytest.mark.parametrize("max_tokens", [0, 16])
def test_a_shared_prompt_prefix_run_once_gives_the_one_forward_scores(tiny_model_dir, mode, max_tokens):
    """Rows whose prompts start alike: the prefix runs once and every row (every length group)
    continues from its cache, with the scores and features of whole rows."""
    from unisd.engine.scoring import SharedPrefix

    model, tok = _load(tiny_model_dir)
    head = [40, 41, 42, 43, 44]
    prompts = [head + [5, 6, 7, 8, 9, 10], head + [12], head + [14, 15, 16, 17], head + [18, 19]]
    completions = [[20, 21], [24, 25, 26, 27, 28], [26, 27, 28], [29]]
    prompt = pad_left(prompts, tok.pad_token_id)
    cids, cmask = pad_right(completions, tok.pad_token_id)
    kw = dict(
        temperature=0.7,
        full_logprobs=mode == "full",
        logit_chunk=0 if mode == "full" else 2,
        keep_hidden=mode == "hidden",
        feature_layers=["model.layers.0", LM_HEAD_INPUT],
        max_tokens=max_tokens,
    )
    calls = []
    hook = model.register_forward_pre_hook(lambda m, a, k: calls.append(k["input_ids"].shape), with_kwargs=True)
    with torch.no_grad():
        one = score(model, model, prompt, cids, cmask, **kw)
        n_plain = len(calls)
        shared = score(model, model, prompt, cids, cmask, share_prefix=3, **kw)
    hook.remove()
    assert calls[n_plain] == (1, 5)  # the prefix, once
    assert all(shape[1] <= calls[0][1] - 5 for shape in calls[n_plain + 1 :])  # the rows without it
    m = cmask > 0
    for a, b in [(shared.hidden, one.hidden), (shared.token_logps, one.token_logps), (shared.logprobs, one.logprobs)]:
        if b is not None:
            assert torch.allclose(a[m], b[m], atol=1e-5)
    for name in one.features:
        assert torch.allclose(shared.features[name][m], one.features[name][m], atol=1e-5), name
    with torch.no_grad():  # shorter than asked, or a row that is all prefix: not shared
        assert SharedPrefix.of(model, model, prompt, 6) is None
        assert SharedPrefix.of(model, model, pad_left([head, head + [7]], 0), 5) is None
        assert SharedPrefix.of(model, model, pad_left([head, head + [7]], 0), 4).length == 4
    with pytest.raises(RuntimeError, match="without gradient"):
        SharedPrefix.of(model, model, prompt, 3)


def test_the_teacher_shares_prompt_prefixes_unless_sharded_or_switched_off(make_recipe):
    from types import SimpleNamespace

    from unisd.engine.step import MicroStep

    student = torch.nn.Linear(1, 1)

    def share(recipe, sharded):
        run = SimpleNamespace(
            recipe=recipe, tokenizer=None, model=student, sharded=sharded, divergence=None, components=[]
        )
        return MicroStep(run, student, None, None, None).teacher_share_prefix

    assert share(make_recipe("vanilla"), False) == 8
    assert share(make_recipe("vanilla"), True) == 0  # every process must run the same forwards
    assert share(make_recipe("vanilla", "training.share_prompt_prefix=false"), False) == 0
