"""The final model a hub user can load: cache on, a model card in merged/ and adapter/, and push."""

from __future__ import annotations

import json

from unisd.cli.main import main
from unisd.runs.launch import train


def test_the_final_model_generates_with_the_cache_and_carries_a_model_card(make_recipe, tmp_path):
    run = tmp_path / "run"
    summary = train(
        make_recipe("vanilla", "training.max_steps=2", "evaluation.heldout=2", "checkpoint.save_merged=true"), run
    )
    assert json.loads((run / "final" / "merged" / "config.json").read_text())["use_cache"] is True
    for kind in ("merged", "adapter"):
        card = (run / "final" / kind / "README.md").read_text()
        h = summary["heldout"]
        assert card.startswith("---\n") and "self-distillation" in card and "# vanilla" in card
        assert f"{100 * h['accuracy_before']:.1f}% → {100 * h['accuracy_after']:.1f}%" in card
        assert "UniSD 0." in card and "```yaml\nname: vanilla" in card and "type: jsonl" in card
        assert "base_model:" not in card  # a local base is named in the text, never as a hub id it is not
    assert "library_name: peft" in (run / "final" / "adapter" / "README.md").read_text()


def test_push_fails_clearly_offline_and_without_a_model(make_recipe, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    run = tmp_path / "run"
    train(make_recipe("vanilla", "training.max_steps=1", "checkpoint.save_merged=false"), run)
    assert main(["push", str(run), "--repo", "me/x"]) == 2
    assert (
        "holds no model to push (train with checkpoint.save_merged=true, or push the adapter with --adapter)"
        in capsys.readouterr().err
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["push", str(run), "--repo", "me/x", "--adapter"]) == 2
    assert "cannot push: the Hugging Face Hub is off (HF_HUB_OFFLINE=1)" in capsys.readouterr().err
