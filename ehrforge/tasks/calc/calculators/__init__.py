"""Medical calculators (MedCalc-Bench ids and question texts) as tested pure functions."""

from ehrforge.tasks.calc.calculators.formatting import ANSWER_FORMATS, format_answer, num
from ehrforge.tasks.calc.calculators.registry import BY_ID, CALCULATORS, get_calculator, select_calculators
from ehrforge.tasks.calc.calculators.spec import Calculator

__all__ = [
    "ANSWER_FORMATS",
    "BY_ID",
    "CALCULATORS",
    "Calculator",
    "format_answer",
    "get_calculator",
    "num",
    "select_calculators",
]
