"""Shared test environment and fixtures.

Environment (set in ``pytest_configure``, before any test module imports transformers, and restored
at the end of the session):

* ``HF_HUB_OFFLINE=1``, ``HF_DATASETS_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``: nothing downloads;
* ``HF_HOME``: a fresh temporary directory;
* ``UNISD_CACHE``: ``$UNISD_TEST_CACHE`` when set, else a temporary directory for the session.

The converted embedded model is the exception: converting it takes ~30 s, so the ``real_model_dir``
fixture converts it once into a persistent cache (``$UNISD_TEST_CACHE`` if set, else the caller's
``$UNISD_CACHE``, else ``~/.cache/unisd``) and links it into the session's ``UNISD_CACHE``, so that
``resolve_model_path("smollm2-135m-instruct")`` inside tests finds it too. Conversions already present
in the persistent cache are linked at session start.

Fixtures: ``tiny_model_dir`` (llama), ``tiny_qwen_dir`` (qwen2), ``shared_data`` (``../shared/data``
from the repo root; skips when missing), ``real_model_dir`` (converted SmolLM2; mark tests that use
it ``slow``); and an autouse reset of accelerate's singleton state after every test.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from unisd.recipe import load_recipe

REPO_ROOT = Path(__file__).resolve().parents[1]
EMBEDDED_PREFIX = "smollm2-135m-instruct-"

_saved_env: dict[str, str | None] = {}
_temp_dirs: list[Path] = []
_persistent_cache: Path | None = None


def _set_env(key: str, value: str) -> None:
    _saved_env.setdefault(key, os.environ.get(key))
    os.environ[key] = value


def _link_embedded(persistent: Path, session_cache: Path) -> None:
    """Symlink finished embedded-model conversions of ``persistent`` into ``session_cache``."""
    src_root, dst_root = persistent / "models", session_cache / "models"
    if src_root.resolve() == dst_root.resolve() or not src_root.is_dir():
        return
    dst_root.mkdir(parents=True, exist_ok=True)
    for src in src_root.glob(EMBEDDED_PREFIX + "*"):
        dst = dst_root / src.name
        if (src / "unisd_conversion.json").is_file() and not dst.exists():
            dst.symlink_to(src.resolve(), target_is_directory=True)


def pytest_configure(config: pytest.Config) -> None:
    global _persistent_cache
    user_cache = os.environ.get("UNISD_TEST_CACHE") or os.environ.get("UNISD_CACHE")
    _persistent_cache = Path(user_cache).expanduser() if user_cache else Path.home() / ".cache" / "unisd"
    hf_home = Path(tempfile.mkdtemp(prefix="unisd-test-hf-"))
    _temp_dirs.append(hf_home)
    if os.environ.get("UNISD_TEST_CACHE"):
        session_cache = Path(os.environ["UNISD_TEST_CACHE"]).expanduser()
    else:
        session_cache = Path(tempfile.mkdtemp(prefix="unisd-test-cache-"))
        _temp_dirs.append(session_cache)
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(hf_home),
        "UNISD_CACHE": str(session_cache),
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        _set_env(key, value)
    _link_embedded(_persistent_cache, session_cache)


def pytest_unconfigure(config: pytest.Config) -> None:
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _saved_env.clear()
    for d in _temp_dirs:
        shutil.rmtree(d, ignore_errors=True)
    _temp_dirs.clear()


@pytest.fixture(autouse=True)
def _reset_accelerate_state():
    """Reset accelerate's process-wide singletons after each test (only if accelerate was used)."""
    yield
    state = sys.modules.get("accelerate.state")
    if state is None:
        return
    acc = getattr(state, "AcceleratorState", None)
    if acc is not None and hasattr(acc, "_reset_state"):
        acc._reset_state(True)  # also resets PartialState
    elif hasattr(getattr(state, "PartialState", None), "_reset_state"):
        state.PartialState._reset_state()
    grad = getattr(state, "GradientState", None)
    if grad is not None and hasattr(grad, "_reset_state"):
        grad._reset_state()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama model + BPE tokenizer (ChatML template, pad/eos/bos set)."""
    from unisd.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"), arch="llama")


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2 model sharing the tiny tokenizer of ``tiny_model_dir``."""
    from unisd.testing import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny-qwen2"), arch="qwen2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository (real task data); skips when it is absent."""
    path = REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"shared data directory {path} not found")
    return path


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    """The converted SmolLM2-135M-Instruct directory (persistent cache; tests using it are slow)."""
    from unisd.models.embedded import embedded_model_dir
    from unisd.models.errors import EmbeddedModelUnavailable

    try:
        path = embedded_model_dir(_persistent_cache)
    except EmbeddedModelUnavailable as e:
        pytest.skip(str(e))
    _link_embedded(_persistent_cache, Path(os.environ["UNISD_CACHE"]))
    return path


# -- training records and recipes on the tiny model (engine, mechanism and reliability tests) ----------
def write_records(path: Path, n: int = 24) -> Path:
    """Synthetic arithmetic records in the training-record schema."""
    rows = []
    for i in range(n):
        a, b = i % 7 + 1, (3 * i) % 5 + 2
        q = f"What is {a} plus {b}? Reply with the number."
        rows.append(
            {
                "id": f"add-{i}",
                "prompt": q,
                "teacher_prompt": f"\n{q}\n\nThis is an example for a response to the question:\n{a + b}\n\nCarefully "
                "study the reference solution, then solve the problem below with your own approach.\n",
                "gold": f"{a} + {b} = {a + b}. The answer is {a + b}.",
                "answer": str(a + b),
                "meta": {"task": "math"},
                "demo": f"Question: {q}\nAnswer: {a + b}",
                "retrieval_text": q,
                "negative_prompt": f"\n{q}\n\nThis is an example for a response to the question:\n{a + b + 3}\n\n"
                "Carefully study the reference solution, then solve the problem below with "
                "your own approach.\n",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def records_file(tmp_path_factory) -> Path:
    return write_records(tmp_path_factory.mktemp("records") / "train.jsonl")


@pytest.fixture
def make_recipe(tiny_model_dir, records_file):
    """``make_recipe(name, *overrides)``: a shipped recipe shrunk to the tiny model."""

    def make(name: str = "vanilla", *overrides: str):
        base = [
            f"model.name_or_path={tiny_model_dir}",
            f"data.dataset={{type: jsonl, path: '{records_file}'}}",
            "generation.max_new_tokens=8",
            "training.batch_size=2",
            "training.grad_accum=2",
            "training.max_steps=3",
            "lora.r=4",
            "lora.alpha=8",
            "optim.lr=1e-2",
            "checkpoint.every_steps=1",
            "logging.progress_bar=false",
            "logging.tensorboard=false",
        ]
        return load_recipe(name, [*base, *overrides])

    return make
