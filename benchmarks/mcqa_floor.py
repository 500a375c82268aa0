"""Is a multiple-choice task above the floor for a model? Base-model accuracy on CoS-E train items.

Measures, on the last N items of CoS-E's train split (never in an experiment's training prefix, and
not its test split), greedy accuracy of the base model

- with the spec's MCQA student prompt (reason briefly, then ``Answer: <letter>``), and how often a
  letter can be extracted at all;
- with a letter-only prompt (the question, the options, "Answer with the letter of the correct
  option.");
- by log-likelihood of the option letters after the letter-only prompt (no generation);
- of the answer-aware teacher (the spec's teacher prompt, which shows the answer);
- with an option-text prompt (the options without letters, "Answer with one of the options."),
  scored by which option's text the answer names first, for the student and for a teacher shown
  the CoS-E explanation (not the answer) before the same question;
- by length-normalised log-likelihood of each option's text after ``Answer:`` (lm-eval's
  ``acc_norm`` way of scoring CommonsenseQA).

Chance is 1 / number of options. Run from the repository root with ``../shared/data`` beside it::

    python benchmarks/mcqa_floor.py --items 64
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data", default="../shared/data/cose/v1.11")
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=48)
    args = p.parse_args()

    import torch

    from unisd.engine.batching import tokenize_prompts
    from unisd.engine.decoding import generate_texts
    from unisd.runs.heldout import heldout_accuracy
    from unisd.evaluation.loading import load_for_eval
    from unisd_plugins.evaluation.scoring import extract_mcqa_letter
    from unisd.plugins import get_host

    cls = get_host().registries.datasets.get("cose")
    adapter = cls(cls.Config(type="cose", path=args.data, split="train"))
    records = list(adapter.load())[-args.items :]
    model, tok = load_for_eval(args.model)
    n_options = records[0]["meta"]["num_choices"]
    out: dict = {"items": len(records), "options": n_options, "chance": 1 / n_options}

    def letter_prompt(r) -> str:
        options = "\n".join(f"{k}. {v}" for k, v in r["meta"]["choices"].items())
        return f"{r['meta']['question']}\n{options}\nAnswer with the letter of the correct option."

    t0 = time.time()
    spec = heldout_accuracy(model, tok, adapter, records, args.max_new_tokens, batch_size=32)
    out["spec_prompt"] = {
        "accuracy": spec["accuracy"],
        "max_new_tokens": args.max_new_tokens,
        "letter_found": sum(extract_mcqa_letter(a["answer"], n_options)[0] is not None for a in spec["answers"])
        / len(records),
    }
    short = heldout_accuracy(
        model, tok, adapter, [{**r, "prompt": letter_prompt(r)} for r in records], 16, batch_size=32
    )
    out["letter_prompt"] = {"accuracy": short["accuracy"], "max_new_tokens": 16}
    teacher = heldout_accuracy(
        model, tok, adapter, [{**r, "prompt": r["teacher_prompt"]} for r in records], args.max_new_tokens, batch_size=32
    )
    out["teacher_spec_prompt"] = {"accuracy": teacher["accuracy"], "max_new_tokens": args.max_new_tokens}
    letters = [tok.encode(c, add_special_tokens=False)[0] for c in "ABCDE"[:n_options]]
    right = 0
    with torch.no_grad():
        for r in records:
            enc = tokenize_prompts(tok, [letter_prompt(r)])
            logits = model(input_ids=enc.ids, attention_mask=enc.mask).logits[0, -1]
            right += "ABCDE"[int(logits[letters].argmax())] == r["answer"]
    out["letter_loglikelihood"] = {"accuracy": right / len(records)}

    def text_prompt(r, hint: str = "") -> str:
        options = ", ".join(r["meta"]["choices"].values())
        return f"{hint}{r['meta']['question']}\nOptions: {options}\nAnswer with one of the options."

    def named_option(r, answer: str) -> str | None:
        low = answer.lower()
        hits = [(low.find(v.lower()), k) for k, v in r["meta"]["choices"].items() if v.lower() in low]
        return min(hits)[1] if hits else None

    def text_accuracy(prompts) -> dict:
        answers = generate_texts(model, tok, prompts, max_new_tokens=12, batch_size=32)
        named = [named_option(r, a) for r, a in zip(records, answers, strict=True)]
        return {
            "accuracy": sum(n == r["answer"] for r, n in zip(records, named, strict=True)) / len(records),
            "option_named": sum(n is not None for n in named) / len(records),
            "max_new_tokens": 12,
        }

    out["option_text_prompt"] = text_accuracy([text_prompt(r) for r in records])
    hints = [f"Hint: {r['meta'].get('explanation') or ''}\n" for r in records]
    out["option_text_teacher_with_explanation"] = text_accuracy(
        [text_prompt(r, h) for r, h in zip(records, hints, strict=True)]
    )
    right = 0
    with torch.no_grad():
        for r in records:
            base = f"{r['meta']['question']}\nAnswer:"
            scores = {}
            for k, v in r["meta"]["choices"].items():
                full = tok(base + " " + v, add_special_tokens=False).input_ids
                n_prompt = len(tok(base, add_special_tokens=False).input_ids)
                ids = torch.tensor([full])
                logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
                tgt = ids[0, 1:]
                tok_lp = logp.gather(-1, tgt[:, None])[:, 0][n_prompt - 1 :]
                scores[k] = float(tok_lp.sum()) / max(len(v), 1)
            right += max(scores, key=scores.get) == r["answer"]
    out["option_text_loglikelihood_norm"] = {"accuracy": right / len(records)}
    out["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
