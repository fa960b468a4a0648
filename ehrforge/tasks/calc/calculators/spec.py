"""What a calculator is: MedCalc-Bench id and key, the features it reads, how its answer is written, and the pure
function that computes the gold answer with its worked reasoning (the SFT target)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

#: a custom case maker for calculators whose notes are not "a patient with features" (dosing): rng ->
#: (canonical values, shown strings for numeric inputs, note text)
CaseMaker = Callable[[random.Random], tuple[dict[str, Any], dict[str, str], str]]


@dataclass(frozen=True)
class Calculator:
    id: int
    key: str
    inputs: tuple[str, ...]
    answer_format: str
    compute: Callable[[dict[str, Any]], tuple[Any, list[str]]]  # canonical values -> (answer, worked lines)
    unit: str = ""
    age_range: tuple[int, int] = (18, 90)
    sex: str | None = None
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    complaints: tuple[str, ...] = ()
    make_case: CaseMaker | None = None

    @property
    def meta(self) -> dict[str, str]:
        return _medcalc_meta()[str(self.id)]

    @property
    def name(self) -> str:
        return self.meta["calculator_name"]

    @property
    def question(self) -> str:
        return self.meta["question"]

    def ask(self, values: dict[str, Any]) -> str:
        """The question for one case: MedCalc-Bench's fixed text, or its template filled in where the question
        names case details (the steroid conversion names the input and target drugs)."""
        template = self.question
        return template.format(**values) if "{" in template else template

    @property
    def output_type(self) -> str:
        """MedCalc-Bench's output type (decimal / integer / date), used for accuracy-by-type."""
        return self.meta["output_type"]

    @property
    def category(self) -> str:
        return self.meta["category"]


def _medcalc_meta() -> dict[str, dict[str, str]]:
    global _META
    if _META is None:
        text = resources.files("ehrforge.tasks.calc.calculators").joinpath("medcalc_questions.json").read_text("utf-8")
        _META = json.loads(text)["calculators"]
    return _META


_META: dict[str, dict[str, str]] | None = None
