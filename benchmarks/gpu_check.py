"""One command that checks UniSD on one NVIDIA GPU: one summary table, also written as JSON.

    python benchmarks/gpu_check.py --prepare        # here, once, with the embedded model installed: .gpu/
    python3 benchmarks/gpu_check.py --out $OUT      # on the GPU machine (the device tool: carry .gpu)
    python benchmarks/gpu_check.py --dry-run        # the same plan on the CPU at tiny shapes (CI)

A GPU machine has no hub and no package index, so ``--prepare`` writes what the check needs into
``.gpu/`` (git-ignored, a few MB): the SmolLM2 tokenizer, the demo's training records as JSONL, and
Python 3.12 wheels of the packages such a machine lacks (pydantic, trl, datasets, …). On the GPU
machine the check installs those wheels and this checkout into a temporary folder (no network), then
runs each step in its own process with a time limit, so one failure does not hide the others:

1. ``cuda tests``: ``pytest -m cuda`` (tests/engine/test_cuda.py);
2. ``loss memory``: ``benchmarks/loss_memory.py --device cuda`` at V = 151,936, hidden 1536;
3. ``step throughput``: ``benchmarks/step_throughput.py --device cuda --precision bf16`` on a
   randomly initialised SmolLM2-135M (its real shape), UniSD's SDFT and UniSD* against TRL's SDFT
   trainer when ``trl`` imports;
4. ``demo bf16``: three steps of ``unisd train demo`` in bf16 mixed precision on that model;
5. ``vllm rollout``: the step with the vLLM generation backend, when ``vllm`` imports.

The whole plan is sized to end within 8 minutes of wall time on an H100 (``--budget`` scales every
step's limit). Without a GPU and without ``--dry-run`` it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
ASSETS = ROOT / ".gpu"
#: what a GPU machine of the device tool lacks (its image holds torch, transformers, accelerate, peft, …);
#: versions known to work with the image's transformers 5.x
WHEELS = [
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "datasets==5.2.0",
    "dill==0.4.1",
    "multiprocess==0.70.19",
    "trl==1.16.0",
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def _have_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


# -- preparing the assets (here, with the embedded model and the package index) --------------------
def prepare(assets: Path) -> None:
    """The tokenizer, the demo's records and the wheels a GPU machine lacks, in ``assets``."""
    sys.path.insert(0, str(BENCH))
    from random_models import load_tokenizer

    assets.mkdir(parents=True, exist_ok=True)
    load_tokenizer().save_pretrained(assets / "tokenizer")
    write_demo_records(assets / "records.jsonl")
    wheels = assets / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(wheels),
            *WHEELS,
        ],
        check=True,
    )
    size = sum(f.stat().st_size for f in assets.rglob("*") if f.is_file())
    print(f"prepared {assets} ({size / 2**20:.1f} MiB): carry it to the GPU machine (device tool: carry ['.gpu'])")


def write_demo_records(path: Path, n: int = 64) -> None:
    """The demo recipe's first ``n`` training records (reasoning-gym chain_sum) as a records file."""
    from unisd.engine.data import load_records
    from unisd.plugins import get_host
    from unisd.recipe import load_recipe

    _, records = load_records(load_recipe("demo"), get_host().registries)
    keep = ("id", "prompt", "teacher_prompt", "gold", "answer")
    meta = ("task", "question")  # what the contrastive negatives read
    rows = [{**{k: r[k] for k in keep}, "meta": {k: r["meta"][k] for k in meta}} for r in records[:n]]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def install(assets: Path, site: Path) -> dict[str, str]:
    """The carried wheels and this checkout into ``site`` (no index); the environment that imports them."""
    wheels = sorted((assets / "wheels").glob("*.whl"))
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        "--no-compile",
        "--target",
        str(site),
    ]
    subprocess.run([*pip, "--no-build-isolation", *map(str, wheels), str(ROOT)], check=True)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}


