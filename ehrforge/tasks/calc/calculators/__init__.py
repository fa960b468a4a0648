"""Medical calculators (MedCalc-Bench ids and question texts) as tested pure functions."""

from ehrforge.tasks.calc.calculators.registry import (
    ANSWER_FORMATS,
    BY_ID,
    CALCULATORS,
    Calculator,
    format_answer,
    get_calculator,
    select_calculators,
)

__all__ = [
    "ANSWER_FORMATS",
    "BY_ID",
    "CALCULATORS",
    "Calculator",
    "format_answer",
    "get_calculator",
    "select_calculators",
]
