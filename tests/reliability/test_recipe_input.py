"""Recipe files and flags a careless user writes: each gets one clear error or the expected behaviour."""

from __future__ import annotations

import pytest

from unisd.cli.main import main
from unisd.recipe import RecipeError, load_recipe


def test_an_empty_recipe_file_is_refused(tmp_path):
    f = tmp_path / "empty.yaml"
    f.write_text("\n# nothing\n")
    with pytest.raises(RecipeError, match="the file is empty"):
        load_recipe(f)


def test_a_duplicate_key_names_both_lines(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text("extends: vanilla\noptim:\n  lr: 1.0e-4\n  lr: 1.0e-3\n")
    with pytest.raises(RecipeError, match=r"line 4: key 'lr' appears again \(first on line 3\)"):
        load_recipe(f)


def test_a_byte_order_mark_is_not_content(tmp_path):
    f = tmp_path / "bom.yaml"
    f.write_bytes("\ufeffextends: vanilla\noptim:\n  lr: 0.5\n".encode("utf-8"))
    assert load_recipe(f).optim.lr == 0.5


def test_a_missing_parent_names_the_file_and_line_that_asks_for_it(tmp_path):
    f = tmp_path / "child.yaml"
    f.write_text("name: child\nextends: vanila\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(f)
    assert str(f.resolve()) in str(exc.value) and "line 2: extends:" in str(exc.value) and "vanilla" in str(exc.value)


def test_set_keeps_yes_no_words_as_words():
    assert load_recipe("vanilla", ["precision.mixed_precision=no"]).precision.mixed_precision == "no"
    assert load_recipe("vanilla", ["generation.mask_truncated=yes"]).generation.mask_truncated is True


def test_max_steps_zero_is_refused_not_read_as_no_limit(capsys):
    assert main(["train", "--max-steps", "0"]) == 2
    assert "max_steps" in capsys.readouterr().err


def test_exit_codes_and_debug(monkeypatch, capsys, tmp_path):
    import unisd.cli.recipe_cmd as recipe_cmd

    assert main(["recipe", "show", "vanila"]) == 2  # bad input: one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err

    def boom(args):
        raise KeyError("internal")

    monkeypatch.setattr(recipe_cmd, "run_list", boom)
    assert main(["recipe", "list"]) == 1  # an internal error: named as such, traceback on request
    assert "unexpected KeyError" in capsys.readouterr().err
    with pytest.raises(KeyError):
        main(["--debug", "recipe", "list"])


def _alias_bomb(levels: int = 9) -> str:
    lines = ["extends: vanilla", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once_naming_the_line(tmp_path, capsys):
    import time

    f = tmp_path / "laughs.yaml"
    f.write_text(_alias_bomb())  # 9**9 strings once expanded, from under 800 bytes
    start = time.perf_counter()
    assert main(["recipe", "validate", str(f)]) == 2  # invalid input
    assert time.perf_counter() - start < 1.0
    captured = capsys.readouterr()
    assert "line 3, column 10: YAML alias *a0 is not accepted" in captured.out + captured.err
    with pytest.raises(RecipeError, match=r"(?s)--set.*YAML alias \*x is not accepted"):
        load_recipe("vanilla", ["components=[&x {type: ema}, *x]"])


def test_a_recipe_file_over_the_size_limit_is_refused(tmp_path):
    from unisd.recipe.loading import MAX_RECIPE_BYTES

    f = tmp_path / "huge.yaml"
    f.write_text("extends: vanilla\n" + "#" * MAX_RECIPE_BYTES + "\n")
    with pytest.raises(RecipeError, match=r"bytes: larger than a recipe can be"):
        load_recipe(f)


def test_the_exported_schema_accepts_every_shipped_recipe_and_refuses_what_validation_refuses(tmp_path, capsys):
    """What an editor checks with ``unisd recipe schema``: every shipped recipe (most ``extends``
    another) and the shipped experiments' recipes pass; an unknown key, a wrong type or an unknown
    component type fail, as ``recipe validate`` says."""
    import json
    from pathlib import Path

    import jsonschema
    import yaml

    out = tmp_path / "schema.json"
    assert main(["recipe", "schema", "--output", str(out)]) == 0
    validator = jsonschema.Draft202012Validator(json.loads(out.read_text()))
    plugins = Path(__file__).resolve().parents[2] / "plugins" / "unisd_plugins"
    files = sorted([*plugins.glob("recipes/*.yaml"), *plugins.glob("experiments/*/*.yaml")])
    assert len(files) > 20
    for f in files:
        assert not list(validator.iter_errors(yaml.safe_load(f.read_text()))), f
    for bad in (
        {"extends": "vanilla", "optim": {"lrr": 1e-4}},
        {"optim": {"lr": "fast"}},
        {"components": [{"type": "emaa"}]},
        {"extends": 3},
    ):
        assert list(validator.iter_errors(bad)), bad
        f = tmp_path / "bad.yaml"
        f.write_text(yaml.safe_dump(bad))
        assert main(["recipe", "validate", str(f)]) == 2
