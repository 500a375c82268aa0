"""The recipe-level teacher prompt template (data.teacher_template)."""

import pytest

from unisd.data.templates import apply_teacher_template, check_teacher_template
from unisd.recipe import RecipeError, load_recipe


def test_template_renders_prompt_and_reference_and_the_bad_teacher():
    recs = [
        {
            "prompt": "1 + 2 =",
            "gold": "1 + 2 = 3",
            "reference": "1 + 2 = 3\nAnswer: 3",
            "negative_reference": "Answer: 4",
            "teacher_prompt": "old",
        },
        {"prompt": "2 + 2 =", "gold": "4", "teacher_prompt": "old"},
    ]
    apply_teacher_template(
        recs, "{prompt}\n\nReference solution:\n{reference}", {"negative_prompt": "negative_reference"}
    )
    assert recs[0]["teacher_prompt"] == "1 + 2 =\n\nReference solution:\n1 + 2 = 3\nAnswer: 3"
    assert recs[0]["negative_prompt"] == "1 + 2 =\n\nReference solution:\nAnswer: 4"
    assert recs[1]["teacher_prompt"] == "2 + 2 =\n\nReference solution:\n4"  # no reference slot: the gold
    assert "negative_prompt" not in recs[1]
    apply_teacher_template(recs, "{prompt} / {reference}")  # no component renders a slot: only teacher_prompt
    assert recs[0]["teacher_prompt"] == "1 + 2 = / 1 + 2 = 3\nAnswer: 3" and recs[0]["negative_prompt"].endswith(
        "Answer: 4"
    )


@pytest.mark.parametrize(
    "template,message",
    [
        ("{prompt} only", "must contain {reference}"),
        ("{prompt} {reference} {answer}", r"unknown placeholder\(s\) \{answer\}"),
        ("{prompt} {reference", "not a valid template"),
    ],
)
def test_bad_templates_are_refused(template, message):
    with pytest.raises(ValueError, match=message):
        check_teacher_template(template)


def test_recipe_refuses_a_template_without_the_reference_naming_the_field():
    with pytest.raises(RecipeError, match=r"data\.teacher_template.*\{reference\}"):
        load_recipe("demo", ["data.teacher_template='{prompt} alone'"])


def test_template_reaches_the_training_records(make_recipe, tmp_path):
    from unisd.engine.data import load_records
    from unisd.plugins import get_host

    recipe = make_recipe("vanilla", "data.teacher_template='Q: {prompt} Ref: {reference}'")
    _, records = load_records(recipe, get_host().registries)
    assert records[0]["teacher_prompt"] == f"Q: {records[0]['prompt']} Ref: {records[0]['gold']}"


def test_the_contrastive_loss_has_its_negative_reference_rendered(make_recipe, tmp_path):
    """The contrastive component declares negative_prompt as a slot rendered from negative_reference:
    with it in the recipe the template renders both; the core names neither."""
    from unisd.engine.data import load_records
    from unisd.plugins import get_host

    template = "data.teacher_template='Q: {prompt} Ref: {reference}'"
    data = "data.dataset={type: reasoning_gym, task: chain_sum, size: 8}"
    _, plain = load_records(make_recipe("vanilla", template, data), get_host().registries)
    _, with_neg = load_records(
        make_recipe("vanilla", template, data, "components=[{type: contrastive}]"), get_host().registries
    )
    rec = with_neg[0]
    assert rec["negative_prompt"] == f"Q: {rec['prompt']} Ref: {rec['negative_reference']}"
    assert plain[0]["negative_prompt"] != f"Q: {rec['prompt']} Ref: {rec['negative_reference']}"  # the adapter's own