# -- the plan ---------------------------------------------------------------------------------------
def plan(dry: bool, work: Path, assets: Path, model_dir: Path, records: Path) -> list[dict]:
    """The steps: name, command, time limit (seconds), and the JSON file the step writes."""
    py, dev = sys.executable, "cpu" if dry else "cuda"
    steps = [
        {
            "name": "cuda tests",
            "limit": 150,
            "cmd": [
                py,
                "-m",
                "pytest",
                str(ROOT / "tests/engine/test_cuda.py"),
                "-m",
                "cuda",
                "-q",
                "-p",
                "no:cacheprovider",
            ],
        }
    ]
    shapes = (
        ["--tokens", "256", "--vocab", "4096", "--hidden", "32", "--chunk", "64"]
        if dry
        else ["--tokens", "4096,16384", "--vocab", "151936", "--hidden", "1536", "--chunk", "1024"]
    )
    steps.append(
        {
            "name": "loss memory",
            "limit": 90,
            "json": work / "loss_memory.json",
            "cmd": [
                py,
                str(BENCH / "loss_memory.py"),
                "--device",
                dev,
                *shapes,
                "--json",
                str(work / "loss_memory.json"),
            ],
        }
    )
    configs = ["sdft", "unisd-star"] + (["trl-sdft"] if importlib.util.find_spec("trl") else [])
    budget = ["--steps", "2", "--max-new-tokens", "8"] if dry else ["--steps", "4", "--max-new-tokens", "128"]
    throughput = [
        py,
        str(BENCH / "step_throughput.py"),
        "--device",
        dev,
        "--model",
        str(model_dir),
        "--data",
        str(records),
        "--precision",
        "bf16",
        *budget,
    ]
    steps.append(
        {
            "name": "step throughput",
            "limit": 180,
            "json": work / "throughput.json",
            "cmd": [*throughput, "--configs", ",".join(configs), "--json", str(work / "throughput.json")],
        }
    )
    steps.append(
        {
            "name": "demo bf16",
            "limit": 120,
            "json": work / "demo" / "summary.json",
            "cmd": [
                py,
                "-m",
                "unisd.cli.main",
                "train",
                "--recipe",
                "demo",
                "--model",
                str(model_dir),
                "--data",
                str(records),
                "--max-steps",
                "3",
                "--set",
                "precision.mixed_precision=bf16",
                "--set",
                "evaluation.heldout=16",
                "--set",
                "logging.progress_bar=false",
                "-o",
                str(work / "demo"),
            ],
        }
    )
    vllm = {
        "name": "vllm rollout",
        "limit": 120,
        "json": work / "vllm.json",
        "cmd": [*throughput, "--configs", "sdft-jsd-gc-vllm", "--json", str(work / "vllm.json")],
    }
    if not importlib.util.find_spec("vllm"):
        vllm["skip"] = "vllm is not installed"
    steps.append(vllm)
    return steps


def run_step(step: dict, env: dict[str, str], scale: float) -> dict:
    """Run one step; its status, seconds, the tail of its output and what its JSON file holds."""
    out = {"name": step["name"], "command": " ".join(map(str, step["cmd"]))}
    if step.get("skip"):
        return {**out, "status": "skipped", "detail": step["skip"]}
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            step["cmd"], capture_output=True, text=True, env=env, timeout=step["limit"] * scale, cwd=ROOT
        )
        status = "ok" if proc.returncode == 0 else f"failed (rc {proc.returncode})"
        text = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        status = f"timed out ({step['limit'] * scale:.0f} s)"
        text = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
    out.update(status=status, seconds=round(time.monotonic() - t0, 1), tail=text.strip().splitlines()[-15:])
    if step.get("json") and Path(step["json"]).is_file():
        out["result"] = json.loads(Path(step["json"]).read_text())
        broken = [k for k, v in (out["result"].get("results") or {}).items() if "error" in v]
        if broken and status == "ok":  # a benchmark reports a configuration that did not run as its own row
            out["status"] = f"failed ({', '.join(broken)})"
    out["detail"] = describe(step["name"], out, text)
    return out


