"""Worker for the DDP and FSDP2 tests: trains the tiny model and saves the trainable parameters
(gathered whole, written by the main process).

argv: MODEL_DIR RECORDS OUT GRAD_ACCUM [KEY=VALUE ...] (extra recipe overrides)."""

import sys
from pathlib import Path

import torch

from unisd.engine.trainer import Trainer
from unisd.recipe import load_recipe

model_dir, records, out, grad_accum = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
recipe = load_recipe(
    "vanilla",
    [
        f"model.name_or_path={model_dir}",
        f"data.dataset={{type: jsonl, path: '{records}'}}",
        "generation.max_new_tokens=6",
        "training.batch_size=2",
        f"training.grad_accum={grad_accum}",
        "training.max_steps=2",
        "lora.r=4",
        "lora.dropout=0.0",
        "optim.lr=1e-2",
        "checkpoint.every_steps=100",
        "logging.progress_bar=false",
        "logging.tensorboard=false",
        "data.shuffle=false",
        *sys.argv[5:],
    ],
)
out.mkdir(parents=True, exist_ok=True)
trainer = Trainer(recipe, out)
trainer.setup()
trainer.train()
trainer.close()
from unisd.models.wrapping import unwrap
from unisd.engine.sharding import full_trainable_state

params = full_trainable_state(unwrap(trainer.ddp_model))  # every process: FSDP2 gathers the shards
if trainer.accelerator.is_main_process:
    torch.save({"params": params, "world": trainer.accelerator.num_processes}, out / "params.pt")
