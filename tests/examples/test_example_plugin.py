"""The example third-party plugin ``examples/unisd-example-mad``, seen the way a user sees it.

Everything goes through the real entry point of the installed distribution (no in-process
registration shortcuts): discovery, ``unisd plugins list``, recipes that use the new measure, the
plugin environment variables, and the numbers of its statistic. CI installs the example with
``pip install --no-deps -e examples/unisd-example-mad``; without it the module is skipped.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

DIST = "unisd-example-mad"
try:
    metadata.distribution(DIST)
except metadata.PackageNotFoundError:
    pytest.skip(
        f"the example plugin {DIST!r} is not installed; run "
        "'pip install --no-deps -e examples/unisd-example-mad' (CI does)",
        allow_module_level=True,
    )

import torch  # noqa: E402

from unisd.components.batch import DistillBatch, Scores  # noqa: E402
from unisd.plugins import PluginHost  # noqa: E402
from unisd.recipe import recipe_model  # noqa: E402

PLUGIN_ENV = (
    "UNISD_DISABLE_PLUGIN_AUTOLOAD",
    "UNISD_PLUGINS",
    "UNISD_BLOCK_PLUGINS",
    "UNISD_SKIP_BROKEN_PLUGINS",
    "UNISD_TRACE_PLUGINS",
)


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("unisd")
    return [str(script)] if script.exists() else [sys.executable, "-m", "unisd.cli.main"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in PLUGIN_ENV}
    full_env.update(env or {})
    return subprocess.run([*_cli(), *args], capture_output=True, text=True, env=full_env, timeout=120)


@pytest.fixture
def clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in PLUGIN_ENV:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


# -- discovery -------------------------------------------------------------------------------------
def test_entry_point_registers_measure_and_recipe(clean_plugin_env) -> None:
    eps = [
        ep for ep in metadata.entry_points(group="unisd") if ep.dist is not None and ep.dist.metadata["Name"] == DIST
    ]
    assert [(ep.name, ep.value) for ep in eps] == [("example_mad", "unisd_example_mad")]

    host = PluginHost().load()
    info = host.plugins["example_mad"]
    assert (info.package, info.builtin) == (DIST, False)
    measures = host.registries.disagreements
    assert measures.origin("agreement_mad") == DIST
    entry = measures.entry("agreement_mad")
    assert entry.lazy_path == "unisd_example_mad.measure:MADAgreement"  # registered lazily: not imported yet
    assert entry.config == "unisd_example_mad.config:MADAgreementConfig"  # its config model apart
    assert measures.get("agreement_mad").__name__ == "MADAgreement"
    recipe_path = Path(host.registries.recipes.get("unisd-mad"))
    assert recipe_path.name == "unisd-mad.yaml" and recipe_path.is_file()
    assert host.registries.recipes.origin("unisd-mad") == DIST

    # The plugin's own config model lands in the recipe JSON Schema, with its extra field.
    schema = recipe_model(host.registries).model_json_schema()
    mad = schema["$defs"]["AgreementMadConfig"]
    assert mad["properties"]["center"]["enum"] == ["mean", "median"]
    assert mad["properties"]["statistic"]["const"] == "mad"


def test_plugins_list_cli_shows_it() -> None:
    res = run_cli("plugins", "list")
    assert res.returncode == 0, res.stderr
    rows = {tuple(line.split()[:2]): line.split()[2:4] for line in res.stdout.splitlines()[1:]}
    version = metadata.version(DIST)
    assert rows[("disagreement", "agreement_mad")] == [DIST, version]
    assert rows[("recipe", "unisd-mad")] == [DIST, version]
    assert rows[("disagreement", "agreement")][0] == "unisd"  # built-ins untouched


# -- environment variables -------------------------------------------------------------------------
def test_disable_autoload_hides_it_and_unisd_plugins_brings_it_back(clean_plugin_env) -> None:
    clean_plugin_env.setenv("UNISD_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = PluginHost().load()
    assert "agreement_mad" not in host.registries.disagreements
    assert "unisd-mad" not in host.registries.recipes
    assert "agreement" in host.registries.disagreements  # built-ins always load

    clean_plugin_env.setenv("UNISD_PLUGINS", "unisd_example_mad")
    host = PluginHost().load()
    assert host.registries.disagreements.origin("agreement_mad") == "UNISD_PLUGINS"
    assert "unisd-mad" in host.registries.recipes

    clean_plugin_env.delenv("UNISD_DISABLE_PLUGIN_AUTOLOAD")
    clean_plugin_env.delenv("UNISD_PLUGINS")
    clean_plugin_env.setenv("UNISD_BLOCK_PLUGINS", "example_mad")
    assert "agreement_mad" not in PluginHost().load().registries.disagreements


def test_cli_honours_the_plugin_environment() -> None:
    res = run_cli(
        "plugins",
        "list",
        "--json",
        "--kind",
        "disagreement",
        env={"UNISD_DISABLE_PLUGIN_AUTOLOAD": "1", "UNISD_PLUGINS": "unisd_example_mad"},
    )
    assert res.returncode == 0, res.stderr
    assert {r["name"]: r["package"] for r in json.loads(res.stdout)} == {
        "agreement": "unisd",
        "agreement_mad": "UNISD_PLUGINS",
    }


# -- recipes ---------------------------------------------------------------------------------------
def test_recipes_using_it_validate_and_bad_values_are_rejected(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text(
        textwrap.dedent("""\
        extends: unisd-mad
        name: mine
        components:
          - type: agreement_mad
            contexts: {type: random, k: 4}
            granularity: sequence
            center: mean
    """)
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent("""\
        extends: vanilla
        name: bad
        components:
          - type: agreement_mad
            center: mode
    """)
    )
    res = run_cli("recipe", "validate", "unisd-mad", str(good), str(bad))
    assert res.returncode == 2  # one of the three is invalid
    assert "ok: unisd-mad (unisd-mad: distill, divergence forward_kl; agreement_mad)" in res.stdout
    assert f"ok: {good} (mine: distill, divergence forward_kl; agreement_mad)" in res.stdout
    assert f"invalid recipe {bad} (1 problem)" in res.stderr
    assert "line 5: components[0].center: Input should be 'mean' or 'median' (got 'mode')" in res.stderr


def test_validating_a_recipe_that_uses_it_imports_no_torch() -> None:
    """The measure's config model is registered apart (``config=``): validating and showing a recipe
    that uses the measure, and the recipe schema, import neither the measure nor torch."""
    code = (
        "import sys\nfrom unisd.cli.main import main\n"
        "rc = [main(a) for a in (['recipe', 'validate', 'unisd-mad'], ['recipe', 'show', 'unisd-mad'], ['recipe', 'schema'])]\n"
        "print('torch' in sys.modules, 'unisd_example_mad.measure' in sys.modules, rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().splitlines()[-1] == "False False [0, 0, 0]", (
        res.stdout[-500:] + res.stderr[-2000:]
    )


# -- numbers ---------------------------------------------------------------------------------------
def test_mean_absolute_deviation_by_hand() -> None:
    from unisd_example_mad.measure import mean_absolute_deviation

    a = torch.tensor([[[-1.0, -2.0]], [[-2.0, -2.0]], [[-4.0, -2.0]]])  # (K=3, B=1, T=2)
    # token 0: mean −7/3 → |4/3|, |1/3|, |5/3| → 10/9; median −2 → 1, 0, 2 → 1. token 1: all equal → 0.
    torch.testing.assert_close(mean_absolute_deviation(a, "mean"), torch.tensor([[10 / 9, 0.0]]))
    torch.testing.assert_close(mean_absolute_deviation(a, "median"), torch.tensor([[1.0, 0.0]]))
    even = torch.tensor([0.0, 1.0, 3.0, 10.0])  # median of an even count = midpoint 2 → 2, 1, 1, 8
    torch.testing.assert_close(mean_absolute_deviation(even, "median"), torch.tensor(3.0))
    torch.testing.assert_close(mean_absolute_deviation(even, "mean"), torch.tensor(3.25))


def _batch(A: torch.Tensor, mask: torch.Tensor, seen: list[list[str]]) -> DistillBatch:
    K, B, T = A.shape
    records = [{"id": f"r{b}", "aux_contexts": [f"ctx{k}-row{b}" for k in range(K)]} for b in range(B)]

    def score_contexts(contexts, *, temperature, full_logprobs=False, feature_layers=()):
        seen.append(list(contexts))
        return Scores(token_logps=A.reshape(K * B, T))

    zeros = Scores(token_logps=torch.zeros(B, T))
    return DistillBatch(
        records=records,
        completion_ids=torch.zeros(B, T, dtype=torch.long),
        completion_mask=mask,
        student=zeros,
        teacher=zeros,
        temperature=0.7,
        step=0,
        score_contexts=score_contexts,
    )


def test_weights_from_the_mad_statistic() -> None:
    from unisd_example_mad.measure import MADAgreement

    # Sequence level, γ = 1: w_b = exp(−MAD_k S_{k,b}); row 1's second token is masked out.
    A = torch.tensor(
        [[[-1.0, -1.0], [-1.0, -9.0]], [[-2.0, -2.0], [-1.0, 0.0]], [[-4.0, -4.0], [-1.0, -3.0]]]
    )  # (K=3, B=2, T=2)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    seen: list[list[str]] = []
    seq = MADAgreement(MADAgreement.Config(type="agreement_mad", granularity="sequence", gamma=1.0))
    w = seq.weights(_batch(A, mask, seen))
    assert w.token is None
    torch.testing.assert_close(w.sequence, torch.tensor([math.exp(-1.0), 1.0]))
    # the inherited scoring asks for K·B contexts laid out context-major
    assert seen == [["ctx0-row0", "ctx0-row1", "ctx1-row0", "ctx1-row1", "ctx2-row0", "ctx2-row1"]]

    # Token level, quantile 1 (scale = largest MAD = 1), γ = 1: w = 1 / (1 + MAD).
    tok = MADAgreement(MADAgreement.Config(type="agreement_mad", quantile=1.0, gamma=1.0, center="median"))
    a = torch.tensor([[[-1.0, -2.0]], [[-2.0, -2.0]], [[-4.0, -2.0]]])  # MADs 1 and 0
    w = tok.weights(_batch(a, torch.ones(1, 2), []))
    torch.testing.assert_close(w.token, torch.tensor([[0.5, 1.0]]))
