"""The ``unisd`` command line, run in-process through :func:`unisd.cli.main.main`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from unisd import __version__
from unisd.cli.main import COMMANDS, main
from unisd.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (ROOT / "plugins" / "unisd_plugins" / "recipes").glob("*.yaml"))
BUILTIN_KINDS = {
    "teacher": {"base", "ema", "frozen_copy", "student"},
    "disagreement": {"agreement"},
    "loss": {"contrastive", "feature_matching"},
    "guard": {"clip", "skip_opening"},
    "divergence": {"forward_kl", "reverse_kl", "jsd"},
    "objective": {"distill", "sft", "ssd"},
    "context_builder": {"random", "retrieval", "induction"},
    "dataset": {"gsm8k", "mbpp", "cose", "scienceqa", "toolalpaca", "jsonl", "reasoning_gym"},
    "generator": {"hf", "vllm"},
    "recipe": set(SHIPPED),
    "experiment": {"mini-table", "mechanisms-grid", "mechanisms-budget", "mechanisms"},
    "evaluator": {
        "unisd_scienceqa",
        "unisd_gpqa",
        "unisd_mbpp",
        "unisd_humaneval",
        "unisd_cose",
        "unisd_toolalpaca",
        "unisd_scienceqa_mc",
        "unisd_gpqa_mc",
        "unisd_cose_mc",
        "unisd_cose_options",
        "unisd-six",
        "unisd-mc",
    },
}


def table_rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["KIND", "NAME", "PACKAGE", "VERSION", "DESCRIPTION"]
    return [ln.split(None, 4) for ln in lines[1:] if ln and not ln.startswith("skipped:")]


# -- plugins list -----------------------------------------------------------------------------------
def test_plugins_list_shows_every_builtin_kind_with_package_and_version(capsys):
    assert main(["plugins", "list"]) == 0
    rows = table_rows(capsys.readouterr().out)
    seen: dict[str, set[str]] = {}
    for kind, name, package, version, *_ in rows:
        if package == "unisd":
            assert version == __version__, (kind, name)
            seen.setdefault(kind, set()).add(name)
    assert seen == BUILTIN_KINDS


def test_plugins_list_descriptions(capsys):
    assert main(["plugins", "list", "--kind", "guard"]) == 0
    rows = {r[1]: r for r in table_rows(capsys.readouterr().out)}
    assert rows["clip"][4].startswith("cap per-token divergences")


@pytest.mark.parametrize("kind", sorted(BUILTIN_KINDS))
def test_plugins_list_kind_filter(kind, capsys):
    assert main(["plugins", "list", "--kind", kind]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows and {r[0] for r in rows} == {kind}
    assert BUILTIN_KINDS[kind] <= {r[1] for r in rows}


def test_plugins_list_unknown_kind(capsys):
    assert main(["plugins", "list", "--kind", "teachers"]) == 2  # bad input (docs/reliability.md, exit codes)
    out = capsys.readouterr().err
    assert out.startswith("error: no components of kind 'teachers'; kinds: ")
    kinds = out.strip().split("kinds: ")[1].split(", ")
    assert set(BUILTIN_KINDS) | {"evaluator"} == set(kinds)


def test_plugins_list_json(capsys):
    assert main(["plugins", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(set(r) == {"kind", "name", "package", "version", "description"} for r in data)
    builtin = {}
    for r in data:
        if r["package"] == "unisd":
            assert r["version"] == __version__
            builtin.setdefault(r["kind"], set()).add(r["name"])
    assert builtin == BUILTIN_KINDS
    ema = next(r for r in data if r["name"] == "ema")
    assert ema["kind"] == "teacher" and ema["description"]


def test_plugins_list_json_with_kind(capsys):
    assert main(["plugins", "list", "--json", "--kind", "divergence"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["kind"] for r in data} == {"divergence"}
    assert {r["name"] for r in data} >= BUILTIN_KINDS["divergence"]


def test_plugins_list_json_unknown_kind_is_empty(capsys):
    assert main(["plugins", "list", "--json", "--kind", "nope"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_plugin_errors_become_a_clean_cli_error(dists, unique_name, capsys):
    mod = unique_name("cli_broken")
    d = dists.dist(
        unique_name("unisd-cli-broken").replace("_", "-"),
        {"clibroken": mod},
        modules={mod: "raise ImportError('missing dependency foo')\n"},
    )
    assert main(["plugins", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: plugin 'clibroken' from package '{d.name}' failed to import ({mod}): "
        "ImportError: missing dependency foo"
    )
    assert "Traceback" not in err


# -- recipe validate --------------------------------------------------------------------------------
def test_recipe_validate_every_shipped_name(capsys):
    assert main(["recipe", "validate", *SHIPPED]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in out] == SHIPPED
    assert all(ln.startswith("ok: ") for ln in out)


def test_recipe_validate_summary_line(capsys):
    assert main(["recipe", "validate", "unisd-clip"]) == 0
    assert capsys.readouterr().out == "ok: unisd-clip (unisd-clip: distill, divergence forward_kl; clip)\n"


def test_recipe_validate_broken_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\noptimm: {lr: 1}\noptim:\n  scheduler: cosin\n", encoding="utf-8")
    assert main(["recipe", "validate", "vanilla", str(bad), "sdft"]) == 2
    cap = capsys.readouterr()
    assert cap.out.splitlines()[0].startswith("ok: vanilla ")
    assert cap.out.splitlines()[1].startswith("ok: sdft ")
    err = cap.err
    assert err.startswith(f"error: invalid recipe {bad.resolve()} (2 problems):\n")
    assert "  - line 2: optimm: unknown field. Did you mean 'optim'? Allowed: " in err
    assert "  - line 4: optim.scheduler: Input should be 'cosine', 'linear' or 'constant' (got 'cosin')" in err


def test_recipe_validate_with_set(capsys):
    assert (
        main(
            [
                "recipe",
                "validate",
                "unisd-star",
                "--set",
                "components.agreement.gamma=0.5",
                "--set",
                "divergence={type: jsd}",
            ]
        )
        == 0
    )
    assert "divergence jsd" in capsys.readouterr().out
    assert main(["recipe", "validate", "unisd-star", "--set", "components.agreemnt.gamma=0.5"]) == 2
    err = capsys.readouterr().err
    assert "error: invalid recipe --set (1 problem)" in err and "Did you mean 'agreement'?" in err
    assert main(["recipe", "validate", "vanilla", "--set", "training.max_steps=0"]) == 2
    assert "training.max_steps: Input should be greater than 0" in capsys.readouterr().err


def test_recipe_validate_unknown_name_and_missing_file(tmp_path, capsys):
    assert main(["recipe", "validate", "vanila", str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'vanila'. Did you mean 'vanilla'?" in err
    assert f"error: invalid recipe {tmp_path / 'nope.yaml'} (1 problem):\n  - file not found" in err


# -- recipe show / list ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vanilla", "unisd-star-reference", "sft"])
def test_recipe_show_prints_resolved_yaml_that_validates_again(name, tmp_path, capsys):
    assert main(["recipe", "show", name]) == 0
    out = capsys.readouterr().out
    data = yaml.safe_load(out)
    assert "extends" not in data and data["name"] == name
    p = tmp_path / "shown.yaml"
    p.write_text(out, encoding="utf-8")
    assert load_recipe(p).model_dump() == load_recipe(name).model_dump()


def test_recipe_show_states_the_effective_score_temperature(capsys):
    assert main(["recipe", "show", "vanilla"]) == 0
    assert "# derived: score temperature 0.7 " in capsys.readouterr().out
    assert main(["recipe", "show", "vanilla", "--set", "generation.temperature=0"]) == 0
    assert "# derived: score temperature 1 " in capsys.readouterr().out
    assert main(["recipe", "show", "vanilla", "--format", "json", "--set", "objective.score_temperature=2"]) == 0
    assert "derived: score temperature 2 " in capsys.readouterr().err


def test_recipe_show_json_and_set(tmp_path, capsys):
    assert main(["recipe", "show", "unisd-clip", "--format", "json", "--set", "components.clip.cap=3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["components"] == [
        load_recipe("unisd-clip", ["components.0.cap=3"]).components[0].model_dump(mode="json")
    ]
    assert data["components"][0]["cap"] == 3.0


def test_recipe_show_raw_prints_the_file(capsys):
    assert main(["recipe", "show", "unisd-clip", "--raw"]) == 0
    shipped = (ROOT / "plugins" / "unisd_plugins" / "recipes" / "unisd-clip.yaml").read_text(encoding="utf-8")
    assert capsys.readouterr().out == shipped


def test_recipe_show_errors_exit_2(capsys):
    assert main(["recipe", "show", "vanila"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid recipe vanila (1 problem):") and "Did you mean 'vanilla'?" in err


def test_recipe_list(capsys):
    assert main(["recipe", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [ln.split()[0] for ln in lines]
    assert set(SHIPPED) <= set(names) and names == sorted(names)
    by_name = {ln.split()[0]: ln for ln in lines}
    first = load_recipe("vanilla").description.strip().splitlines()[0]
    assert by_name["vanilla"].split(None, 1)[1] == first


# -- help ------------------------------------------------------------------------------------------
HELP_ARGS = [
    [],
    ["plugins"],
    ["plugins", "list"],
    ["recipe"],
    ["recipe", "validate"],
    ["recipe", "show"],
    ["recipe", "list"],
    ["recipe", "schema"],
    *[[c] for c in COMMANDS],
]


@pytest.mark.parametrize("args", HELP_ARGS, ids=lambda a: " ".join(a) or "unisd")
def test_help_exits_zero(args, capsys):
    with pytest.raises(SystemExit) as ei:
        main([*args, "--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: unisd{(' ' + ' '.join(args)) if args else ''}")


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("plugins", "recipe", "train", "eval", "compare", "sweep"):
        assert f"    {cmd} " in out


def test_no_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert capsys.readouterr().out.startswith("usage: unisd")


@pytest.mark.parametrize("group", ["plugins", "recipe"])
def test_group_without_action_prints_its_help_and_returns_2(group, capsys):
    assert main([group]) == 2
    assert capsys.readouterr().out.startswith(f"usage: unisd {group}")


def test_version(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == 0
    assert capsys.readouterr().out.strip() == f"unisd {__version__}"


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["frobnicate"])
    assert ei.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


CROSS_KIND_SRC = """
from unisd import hookimpl
from unisd.components.kinds import AuxiliaryLoss


