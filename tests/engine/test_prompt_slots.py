"""Teacher prompts that components add (declared as Requirements.prompt_fields) are length-filtered
like the student and teacher prompts; the engine knows no slot name of its own."""

from __future__ import annotations

import json


def test_an_over_long_negative_prompt_drops_its_record(make_recipe, records_file, tmp_path):
    from unisd.engine.trainer import Trainer

    records = tmp_path / "train.jsonl"
    rows = [json.loads(line) for line in records_file.read_text().splitlines()]
    for row in rows[:3]:
        row["negative_prompt"] = row["negative_prompt"] + " and again" * 200
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = make_recipe(
        "unisd-contrastive",
        f"data.dataset={{type: jsonl, path: '{records}'}}",
        "data.max_prompt_length=256",
        "data.shuffle=false",
    )
    trainer = Trainer(recipe, tmp_path / "run")
    try:
        run = trainer.setup()
        assert trainer.dropped_long_prompts == {"negative_prompt": 3}
        assert not {r["id"] for r in rows[:3]} & {r["id"] for r in run.records}
        assert {r["id"] for r in rows[3:6]} <= {r["id"] for r in run.records}
    finally:
        trainer.close()
