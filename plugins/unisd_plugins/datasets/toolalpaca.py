"""ToolAlpaca (Ahren09/ToolAlpaca on the hub; official tangqiaoyu/ToolAlpaca files locally).

Hub rows carry ``prompt`` (ReAct prompt with API docs), ``instruction``, ``golden_response`` (ReAct
steps) and ``golden_answer`` (``[{Action, Action_Input}]``). Local ``path`` = the official layout:
a JSON list of APIs (``Name``, ``NLDocumentation``, ``Function_Description``/``Functions``, …) with
either ``Instructions`` + ``Golden_Answers`` (eval files) or ``Instances`` (train data). The
ReAct prompt is built from the API's function descriptions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar
from collections.abc import Iterable, Mapping, Sequence

from unisd.components.kinds import DatasetConfig
from unisd_plugins.datasets import prompts
from unisd_plugins.datasets.base import BaseAdapter, DatasetSourceError, load_hub_split, local_path, read_json_or_jsonl

HUB_ID = "Ahren09/ToolAlpaca"
#: Files of the official layout per split, when ``path`` is a folder.
LOCAL_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train_data.json",),
    "validation": ("validation_data.json",),
    "test": ("eval_simulated.json", "eval_real.json"),
    "eval_simulated": ("eval_simulated.json",),
    "eval_real": ("eval_real.json",),
}
GET_DETAILS = (
    "getDetails: Ask the user for details that are missing but required to complete the request.\n"
    'Parameters: {"Question": "Required. string. The question to ask the user."}\n'
    "Output: The user's answer."
)


class ToolAlpacaConfig(DatasetConfig):
    """ToolAlpaca (train / test; locally also eval_real, eval_simulated, validation)."""

    type: str = "toolalpaca"


def react_prompt(tools: Mapping[str, str], instruction: str) -> str:
    """A ReAct tool-use prompt: tool list, format block (``Use the following format:`` … ``Begin!``), question."""
    names = ["getDetails", *tools]
    tool_text = "\n".join([GET_DETAILS, *(f"{n}: {d.strip()}" for n, d in tools.items())])
    return (
        "Answer the user's question with the help of the tools below. The user cannot see the tools or "
        "their results, so give every piece of information the user needs in the Final Answer. Do not make "
        'anything up; if a required parameter is missing, use the "getDetails" tool to ask the user for it.\n'
        "You have access to the following tools:\n\n"
        f"{tool_text}\n\n"
        "Use the following format:\n"
        "Question: the input question you must answer\n"
        "Thought: you should always think about what to do\n"
        f"Action: the action to take, should be one of [{', '.join(names)}]\n"
        "Action Input: the input to the action, in JSON format\n"
        "Observation: the result of the action\n"
        "... (this Thought/Action/Action Input/Observation can repeat N times)\n"
        "Thought: I now know the final answer\n"
        "Final Answer: the final answer to the original input question\n\n"
        "Begin!\n\n"
        f"Question: {instruction.strip()}"
    )


def calls_to_react(calls: Sequence[Mapping[str, Any]]) -> list[str]:
    """``[{Action, Action_Input}]`` → ReAct steps ``Action: …⏎Action Input: …``."""
    steps = []
    for call in calls:
        args = call.get("Action_Input", "{}")
        args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        steps.append(f"Action: {call['Action']}\nAction Input: {args}")
    return steps


def _normalize_calls(golden_answer: Any) -> list[dict[str, Any]]:
    calls = golden_answer if isinstance(golden_answer, list) else ([golden_answer] if golden_answer else [])
    out = []
    for c in calls:
        if isinstance(c, str):
            try:
                c = json.loads(c)
            except json.JSONDecodeError:
                continue
        if isinstance(c, Mapping) and c.get("Action"):
            out.append({"Action": str(c["Action"]), "Action_Input": c.get("Action_Input", "{}")})
    return out


def api_tools(api: Mapping[str, Any]) -> dict[str, str]:
    """Function name → description of an API in the official layout (``components`` appended to the last)."""
    funcs = dict(api.get("Function_Description") or api.get("Functions") or {})
    components = str(funcs.pop("components", "") or "").strip()
    tools = {k: str(v) for k, v in funcs.items()}
    if components and tools:
        last = list(tools)[-1]
        tools[last] = tools[last].rstrip() + "\n" + components
    return tools


def official_items(apis: Sequence[Mapping[str, Any]], stem: str) -> Iterable[dict[str, Any]]:
    """Hub-layout rows (plus ``id``/``api``) from the official list-of-APIs layout."""
    for k, api in enumerate(apis):
        tools = api_tools(api)
        if not tools:
            continue
        name = str(api.get("Name", f"api{k}"))
        if "Instructions" in api:
            golden = api.get("Golden_Answers") or []
            for i, instruction in enumerate(api["Instructions"]):
                calls = _normalize_calls(golden[i] if i < len(golden) else [])
                yield {
                    "id": f"toolalpaca/{stem}/{k}-{name}/{i}",
                    "api": name,
                    "instruction": instruction,
                    "prompt": react_prompt(tools, instruction),
                    "golden_answer": calls,
                    "golden_response": calls_to_react(calls),
                }
        for i, inst in enumerate(api.get("Instances") or []):
            steps = inst.get("intermediate_steps") or []
            if not steps:
                continue
            instruction = str(inst.get("input", "")).rsplit("\nHint: ", 1)[0]
            calls, response = [], []
            for step in steps:
                action, args, log = step[0][0], step[0][1], str(step[0][2] if len(step[0]) > 2 else "")
                calls.append({"Action": action, "Action_Input": args})
                text = log.strip() or f"Action: {action}\nAction Input: {args}"
                response.append(text if text.startswith(("Thought:", "Action:")) else f"Thought: {text}")
            yield {
                "id": f"toolalpaca/{stem}/{k}-{name}/{i}",
                "api": name,
                "instruction": instruction,
                "prompt": react_prompt(tools, instruction),
                "golden_answer": calls,
                "golden_response": response,
            }


class ToolAlpacaAdapter(BaseAdapter):
    """Tool use in ReAct format; gold = the golden ReAct response."""

    task: ClassVar[str] = "tool"
    Config: ClassVar[type[DatasetConfig]] = ToolAlpacaConfig

    def rows(self) -> list[dict[str, Any]]:
        split = {"eval": "test", "dev": "validation", "val": "validation"}.get(self.config.split, self.config.split)
        if self.config.path is None:
            rows = load_hub_split("toolalpaca", HUB_ID, None, split)
            return [{**r, "id": f"toolalpaca/{split}/{i}"} for i, r in enumerate(rows)]
        path = local_path("toolalpaca", self.config.path)
        if path.is_dir():
            if split not in LOCAL_FILES:
                raise DatasetSourceError(
                    f"dataset 'toolalpaca': unknown split {split!r}; use one of {', '.join(LOCAL_FILES)}"
                )
            files = [path / f for f in LOCAL_FILES[split] if (path / f).is_file()]
            if not files:
                raise DatasetSourceError(f"dataset 'toolalpaca': none of {', '.join(LOCAL_FILES[split])} in {path}")
        else:
            files = [path]
        rows: list[dict[str, Any]] = []
        for f in files:
            data = read_json_or_jsonl(Path(f))
            if data and isinstance(data[0], Mapping) and "prompt" in data[0] and "instruction" in data[0]:
                rows += [{**r, "id": r.get("id") or f"toolalpaca/{f.stem}/{i}"} for i, r in enumerate(data)]
            else:
                rows += list(official_items(data, Path(f).stem))
        return rows

    def build(self) -> Iterable[dict[str, Any]]:
        for row in self.rows():
            yield tool_record(row)


def tool_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A training record from a hub-layout ToolAlpaca row (with ``id``)."""
    calls = _normalize_calls(row.get("golden_answer"))
    response = row.get("golden_response") or []
    response = [response] if isinstance(response, str) else [str(s) for s in response]
    if not any(s.strip() for s in response):  # the hub test split has golden_response == ['']
        response = calls_to_react(calls)
    gold = prompts.sft_gold_tool(response)
    student = prompts.toolalpaca_student_prompt(str(row["prompt"]))
    instruction = str(row.get("instruction", ""))
    return {
        "id": str(row["id"]),
        "prompt": student,
        "teacher_prompt": prompts.render_teacher_prompt(student, gold, variant="tool"),
        "gold": gold,
        "answer": "\n".join(calls_to_react(calls)) or gold,
        "meta": {"task": "tool", "instruction": instruction, "api": row.get("api", ""), "golden_answer": calls},
        "demo": prompts.tool_demo_block(instruction, response),
        "retrieval_text": instruction or student,
    }