class ClipLoss(AuxiliaryLoss):
    def compute(self, batch):
        raise NotImplementedError


@hookimpl
def unisd_register(registry):
    registry.losses.add("clip", ClipLoss, description="a loss named like the built-in guard")
"""


@pytest.fixture
def cross_kind(dists, unique_name):
    mod = unique_name("cross_kind")
    return dists.dist(unique_name("unisd-cross").replace("_", "-"), {"crosskind": mod}, modules={mod: CROSS_KIND_SRC})


def test_component_name_used_by_two_kinds_is_named_precisely(cross_kind):
    from unisd.recipe import recipe_model

    with pytest.raises(Exception) as ei:
        recipe_model()
    msg = str(ei.value)
    assert "component name 'clip' is registered as" in msg
    assert "guard by unisd" in msg and f"loss by {cross_kind.name}" in msg


def test_cross_kind_name_clash_is_a_clean_cli_error(cross_kind, capsys):
    assert main(["recipe", "validate", "vanilla"]) == 2
    assert "error: component name 'clip'" in capsys.readouterr().err


def test_the_cli_and_the_component_api_load_without_torch():
    """``unisd --help`` and ``import unisd`` (a plugin's component classes) do not pay torch's ~2 s import."""
    import subprocess
    import sys

    code = (
        "import sys\nimport unisd\nfrom unisd.cli.main import build_parser\nbuild_parser().format_help()\n"
        "from unisd import Divergence, DistillBatch, Weights\nprint('torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "False", res.stderr[-2000:]


@pytest.mark.parametrize(
    "argv",
    [
        ["recipe", "validate", "unisd-star", "gkd", "sft", "ssd", "token-clip", "demo"],
        ["recipe", "show", "unisd-star"],
        ["recipe", "schema"],
        ["plugins", "list"],
    ],
)
def test_recipe_and_plugins_commands_load_without_torch(argv):
    """Every shipped component registers its Config model apart (``config=``), so validating a recipe
    imports the config modules alone, not the components (nor torch)."""
    import subprocess
    import sys

    import os

    code = f"import sys\nfrom unisd.cli.main import main\nrc = main({argv!r})\nprint('torch' in sys.modules, rc)"
    # the built-ins alone: a third-party plugin installed here may register without ``config=``
    # (tests/examples checks the example plugin's own registration the same way)
    env = {**os.environ, "UNISD_DISABLE_PLUGIN_AUTOLOAD": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and res.stdout.strip().splitlines()[-1] == "False 0", (
        res.stdout[-500:] + res.stderr[-2000:]
    )