def describe(name: str, out: dict, text: str) -> str:
    """A one-line reading of a step's result for the summary table."""
    res = out.get("result") or {}
    if name == "cuda tests":
        found = re.findall(r"(\d+ (?:passed|failed|skipped|error)s?)", text)
        return ", ".join(dict.fromkeys(found)) or (out["tail"][-1] if out["tail"] else "")
    if name == "loss memory" and res.get("rows"):
        cells = []
        for r in res["rows"]:
            b, a = r["blocks"], r["naive"]
            ratio = f" ({b['peak_mb'] / a['peak_mb']:.2f}× naive)" if "peak_mb" in a and "peak_mb" in b else ""
            cells.append(
                f"N={r['N']}: blocks {b.get('peak_mb', 0):.0f} MB{ratio}"
                if "peak_mb" in b
                else f"N={r['N']}: {b.get('error')}"
            )
        return "; ".join(cells)
    if name in ("step throughput", "vllm rollout") and res.get("results"):
        return "; ".join(
            f"{k} {v['s_per_step']:.2f} s/step, {v['peak_mb']:.0f} MB"
            if "s_per_step" in v
            else f"{k}: {v.get('error')}"
            for k, v in res["results"].items()
        )
    if name == "demo bf16" and res:
        return f"{res.get('steps')} steps in {res.get('seconds')} s, loss {res.get('last', {})}"
    return out["tail"][-1] if out.get("tail") else ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="the same plan on the CPU at tiny shapes")
    p.add_argument(
        "--prepare", action="store_true", help="write the assets a GPU machine needs into --assets, and stop"
    )
    p.add_argument("--assets", type=Path, default=ASSETS)
    p.add_argument("--out", type=Path, help="where gpu_check.json goes (default: a temporary folder, printed)")
    p.add_argument("--budget", type=float, default=1.0, help="scale every step's time limit")
    p.add_argument("--only", help="comma-separated step names to run (default: all)")
    args = p.parse_args(argv)
    if args.prepare:
        prepare(args.assets)
        return 0
    if not args.dry_run and not _have_gpu():
        print("gpu_check: no CUDA GPU here, nothing to check (--dry-run runs the plan on the CPU at tiny shapes)")
        return 0
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    if args.dry_run:
        env.update(UNISD_CUDA_TESTS_ON_CPU="1", CUDA_VISIBLE_DEVICES="")
    if importlib.util.find_spec("pydantic") is None:  # a bare GPU machine: install what was carried
        if not (args.assets / "wheels").is_dir():
            raise SystemExit(
                f"gpu_check: pydantic is missing and {args.assets}/wheels is not here: run --prepare where "
                "pip can reach an index, and carry that folder"
            )
        env.update(install(args.assets, work / "site"))
        sys.path.insert(0, str(work / "site"))
    sys.path.insert(0, str(BENCH))
    from random_models import TOKENIZER_ENV, build_model

    if (args.assets / "tokenizer").is_dir():
        env[TOKENIZER_ENV] = os.environ[TOKENIZER_ENV] = str(args.assets / "tokenizer")
    model_dir = build_model("tiny" if args.dry_run else "smollm2-135m", work / "model")
    records = args.assets / "records.jsonl"
    if not records.is_file():
        write_demo_records(records := work / "records.jsonl")
    steps = plan(args.dry_run, work, args.assets, model_dir, records)
    if args.only:
        steps = [s for s in steps if s["name"] in args.only.split(",")]
    import torch

    device = "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(0)
    print(f"gpu_check on {device}: {len(steps)} steps, work folder {work}", flush=True)
    results = []
    for step in steps:
        results.append(run_step(step, env, args.budget))
        r = results[-1]
        print(f"  {r['name']}: {r['status']} ({r.get('seconds', 0)} s) {r['detail']}", flush=True)
    out = args.out or work
    out.mkdir(parents=True, exist_ok=True)
    report = {"device": device, "torch": torch.__version__, "dry_run": args.dry_run, "steps": results}
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
    print("\n| step | status | seconds | result |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['status']} | {r.get('seconds', '')} | {r['detail']} |")
    print(f"\nwritten: {out / 'gpu_check.json'}")
    failed = [r["name"] for r in results if r["status"] not in ("ok", "skipped")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
