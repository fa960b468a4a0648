"""How a table sits inside a classify prompt and which words answer it: shared by the task, the sequence-classifier
predictor and the simulated teacher (which read the table back out of the prompt)."""

from __future__ import annotations

from collections.abc import Sequence

from ehrforge.core.types import Message
from ehrforge.tasks.classify.tables import NEGATIVE, POSITIVE

TABLE_START = "<<<TABLE"
TABLE_END = "TABLE>>>"
ANSWER_WORD = {POSITIVE: "yes", NEGATIVE: "no"}


def table_from_prompt(messages: Sequence[Message]) -> str:
    """The table text embedded in a classify prompt (what a sequence classifier or simulated teacher reads).

    >>> table_from_prompt([{"role": "user", "content": "Is it a schedule? <<<TABLE| a | b |TABLE>>>"}])
    '| a | b |'
    """
    content = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    start = content.find(TABLE_START)
    end = content.rfind(TABLE_END)
    if start < 0 or end < start:
        return content
    return content[start + len(TABLE_START) : end].strip("\n")
