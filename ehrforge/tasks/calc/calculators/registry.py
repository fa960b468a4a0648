"""The registry of every calculator ehrforge can generate, score and run as a tool: lookup by key or MedCalc-Bench id."""

from __future__ import annotations

from datetime import date
from typing import Any

from ehrforge.errors import UnknownNameError, closest
from ehrforge.tasks.calc.calculators.spec import Calculator
from ehrforge.tasks.calc.calculators.table import CLASSIC
from ehrforge.tasks.calc.calculators.table_extended import EXTENDED
from ehrforge.tasks.calc.features import NUMERIC

_CALCS: list[Calculator] = sorted(CLASSIC + EXTENDED, key=lambda c: c.id)
CALCULATORS: dict[str, Calculator] = {c.key: c for c in _CALCS}
BY_ID: dict[int, Calculator] = {c.id: c for c in _CALCS}


def get_calculator(name: str | int) -> Calculator:
    """By key (``cha2ds2_vasc``) or MedCalc-Bench id (``4``)."""
    text = str(name).strip()
    if text.isdigit() and int(text) in BY_ID:
        return BY_ID[int(text)]
    if text in CALCULATORS:
        return CALCULATORS[text]
    raise UnknownNameError(f"unknown calculator '{text}'", closest(text, sorted(CALCULATORS)))


def select_calculators(spec: str | list[str] | None) -> list[Calculator]:
    """``None``/``all`` → every calculator; else a comma-separated list of keys or ids."""
    if spec is None or spec == "all" or spec == []:
        return list(_CALCS)
    names = spec.split(",") if isinstance(spec, str) else spec
    return [get_calculator(n) for n in names if str(n).strip()]


def units_of(name: str) -> str:
    return NUMERIC[name].canonical_unit if name in NUMERIC else ""


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
