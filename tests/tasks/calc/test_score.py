"""score.py must agree with MedCalc-Bench's official check_correctness (a verbatim copy, CC BY-SA 4.0, lives in
tests/fixtures/medcalc_official/) on fixture answers around every decision boundary."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ehrforge.core.types import Abstain, Answer
from ehrforge.tasks.calc.score import extract_tag, is_correct, parse_value, score_predictions

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "medcalc_official"
GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "calc"


@pytest.fixture(scope="module")
def official():
    spec = importlib.util.spec_from_file_location("medcalc_official_evaluate", FIXTURES / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check_correctness


def _limits(gt: float) -> tuple[str, str]:
    return str(gt * 1.05), str(gt * 0.95)  # upstream: upper = +5 %, lower = −5 % (positive answers)


# (calculator id, ground truth, answer strings): answers chosen to sit on both sides of each rule's boundary
CASES = [
    (5, "83.333", ["83.333", "87.4", "87.6", "79.2", "79.1", "80", "100"]),
    (2, "12.949", ["12.949", "13.5", "13.6", "12.31", "12.3", "0"]),
    (8, "1.5", ["1.5", "1.45", "1.4", "1.57", "1.6"]),
    (4, "3", ["3", "3.0", "3.4", "2.6", "2.5", "3.5", "4", "2"]),  # Python round: 2.5 -> 2, 3.5 -> 4
    (45, "0", ["0", "0.4", "0.5", "0.6", "1"]),
    (13, "12/02/2000", ["12/02/2000", "12/2/2000", "12/03/2000", "11/30/2000"]),
    (68, "01/21/2017", ["01/21/2017", "1/21/2017", "01/22/2017"]),
    (69, "('34 weeks', '3 days')", ["(34, 3)", "('34 weeks', '3 days')", "34 weeks, 3 days", "(34, 4)", "(33, 3)"]),
]
FORMATS = {
    5: "decimal",
    2: "decimal",
    8: "decimal",
    4: "integer",
    45: "integer",
    13: "date",
    68: "date",
    69: "weeks_days",
}


def test_agrees_with_official_check_correctness(official) -> None:
    checked = 0
    for cid, gt, answers in CASES:
        upper, lower = _limits(float(gt)) if FORMATS[cid] == "decimal" else (gt, gt)
        for answer in answers:
            theirs = bool(official(answer, gt, cid, upper, lower))
            ours = is_correct(answer, gt, FORMATS[cid], lower, upper)
            assert ours == theirs, (cid, gt, answer, ours, theirs)
            checked += 1
    assert checked == sum(len(a) for _, _, a in CASES)


def test_boundaries_match_the_rules() -> None:
    assert is_correct("87.4", "83.333", "decimal") and not is_correct("87.6", "83.333", "decimal")
    assert is_correct("2.6", "3", "integer") and not is_correct("2.5", "3", "integer")
    assert is_correct("12/2/2000", "12/02/2000", "date") and not is_correct("12/03/2000", "12/02/2000", "date")
    assert is_correct("(34, 3)", "(34, 3)", "weeks_days") and not is_correct("(34, 4)", "(34, 3)", "weeks_days")
    # negative ground truth: upstream's 0.95/1.05 limits invert and reject everything; we keep ±5 % meaningful
    assert is_correct("-2.3", "-2.333", "decimal") and not is_correct("-2.6", "-2.333", "decimal")
    # we never eval model output
    assert not is_correct("__import__('os')", "3", "integer")


def test_parsing() -> None:
    assert extract_tag("draft <answer>1</answer> final <answer> 2 </answer>") == "2"
    assert extract_tag("no tag") is None
    assert parse_value("1,234.5 mL", "decimal") == 1234.5
    assert parse_value("−3.5", "decimal") == -3.5
    assert parse_value("02/30/2021", "date") is None
    assert parse_value("n_a", "decimal") is None


def _rec(calc: str, output_type: str, fmt: str, gt: str) -> dict:
    return {"calculator": calc, "output_type": output_type, "answer_format": fmt, "ground_truth": gt}


def test_score_by_calculator_and_output_type() -> None:
    records = [
        _rec("bmi", "decimal", "decimal", "20.5"),
        _rec("bmi", "decimal", "decimal", "30.0"),
        _rec("cha2ds2_vasc", "integer", "integer", "3"),
        _rec("due_date", "date", "date", "12/02/2000"),
    ]
    preds = [Answer("20.9"), Answer("40"), Abstain("no <answer> tag"), Answer("12/02/2000")]
    got = score_predictions(records, preds)
    assert got["accuracy"] == 0.5 and got["abstain_rate"] == 0.25
    assert got["accuracy/bmi"] == 0.5 and got["accuracy/cha2ds2_vasc"] == 0.0 and got["accuracy/due_date"] == 1.0
    assert got["accuracy/decimal"] == 0.5 and got["accuracy/integer"] == 0.0 and got["accuracy/date"] == 1.0
    assert got["n_bmi"] == 2.0 and got["n"] == 4.0
    golden = json.loads((GOLDEN / "score_example.json").read_text())
    assert got == golden
