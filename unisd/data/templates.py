"""Recipe-level teacher prompt templates (``data.teacher_template``).

A template is a ``str.format`` string with two placeholders: ``{prompt}``, the student prompt, and
``{reference}``, the record's privileged reference (its ``reference`` slot, by default the gold
completion). The reference is what makes the teacher a *self-distillation* teacher: a template
without it would distil the model into itself, so it is refused.
"""

from __future__ import annotations

import string
from typing import Any
from collections.abc import Mapping

PLACEHOLDERS = ("prompt", "reference")


def check_teacher_template(template: str) -> None:
    """Raise ``ValueError`` unless ``template`` formats with exactly the known placeholders and
    contains ``{reference}``."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}); write literal braces as {{{{ and }}}}") from None
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join('{' + f + '}' for f in unknown)}; use {{prompt}} and {{reference}}"
        )
    if "reference" not in fields:
        raise ValueError(
            "the template must contain {reference}: without the privileged reference the teacher is the student itself"
        )


def apply_teacher_template(
    records: list[dict[str, Any]], template: str, rendered: Mapping[str, str] | None = None
) -> None:
    """Rewrite ``teacher_prompt`` in place, and each prompt slot of ``rendered`` (prompt slot →
    reference slot, from the components' :class:`~unisd.components.base.RecordSlot`) where the
    record has that reference."""
    for r in records:
        r["teacher_prompt"] = template.format(prompt=r["prompt"], reference=r.get("reference") or r["gold"])
        for slot, source in (rendered or {}).items():
            if r.get(source):
                r[slot] = template.format(prompt=r["prompt"], reference=r[source])
