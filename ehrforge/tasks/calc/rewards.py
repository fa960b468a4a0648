"""GRPO rewards for the calc recipe: plain TRL-style functions ``(completions, **columns) -> list[float]``.

TRL passes conversational completions as ``[[{"role": "assistant", "content": ...}], ...]`` and dataset columns
as keyword lists; plain strings are accepted too, so the functions are easy to test and reuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ehrforge.tasks.calc.score import ANSWER_TAG, extract_tag, is_correct, parse_value


def completion_text(completion: Any) -> str:
    """The text of one completion, whether TRL gave a string, a message list or a message.

    >>> completion_text([{"role": "assistant", "content": "hi"}]), completion_text("hi")
    ('hi', 'hi')
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    if isinstance(completion, (list, tuple)) and completion:
        return completion_text(completion[-1])
    return ""


def _column(values: Sequence[Any] | None, i: int, default: Any = None) -> Any:
    return values[i] if values is not None and i < len(values) else default


def format_reward(completions: list[Any], answer_format: Sequence[str] | None = None, **_: Any) -> list[float]:
    """1.0 when the completion has exactly one ``<answer>…</answer>`` whose content parses for the item's answer
    format (a number, a MM/DD/YYYY date or a (weeks, days) pair), else 0.0.

    >>> format_reward(["2 × 40 = 80 <answer>80</answer>", "80", "<answer>soon</answer>", "<answer>1</answer><answer>2</answer>"])
    [1.0, 0.0, 0.0, 0.0]
    >>> format_reward([[{"role": "assistant", "content": "<answer>03/04/2021</answer>"}]], answer_format=["date"])
    [1.0]
    """
    out = []
    for i, completion in enumerate(completions):
        text = completion_text(completion)
        tags = ANSWER_TAG.findall(text)
        fmt = _column(answer_format, i, "decimal")
        out.append(1.0 if len(tags) == 1 and parse_value(tags[0], fmt) is not None else 0.0)
    return out


def correctness_reward(
    completions: list[Any],
    ground_truth: Sequence[str],
    answer_format: Sequence[str] | None = None,
    lower_limit: Sequence[str] | None = None,
    upper_limit: Sequence[str] | None = None,
    **_: Any,
) -> list[float]:
    """1.0 when the tagged answer is correct under MedCalc-Bench rules (dates and integer scores exact, decimals
    within ±5 %), else 0.0. No tag, no credit.

    >>> correctness_reward(["<answer>84</answer>", "<answer>90</answer>", "84"], ground_truth=["83.333"] * 3)
    [1.0, 0.0, 0.0]
    >>> correctness_reward(["<answer>3.4</answer>"], ground_truth=["3"], answer_format=["integer"])
    [1.0]
    """
    out = []
    for i, completion in enumerate(completions):
        answer = extract_tag(completion_text(completion))
        if answer is None:
            out.append(0.0)
            continue
        ok = is_correct(
            answer,
            str(ground_truth[i]),
            _column(answer_format, i, "decimal"),
            _column(lower_limit, i),
            _column(upper_limit, i),
        )
        out.append(1.0 if ok else 0.0)
    return out


def length_penalty(completions: list[Any], max_chars: int = 1200, **_: Any) -> list[float]:
    """0 up to ``max_chars`` characters, then −(excess / max_chars), floored at −1: discourages rambling that eats
    the completion budget without changing which answers are rewarded.

    >>> length_penalty(["x" * 100, "x" * 1800, "x" * 5000])
    [0.0, -0.5, -1.0]
    """
    return [max(-1.0, -max(0, len(completion_text(c)) - max_chars) / max_chars) for c in completions]


def make_length_penalty(max_chars: int):  # noqa: ANN201 - returns a RewardFn
    """A length penalty with a fixed budget, named so TRL logs it as ``length_penalty``.

    >>> make_length_penalty(10)(["x" * 15])
    [-0.5]
    """

    def penalty(completions: list[Any], **columns: Any) -> list[float]:
        return length_penalty(completions, max_chars=max_chars)

    penalty.__name__ = "length_penalty"
    return penalty
