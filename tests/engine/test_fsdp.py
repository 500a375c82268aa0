"""FSDP2 on CPU/gloo: two sharded processes (torchrun) against one process with doubled accumulation,
sharded DCP checkpoints, SIGKILL of one process and exact resume, resume on another process count."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from unisd.engine import checkpoint as ckpt

STEPS = 4


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(
    tiny_model_dir,
    records_file,
    out: Path,
    processes: int,
    *extra: str,
    recipe: str = "unisd-ema",
    env_extra=None,
    check=True,
):
    """``unisd train`` on the tiny model, 8 micro-batches of 2 rows per step in all; by default the
    EMA teacher (synced every step), whose state is sharded too."""
    launcher = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={processes}",
            f"--master_port={_port()}",
            "-m",
            "unisd.cli.main",
        ]
        if processes > 1
        else [sys.executable, "-m", "unisd.cli.main"]
    )
    sets = [
        f"model.name_or_path={tiny_model_dir}",
        f"data.dataset={{type: jsonl, path: '{records_file}'}}",
        "generation.max_new_tokens=6",
        "training.batch_size=2",
        f"training.grad_accum={4 // processes}",
        "training.epochs=2",
        "lora.r=4",
        "optim.lr=1e-2",
        "checkpoint.every_steps=1",
        "checkpoint.keep_last=3",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        "distributed.strategy=fsdp2",
        *extra,
    ]
    if recipe in ("unisd-ema", "unisd-star"):
        sets.append("components.ema.every=1")
    argv = [*launcher, "train", "--recipe", recipe, "--max-steps", str(STEPS), "-o", str(out)]
    for s in sets:
        argv += ["--set", s] if "=" in s else [s]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "ACCELERATE_USE_CPU": "true",
        **(env_extra or {}),
    }
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert res.returncode == 0, res.stderr[-4000:]
    return res


def _losses(out: Path) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["step"], r["loss/total"]) for r in rows]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


#: tolerance of one process against two: the same sums in another order (gradients reduce-scattered
#: per process instead of accumulated in one), fp32; the same process count resumes exactly
OTHER_COUNT, SAME_COUNT = 1e-4, 1e-6


def _same_run(a: Path, b: Path, rel: float, weights: str = "final/adapter/adapter_model.safetensors") -> None:
    la, lb = _losses(a), _losses(b)
    assert [s for s, _ in la] == [s for s, _ in lb] == list(range(1, STEPS + 1))
    for (s, x), (_, y) in zip(la, lb, strict=True):
        assert x == pytest.approx(y, rel=rel, abs=1e-9), f"step {s}: {x} vs {y}"
    wa, wb = _weights(a / weights), _weights(b / weights)
    assert wa.keys() == wb.keys()
    moved = 0
    for name in wa:
        # a norm, not per element: Adam turns a last-bit difference in a near-zero gradient into up
        # to lr on that element (sign(g)), so single elements may differ where the tensor agrees
        err = float((wa[name] - wb[name]).norm()) / max(float(wb[name].norm()), 1e-12)
        assert err <= 10 * rel, f"{name}: relative difference {err:.2e}"
        moved += int(wa[name].abs().sum() > 0)
    assert moved > 0


@pytest.fixture(scope="module")
def two_sharded(tiny_model_dir, records_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fsdp") / "two"
    _train(tiny_model_dir, records_file, out, 2)
    return out


def test_two_sharded_processes_match_one_with_doubled_accumulation(two_sharded, tiny_model_dir, records_file, tmp_path):
    one = tmp_path / "one"
    _train(tiny_model_dir, records_file, one, 1)
    _same_run(two_sharded, one, OTHER_COUNT)
    # each process wrote its own shard; the manifest covers every file of every process
    last = ckpt.latest_complete(two_sharded / "checkpoints")
    files = ckpt.verify(last)["files"]
    assert {
        "state/__0_0.distcp",
        "state/__1_0.distcp",
        "state/.metadata",
        "rng-rank0.pt",
        "rng-rank1.pt",
        "scheduler.pt",
        "trainer_state.json",
    } <= set(files)
    assert json.loads((last / "trainer_state.json").read_text())["processes"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["vanilla", "unisd-ema"])
def test_full_fine_tuning_shards_the_student_and_its_teacher(recipe, tiny_model_dir, records_file, tmp_path):
    """vanilla: the base teacher is a frozen copy, sharded like the student; unisd-ema: whole-weight EMA shards."""
    extra = ("lora.enabled=false", "optim.lr=1e-3", "checkpoint.save_merged=true")
    _train(tiny_model_dir, records_file, tmp_path / "two", 2, *extra, recipe=recipe)
    _train(tiny_model_dir, records_file, tmp_path / "one", 1, *extra, recipe=recipe)
    _same_run(tmp_path / "two", tmp_path / "one", OTHER_COUNT, weights="final/merged/model.safetensors")
    shards = sorted((ckpt.latest_complete(tmp_path / "two" / "checkpoints") / "state").glob("*.distcp"))
    assert len(shards) == 2 and all(p.stat().st_size > 100_000 for p in shards)  # the weights are split, not copied


@pytest.mark.slow
def test_every_mechanism_runs_sharded(tiny_model_dir, records_file, tmp_path):
    """UniSD*: agreement contexts, EMA teacher, contrastive negative, feature matching and clipping.

    At lr 1e-3, not 1e-2: the tiny model's K contexts give log-probs that differ by ~1e-3 nats, so the
    agreement's quantile-scaled variance carries ~1e-3 relative noise from last-bit (4.8e-7) differences
    between the two layouts' forwards; its token weights pass that on, and four Adam steps at 1e-2
    grow it past the tolerance (1.1e-3 on one lora_B; 6.9e-6 at 1e-3; the contexts and log-probs
    themselves were checked equal across layouts to that last bit)."""
    _train(tiny_model_dir, records_file, tmp_path / "two", 2, "optim.lr=1e-3", recipe="unisd-star")
    _train(tiny_model_dir, records_file, tmp_path / "one", 1, "optim.lr=1e-3", recipe="unisd-star")
    _same_run(tmp_path / "two", tmp_path / "one", OTHER_COUNT)


@pytest.fixture(scope="module")
def killed_at_backward(tiny_model_dir, records_file, tmp_path_factory) -> Path:
    """The two-process run with process 1 SIGKILLed after its backward pass of step 3."""
    out = tmp_path_factory.mktemp("fsdp-killed") / "run"
    res = _train(
        tiny_model_dir,
        records_file,
        out,
        2,
        env_extra={"UNISD_FAULT_INJECT": "backward:3", "UNISD_FAULT_RANK": "1"},
        check=False,
    )
    assert res.returncode != 0
    assert ckpt.latest_complete(out / "checkpoints").name == "step-00000002"
    return out


@pytest.mark.slow
def test_sigkill_of_one_process_then_resume_reproduces_the_run(
    killed_at_backward, two_sharded, tiny_model_dir, records_file, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(killed_at_backward, run)
    _train(tiny_model_dir, records_file, run, 2, "--resume", "auto")
    _same_run(two_sharded, run, SAME_COUNT)


@pytest.mark.slow
def test_a_two_process_checkpoint_resumes_on_one_process(
    killed_at_backward, two_sharded, tiny_model_dir, records_file, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(killed_at_backward, run)
    res = _train(tiny_model_dir, records_file, run, 1, "--resume", "auto")
    assert "resumed from" in res.stderr and "step-00000002" in res.stderr
    _same_run(two_sharded, run, OTHER_COUNT)


@pytest.mark.slow
def test_a_partial_sharded_checkpoint_is_never_picked(two_sharded, tiny_model_dir, records_file, tmp_path):
    run = tmp_path / "run"
    # process 1 dies after writing its shards of step 3, before the main process seals the checkpoint
    res = _train(
        tiny_model_dir,
        records_file,
        run,
        2,
        check=False,
        env_extra={"UNISD_FAULT_INJECT": "checkpoint_write:3", "UNISD_FAULT_RANK": "1"},
    )
    assert res.returncode != 0
    torn = run / "checkpoints" / ".tmp-step-00000003-shared"
    assert (
        torn.is_dir() and not (torn / ckpt.MANIFEST).exists() and not (run / "checkpoints" / "step-00000003").exists()
    )
    assert ckpt.latest_complete(run / "checkpoints").name == "step-00000002"
    _train(tiny_model_dir, records_file, run, 2, "--resume", "auto")
    _same_run(two_sharded, run, SAME_COUNT)
    assert not torn.exists()


# ------------------------------------------------------------------------ choosing the strategy


def _accelerator(kind: str, fsdp_version: int | None = None):
    from accelerate.utils import DistributedType

    plugin = SimpleNamespace(fsdp_version=fsdp_version) if fsdp_version else None
    return SimpleNamespace(distributed_type=DistributedType[kind], state=SimpleNamespace(fsdp_plugin=plugin))


def test_the_strategy_comes_from_the_recipe_or_from_accelerates_fsdp2_config(make_recipe):
    from unisd.engine.sharding import strategy_of
    from unisd.errors import UserError

    assert strategy_of(make_recipe("vanilla"), _accelerator("MULTI_CPU")) == "ddp"
    assert strategy_of(make_recipe("vanilla", "distributed.strategy=fsdp2"), _accelerator("MULTI_CPU")) == "fsdp2"
    assert strategy_of(make_recipe("vanilla"), _accelerator("FSDP", 2)) == "fsdp2"
    with pytest.raises(UserError, match="fsdp_version: 2"):
        strategy_of(make_recipe("vanilla"), _accelerator("FSDP", 1))


def test_components_that_cannot_shard_say_so(make_recipe):
    from unisd.errors import UserError
    from unisd_plugins.generation.vllm_engine import VLLMConfig, VLLMGenerate

    run = SimpleNamespace(sharded=True)
    with pytest.raises(UserError, match="backend=vllm.*fsdp2"):
        VLLMGenerate(VLLMConfig(type="vllm")).setup(run)


def test_the_memory_check_counts_one_process_share_and_the_engines_reservation(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from unisd.models.errors import InsufficientMemoryError
    from unisd.models.memory import check_fits, memory_breakdown
    from unisd_plugins.generation.vllm_engine import VLLMConfig

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    whole = memory_breakdown(model, 2, 64, lora=False)
    half = memory_breakdown(model, 2, 64, lora=False, shards=2)
    layers = model.config.num_hidden_layers
    assert half["weights"] == whole["weights"] // 2 + 2 * whole["weights"] // layers
    assert half["trainable_state"] == whole["trainable_state"] // 2
    assert half["activations"] == whole["activations"]
    assert VLLMConfig(type="vllm", cpu_kv_cache_gib=3).reserved_memory("cpu") == 3 << 30
    assert VLLMConfig(type="vllm", cpu_kv_cache_gib=0.25).reserved_memory("cpu") == 1 << 28
    with pytest.raises(InsufficientMemoryError, match="GiB that generation.backend=vllm reserves"):
        check_fits(model, 2, 64, lora=False, reserved=10**15, reserved_by="generation.backend=vllm")
