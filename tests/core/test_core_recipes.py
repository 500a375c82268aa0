"""Recipes: shipped recipes, round trips, ``extends``, ``--set`` overrides, error messages and the
JSON Schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from unisd.plugins import get_registries
from unisd.recipe import RecipeError, apply_overrides, dump_recipe, load_raw, load_recipe, recipe_model, validate
from unisd.recipe.loading import deep_merge, parse_override, read_document

ROOT = Path(__file__).resolve().parents[2]
RECIPE_DIR = ROOT / "plugins" / "unisd_plugins" / "recipes"
SHIPPED = sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))
COMPONENT_TYPES = ["base", "frozen_copy", "student", "ema", "agreement", "contrastive", "feature_matching", "clip"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return p


def problems_of(exc_info) -> list[str]:
    return exc_info.value.problems


# -- shipped recipes -----------------------------------------------------------------------------
def test_shipped_recipes_are_registered_from_the_unisd_package():
    recipes = get_registries().recipes
    shipped = sorted(e.name for e in recipes.entries() if e.origin == "unisd")
    assert shipped == SHIPPED and len(SHIPPED) >= 15
    for name in SHIPPED:
        assert Path(recipes.get(name)) == RECIPE_DIR / f"{name}.yaml"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipe_validates(name):
    recipe = load_recipe(name)
    assert recipe.name == name  # the file's name: field matches its registry name
    assert recipe.description.strip(), f"{name} has no description"
    assert recipe.divergence.type in get_registries().divergences
    types = [c.type for c in recipe.components]
    assert len(types) == len(set(types))


def test_every_recipe_in_the_registry_validates():
    """Shipped and third-party (installed) recipes alike."""
    bad = {}
    for name in get_registries().recipes.names():
        try:
            load_recipe(name)
        except RecipeError as exc:
            bad[name] = str(exc)
    assert not bad, bad


def test_shipped_recipe_contents_spot_checks():
    star = load_recipe("unisd-star")
    assert [c.type for c in star.components] == ["agreement", "contrastive", "feature_matching", "ema", "clip"]
    assert star.components[0].gamma == pytest.approx(0.001)
    clip = load_recipe("unisd-clip")
    assert clip.components[0].mode == "static" and clip.components[0].cap == 10.0
    # unisd-clip extends vanilla: everything but name/description/components comes from vanilla
    vanilla = load_recipe("vanilla")
    for section in ("model", "data", "generation", "objective", "divergence", "lora", "optim", "training"):
        assert getattr(clip, section) == getattr(vanilla, section), section


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_round_trip_yaml_json_model(name, tmp_path):
    recipe = load_recipe(name)
    ref = recipe.model_dump()

    y = tmp_path / f"{name}.yaml"
    y.write_text(dump_recipe(recipe, "yaml"), encoding="utf-8")
    from_yaml = load_recipe(y)
    assert from_yaml.model_dump() == ref

    j = tmp_path / f"{name}.json"
    j.write_text(dump_recipe(from_yaml, "json"), encoding="utf-8")
    assert json.loads(j.read_text())["name"] == name  # real JSON
    from_json = load_recipe(j)
    assert from_json.model_dump() == ref

    # JSON → YAML gives the same text as the first YAML dump
    assert dump_recipe(from_json, "yaml") == y.read_text(encoding="utf-8")
    # the dump is fully explicit: every section appears
    assert set(yaml.safe_load(y.read_text())) == set(type(recipe).model_fields)


# -- extends -------------------------------------------------------------------------------------
def test_extends_child_overrides_merges_mappings_and_replaces_lists(tmp_path):
    write(
        tmp_path,
        "parent.yaml",
        """
        name: parent
        description: the parent
        optim: {lr: 0.001, weight_decay: 0.1}
        lora: {r: 8, target_modules: [q_proj, k_proj, v_proj]}
        components:
          - type: clip
            mode: static
            cap: 5
          - type: ema
    """,
    )
    child = write(
        tmp_path,
        "child.yaml",
        """
        extends: parent.yaml
        name: child
        optim: {lr: 0.0005}
        lora: {target_modules: [o_proj]}
        components:
          - type: contrastive
    """,
    )
    r = load_recipe(child)
    assert r.name == "child" and r.description == "the parent"
    assert r.optim.lr == 0.0005 and r.optim.weight_decay == 0.1  # mapping merged
    assert r.lora.r == 8 and r.lora.target_modules == ["o_proj"]  # list replaced, not appended
    assert [c.type for c in r.components] == ["contrastive"]
    data, _, path = load_raw(child)
    assert "extends" not in data and path == child.resolve()


def test_extends_multi_level_and_shipped_names(tmp_path):
    mid = write(
        tmp_path,
        "sub/mid.yaml",
        """
        extends: unisd-clip
        name: mid
        training: {max_steps: 7}
    """,
    )
    leaf = write(
        tmp_path,
        "leaf.yaml",
        """
        extends: sub/mid.yaml
        name: leaf
        components: [{type: clip, mode: quantile, quantile: 0.9}]
    """,
    )
    r = load_recipe(leaf)
    vanilla = load_recipe("vanilla")
    assert r.name == "leaf" and r.training.max_steps == 7
    assert r.components[0].mode == "quantile" and r.components[0].quantile == 0.9
    assert r.objective == vanilla.objective and r.divergence == vanilla.divergence
    assert load_recipe(mid).components[0].cap == 10.0


def test_extends_relative_path_is_relative_to_the_child_file(tmp_path, monkeypatch):
    write(tmp_path, "recipes/base.yaml", "name: base\ntraining: {epochs: 3}\n")
    child = write(tmp_path, "recipes/child.yaml", "extends: base.yaml\nname: child\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_recipe(child).training.epochs == 3


@pytest.mark.parametrize("chain", [["a"], ["a", "b"], ["a", "b", "c"]])
def test_extends_cycle_is_detected(tmp_path, chain):
    for i, n in enumerate(chain):
        nxt = chain[(i + 1) % len(chain)]
        write(tmp_path, f"{n}.yaml", f"extends: {nxt}.yaml\nname: {n}\n")
    with pytest.raises(RecipeError) as ei:
        load_recipe(tmp_path / "a.yaml")
    (msg,) = problems_of(ei)
    assert msg.startswith("'extends' forms a cycle: ")
    files = [Path(p).name for p in msg.split(": ", 1)[1].split(" -> ")]
    assert files == [f"{n}.yaml" for n in chain] + ["a.yaml"]


def test_extends_must_be_a_string(tmp_path):
    p = write(tmp_path, "x.yaml", "name: x\nextends: [vanilla]\n")
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    assert problems_of(ei) == ["line 2: extends: must be a recipe name or path"]


def test_extends_unknown_name_suggests(tmp_path):
    p = write(tmp_path, "x.yaml", "extends: vanila\n")
    with pytest.raises(
        RecipeError, match=r"unknown recipe 'vanila'\. Did you mean 'vanilla'\?.*or give a \.yaml/\.json path"
    ):
        load_recipe(p)


def test_extends_missing_file(tmp_path):
    p = write(tmp_path, "x.yaml", "extends: nothere.yaml\n")
    with pytest.raises(RecipeError, match="file not found"):
        load_recipe(p)


def test_error_in_extended_parent_names_the_parent(tmp_path):
    write(tmp_path, "parent.yaml", "name: parent\noptim:\n  lrr: 1\n")
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\nname: child\n")
    with pytest.raises(RecipeError) as ei:
        load_recipe(child)
    assert "parent.yaml" in str(ei.value)


def test_deep_merge_does_not_mutate_inputs():
    base = {"a": {"b": [1, 2], "c": 1}}
    over = {"a": {"b": [3]}}
    out = deep_merge(base, over)
    assert out == {"a": {"b": [3], "c": 1}}
    out["a"]["b"].append(4)
    assert base == {"a": {"b": [1, 2], "c": 1}} and over == {"a": {"b": [3]}}


# -- --set overrides ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expr, key, value",
    [
        ("optim.lr=1e-5", ["optim", "lr"], "1e-5"),  # YAML 1.1: a string, pydantic makes it a float
        ("optim.lr=0.001", ["optim", "lr"], 0.001),
        ("lora.target_modules=[q_proj, v_proj]", ["lora", "target_modules"], ["q_proj", "v_proj"]),
        ("training.max_steps=null", ["training", "max_steps"], None),
        ("lora.enabled=false", ["lora", "enabled"], False),
        ("description=a=b", ["description"], "a=b"),
        ("name=", ["name"], ""),
        ("components[0].cap=2", ["components", "0", "cap"], 2),
        ("data.dataset={type: jsonl, path: x.jsonl}", ["data", "dataset"], {"type": "jsonl", "path": "x.jsonl"}),
    ],
)
def test_parse_override(expr, key, value):
    assert parse_override(expr) == (key, value)


def test_overrides_nested_keys_and_yaml_values():
    r = load_recipe(
        "vanilla",
        [
            "optim.lr=1e-5",
            "lora.target_modules=[q_proj, v_proj]",
            "training.max_steps=3",
            "lora.enabled=false",
            "evaluation.tasks=[unisd_gpqa, mbpp]",
            "generation.top_k=5",
        ],
    )
    assert r.optim.lr == pytest.approx(1e-5)
    assert r.lora.target_modules == ["q_proj", "v_proj"] and r.lora.enabled is False
    assert r.training.max_steps == 3 and r.evaluation.tasks == ["unisd_gpqa", "mbpp"] and r.generation.top_k == 5


def test_overrides_apply_in_order():
    assert load_recipe("vanilla", ["training.max_steps=3", "training.max_steps=4"]).training.max_steps == 4


@pytest.mark.parametrize(
    "path", ["components.agreement.gamma", "components.0.gamma", "components[0].gamma", "components.-5.gamma"]
)
def test_override_component_by_type_or_index(path):
    r = load_recipe("unisd-star", [f"{path}=0.25"])
    assert r.components[0].type == "agreement" and r.components[0].gamma == 0.25
    assert r.components[1].type == "contrastive"  # the others untouched


def test_override_nested_inside_a_component():
    r = load_recipe("unisd-star", ["components.agreement.contexts.k=4", "components.clip.quantile=0.9"])
    assert r.components[0].contexts["k"] == 4 and r.components[4].quantile == 0.9


def test_override_through_scalars_and_lists_directly():
    data = {"optim": {"lr": 1.0}, "lora": {"target_modules": ["q", "k"]}}
    with pytest.raises(RecipeError, match=r"'optim.lr.x=1': optim.lr is a float, not a mapping or list"):
        apply_overrides(data, ["optim.lr.x=1"])
    assert apply_overrides(data, ["lora.target_modules.1=v"])["lora"]["target_modules"] == ["q", "v"]
    with pytest.raises(RecipeError, match=r"no item with name or type 'x' at lora.target_modules.x\. Items: \[\]"):
        apply_overrides(data, ["lora.target_modules.x=1"])
    # a missing section is created
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


def test_override_does_not_mutate_its_input():
    data = {"optim": {"lr": 1.0}, "components": [{"type": "clip"}]}
    out = apply_overrides(data, ["optim.lr=2", "components.clip.cap=3"])
    assert out == {"optim": {"lr": 2}, "components": [{"type": "clip", "cap": 3}]}
    assert data == {"optim": {"lr": 1.0}, "components": [{"type": "clip"}]}


def test_override_unknown_component_type_suggests():
    with pytest.raises(RecipeError) as ei:
        load_recipe("unisd-star", ["components.agreemnt.gamma=1"])
    assert ei.value.source == "--set"
    (msg,) = problems_of(ei)
    assert msg.startswith("'components.agreemnt.gamma=1': no item with name or type 'agreemnt' at components.agreemnt.")
    assert "Did you mean 'agreement'?" in msg
    assert "Items: ['agreement', 'contrastive', 'feature_matching', 'ema', 'clip']" in msg


@pytest.mark.parametrize("idx", ["5", "-6"])
def test_override_index_out_of_range(idx):
    with pytest.raises(RecipeError) as ei:
        load_recipe("unisd-star", [f"components.{idx}.gamma=1"])
    assert problems_of(ei) == [f"'components.{idx}.gamma=1': index {idx} out of range at components.{idx} (5 items)"]


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("optim.lr", "'optim.lr': expected KEY=VALUE, e.g. optim.lr=1e-5"),
        ("=3", "'=3': expected KEY=VALUE"),
        ("  =3", "expected KEY=VALUE"),
        ("optim.lr=[1,", "'optim.lr=[1,': value is not valid YAML"),
        ("name.first=1", "'name.first=1': name is a str, not a mapping or list"),
        ("description.x.y=1", "'description.x.y=1': description is a str, not a mapping or list"),
    ],
)
def test_malformed_overrides(expr, expected):
    with pytest.raises(RecipeError) as ei:
        load_recipe("vanilla", [expr])
    assert ei.value.source == "--set"
    assert expected in problems_of(ei)[0]


def test_override_values_are_validated():
    with pytest.raises(RecipeError) as ei:
        load_recipe("unisd-clip", ["optim.lr=-1", "components.clip.mode=sometimes"])
    probs = problems_of(ei)
    assert len(probs) == 2
    # a value that came from --set is blamed on the override, not on a line of the file
    assert (
        "--set components.clip.mode=sometimes: components[0].mode: Input should be 'static', 'quantile', 'relative' or "
        "'fraction' (got 'sometimes')"
    ) in probs
    assert "--set optim.lr=-1: optim.lr: Input should be greater than 0" in probs


def test_override_error_outside_the_file_has_no_made_up_line():
    with pytest.raises(RecipeError) as ei:
        load_recipe("unisd-clip", ["optim.lr=-1"])
    (msg,) = problems_of(ei)
    assert not msg.startswith("line 1:"), msg


def test_section_overrides_keyword():
    r = load_recipe("vanilla", training={"max_steps": 2}, optim={"lr": 0.5})
    assert r.training.max_steps == 2 and r.optim.lr == 0.5
    assert r.optim.scheduler == load_recipe("vanilla").optim.scheduler  # merged, not replaced


# -- error messages --------------------------------------------------------------------------------
BAD = """
name: bad
optimm:
  lr: 1
