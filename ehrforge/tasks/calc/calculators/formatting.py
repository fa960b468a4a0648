"""How answers and numbers are written: MedCalc-Bench's answer formats and the reasoning's number style."""

from __future__ import annotations

from typing import Any

#: how an answer is written and checked (MedCalc-Bench's evaluate.py rules)
ANSWER_FORMATS = ("decimal", "integer", "date", "weeks_days")


def num(x: float) -> str:
    """A number as the reasoning writes it: up to 3 decimals, no trailing zeros."""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_answer(value: Any, answer_format: str) -> str:
    """The gold answer string, in the form MedCalc-Bench's checker expects."""
    if answer_format == "date":
        return value.strftime("%m/%d/%Y")
    if answer_format == "weeks_days":
        return f"({value[0]}, {value[1]})"
    if answer_format == "integer":
        return str(round(value))
    return num(value)