optim:
  scheduler: cosin
  lr: -1
training:
  epochs: many
components:
  - type: agreemnt
    gamma: 0.1
  - type: clip
    mode: static
"""


def test_several_problems_in_one_error_with_lines_paths_and_hints(tmp_path):
    p = write(tmp_path, "bad.yaml", BAD)
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    err = ei.value
    assert err.source == str(p.resolve())
    probs = err.problems
    assert len(probs) == 5
    assert str(err).startswith(f"invalid recipe {p.resolve()} (5 problems):\n  - ")
    by_path = {pr.split(": ", 2)[1]: pr for pr in probs}
    # unknown top-level field: line, did-you-mean and every allowed field
    top = by_path["optimm"]
    assert top.startswith("line 2: optimm: unknown field. Did you mean 'optim'? Allowed: ")
    allowed = top.split("Allowed: ")[1].split(", ")
    assert allowed == sorted(recipe_model().model_fields)
    # literal: allowed values and the bad input
    assert by_path["optim.scheduler"] == (
        "line 5: optim.scheduler: Input should be 'cosine', 'linear' or 'constant' (got 'cosin')"
    )
    assert by_path["optim.lr"] == "line 6: optim.lr: Input should be greater than 0"
    assert by_path["training.epochs"].startswith("line 8: training.epochs: Input should be a valid integer")
    # unknown component type: did-you-mean and the allowed types
    comp = by_path["components[0]"]
    assert comp.startswith("line 10: components[0]: unknown type 'agreemnt'. Did you mean 'agreement'")
    assert set(COMPONENT_TYPES) <= set(comp.split("Allowed: ")[1].split(", "))


def test_problems_in_json_recipes_have_lines_too(tmp_path):
    p = write(
        tmp_path,
        "bad.json",
        """
        {
          "name": "j",
          "trainng": {"epochs": 2},
          "optim": {"scheduler": "cosin"}
        }
    """,
    )
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    probs = sorted(problems_of(ei))
    assert probs[0].startswith("line 3: trainng: unknown field. Did you mean 'training'?")
    assert probs[1].startswith("line 4: optim.scheduler: Input should be 'cosine'")


@pytest.mark.parametrize(
    "doc, expected",
    [
        (
            {"divergence": {"type": "forwrd_kl"}},
            "divergence: unknown type 'forwrd_kl'. Did you mean 'forward_kl'? Allowed: forward_kl, jsd, reverse_kl",
        ),
        (
            {"divergence": {"type": "jsd", "betaa": 0.5}},
            "divergence.betaa: unknown field. Did you mean 'beta'? Allowed: beta, name, type, weight",
        ),
        ({"data": {"dataset": {"type": "gsm8"}}}, "data.dataset: unknown type 'gsm8'. Did you mean 'gsm8k'?"),
        (
            {"data": {"dataset": {"type": "gsm8k", "splitt": "x"}}},
            "data.dataset.splitt: unknown field. Did you mean 'split'?",
        ),
        (
            {"objective": {"type": "distil"}},
            "objective: unknown type 'distil'. Did you mean 'distill'? Allowed: distill, sft, ssd",
        ),
        ({"model": {"dtype": "fp32"}}, "model.dtype: Input should be 'float32', 'bfloat16' or 'float16' (got 'fp32')"),
        ({"generation": {"top_p": 0}}, "generation.top_p: Input should be greater than 0"),
        ({"lora": {"r": "big"}}, "lora.r: Input should be a valid integer"),
        ({"lora": {"enabled": "maybe"}}, "lora.enabled: Input should be a valid boolean"),
        ({"name": 3}, "name: Input should be a valid string"),
        ({"optim": {"betas": [0.9]}}, "optim.betas[1]: Field required"),
        ({"components": {"type": "clip"}}, "components: Input should be a valid list"),
        ({"components": [{"gamma": 1}]}, "components[0]: Unable to extract tag using discriminator 'type'"),
        ({"components": [{"type": "clip", "mode": "sometimes"}]}, "components[0].mode: Input should be"),
        (
            {"components": [{"type": "agreement", "contexts": {"type": "randm"}}]},
            "components[0].contexts: Value error, unknown context_builder 'randm'. Did you mean 'random'?",
        ),
        (
            {"components": [{"type": "agreement", "contexts": {"type": "random", "k": 1}}]},
            "contexts.k must be at least 2",
        ),
        ({"evaluation": {"tasks": ["a", "a"]}}, "evaluation.tasks lists a task twice"),
    ],
)
def test_validation_messages(doc, expected):
    with pytest.raises(RecipeError) as ei:
        validate(doc)
    assert len(ei.value.problems) == 1
    assert expected in ei.value.problems[0], ei.value.problems


def test_unknown_field_in_a_component_suggests_and_lists_allowed():
    with pytest.raises(RecipeError) as ei:
        validate({"components": [{"type": "clip", "capp": 3}]})
    (msg,) = ei.value.problems
    assert "Did you mean 'cap'?" in msg and "Allowed: " in msg and "quantile" in msg


def test_unknown_field_in_a_component_is_reported_with_its_line(tmp_path):
    p = write(tmp_path, "c.yaml", "components:\n  - type: clip\n    capp: 3\n")
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    assert ei.value.problems[0].startswith("line 3: components[0].capp: unknown field")


def test_duplicate_component_rejected():
    with pytest.raises(RecipeError) as ei:
        validate({"components": [{"type": "clip"}, {"type": "ema"}, {"type": "clip", "mode": "quantile"}]})
    assert ei.value.problems == [
        "(top level): Value error, components: clip listed more than once; give each a name: of its "
        "own (e.g. name: early and name: late) to use one type twice"
    ]


@pytest.mark.parametrize("teachers", [["base", "ema"], ["frozen_copy", "student"], ["ema", "base"]])
def test_two_teacher_providers_rejected(teachers):
    with pytest.raises(RecipeError) as ei:
        validate({"components": [{"type": t} for t in teachers]})
    assert ei.value.problems == [f"(top level): Value error, components: at most one teacher provider, got {teachers}"]


def test_one_teacher_with_other_components_is_fine():
    r = validate({"components": [{"type": "ema"}, {"type": "clip"}, {"type": "contrastive"}]})
    assert [c.type for c in r.components] == ["ema", "clip", "contrastive"]
    assert type(r.components[0])._unisd_kind == "teacher" and type(r.components[1])._unisd_kind == "guard"


def test_static_clip_on_jsd_validates():
    """A static cap of 10 cannot bind on a JSD (bounded by ln 2), but that is checked at run setup,
    not by the recipe."""
    r = validate({"divergence": {"type": "jsd"}, "components": [{"type": "clip", "mode": "static", "cap": 10.0}]})
    assert r.divergence.type == "jsd" and r.components[0].cap == 10.0
    r2 = load_recipe("unisd-clip", ["divergence={type: jsd}"])
    assert r2.divergence.type == "jsd"


def test_defaults_of_a_minimal_recipe(tmp_path):
    p = write(tmp_path, "minimal.yaml", "{}\n")  # an explicit empty mapping (an empty *file* is refused)
    r = load_recipe(p)
    assert r.name == "custom" and r.components == []
    assert r.divergence.type == "forward_kl" and r.data.dataset.type == "reasoning_gym"


# -- file-level errors -----------------------------------------------------------------------------
def test_invalid_yaml_names_line_and_column(tmp_path):
    p = write(tmp_path, "x.yaml", "name: x\noptim:\n  lr: [1, 2\ntraining: {}\n")
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    assert problems_of(ei) == ["line 4, column 9: invalid YAML: expected ',' or ']', but got ':'"]


def test_invalid_yaml_bad_indentation(tmp_path):
    p = write(tmp_path, "x.yaml", "name: x\noptim:\n  lr: 1\n weight_decay: 0\n")
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    assert problems_of(ei)[0].startswith("line 4, column 2: invalid YAML")


def test_invalid_json_names_line_and_column(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{\n  "name": "x",\n  "optim": {"lr": 1e-5,}\n}\n', encoding="utf-8")
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    assert problems_of(ei) == ["line 3, column 24: invalid JSON: Expecting property name enclosed in double quotes"]


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    p = tmp_path / "x.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    assert problems_of(ei) == [f"the top level must be a mapping, got {kind}"]


def test_top_level_json_array(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(RecipeError, match="the top level must be a mapping, got list"):
        load_recipe(p)


def test_non_utf8_file(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    assert problems_of(ei) == ["not UTF-8 text (byte 9): invalid continuation byte"]
    assert ei.value.source == str(p.resolve())


@pytest.mark.parametrize("name", ["missing.yaml", "missing.yml", "missing.json", "sub/dir/missing.yaml"])
def test_missing_file(tmp_path, name):
    with pytest.raises(RecipeError) as ei:
        load_recipe(tmp_path / name)
    assert problems_of(ei) == ["file not found"]
    assert str(tmp_path / name) in str(ei.value)


def test_unknown_recipe_name_suggests():
    with pytest.raises(RecipeError) as ei:
        load_recipe("unisd-clipp")
    (msg,) = problems_of(ei)
    assert msg.startswith("unknown recipe 'unisd-clipp'. Did you mean 'unisd-clip'")
    assert all(n in msg for n in SHIPPED)


def test_read_document_line_lookup(tmp_path):
    p = write(
        tmp_path,
        "x.yaml",
        """
        name: x
        components:
          - type: clip
            cap: 3
          - type: ema
            beta: 0.9
    """,
    )
    data, located = read_document(p)
    assert data["components"][1]["beta"] == 0.9
    assert located.line(["name"]) == 1
    assert located.line(["components"]) == 2
    assert located.line(["components", 0]) == 3
    assert located.line(["components", 1, "beta"]) == 6
    assert located.line(["components", 0, "cap"]) == 4


def test_recipe_error_message_format():
    e = RecipeError("r.yaml", ["one"])
    assert str(e) == "invalid recipe r.yaml (1 problem):\n  - one"
    e2 = RecipeError("r.yaml", ["one", "two"])
    assert str(e2) == "invalid recipe r.yaml (2 problems):\n  - one\n  - two"
    assert isinstance(e2, ValueError)


# -- JSON Schema ------------------------------------------------------------------------------------
def test_schema_has_every_component_and_plugin_fields():
    schema = recipe_model().model_json_schema()
    text = json.dumps(schema)
    regs = get_registries()
    names = (
        regs.teachers.names()
        + regs.disagreements.names()
        + regs.losses.names()
        + regs.guards.names()
        + regs.divergences.names()
        + regs.datasets.names()
    )
    missing = [n for n in names if f'"const": "{n}"' not in text and f'"enum": ["{n}"]' not in text]
    assert not missing, f"component types missing from the schema: {missing}"
    defs = schema["$defs"]
    agreement = defs["AgreementConfig"]["properties"]
    assert {"gamma", "granularity", "contexts", "quantile"} <= set(agreement)
    assert agreement["gamma"]["description"] == "agreement strength γ"
    assert {"mode", "cap", "quantile"} <= set(defs["ClipConfig"]["properties"])
    assert {"beta", "every"} <= set(defs["EmaConfig"]["properties"])
    # the component list is a discriminated union on 'type' covering every component kind
    items = schema["properties"]["components"]["items"]
    mapping = items["discriminator"]["mapping"]
    assert items["discriminator"]["propertyName"] == "type"
    assert set(COMPONENT_TYPES) <= set(mapping)


def test_schema_cli_stdout_and_file(tmp_path, capsys):
    from unisd.cli.main import main

    assert main(["recipe", "schema"]) == 0
    out = json.loads(capsys.readouterr().out)
    from unisd.recipe import recipe_json_schema

    assert out == recipe_json_schema() and out["$defs"] == recipe_model().model_json_schema()["$defs"]
    assert "extends" in out["properties"]
    target = tmp_path / "schema.json"
    assert main(["recipe", "schema", "-o", str(target)]) == 0
    assert capsys.readouterr().out == ""
    assert json.loads(target.read_text()) == out
    assert "gamma" in out["$defs"]["AgreementConfig"]["properties"]


def test_unknown_evaluation_task_is_rejected_with_did_you_mean(make_recipe, tmp_path, capsys):
    """The recipe model leaves task names to evaluation (it sits below it): `unisd recipe validate` and
    training check them, before anything is written."""
    from unisd.cli.main import main
    from unisd.evaluation.tasks import RecipeTaskError
    from unisd.runs.launch import train

    assert main(["recipe", "validate", "vanilla", "--set", "evaluation.tasks=[unisd_mbp]"]) == 2
    assert "evaluation.tasks: unknown task" in capsys.readouterr().err
    with pytest.raises(RecipeTaskError, match=r"evaluation.tasks: .*Did you mean 'unisd_mbpp'"):
        train(make_recipe("vanilla", "evaluation.tasks=[unisd_mbp]"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_validators_use_the_registries_the_recipe_model_was_built_from(tmp_path):
    """A host of one's own (not the process-wide one) validates evaluation.tasks against its evaluators."""
    from unisd import hookimpl
    from unisd.components.evaluators import TaskSpec
    from unisd.plugins import PluginHost
    from unisd.recipe import recipe_model

    class Plugin:
        @hookimpl
        def unisd_register(self, registry):
            registry.evaluators.add("own_task", TaskSpec("own_task", tmp_path, "acc"))

    host = PluginHost()
    host.register_plugin(Plugin(), "own-evaluators", package="own")
    host.load()
    recipe = validate({"evaluation": {"tasks": ["own_task"]}}, model=recipe_model(host.registries))
    assert recipe.evaluation.tasks == ["own_task"]
    from unisd.evaluation.tasks import check_recipe_tasks

    check_recipe_tasks(recipe)  # the recipe model's registries know own_task; the process-wide ones do not
