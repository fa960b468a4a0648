"""Tool mode: every calculator's gold call runs back to its gold answer; bad calls abstain with the fault named."""

from __future__ import annotations

import doctest
import json
import random

import pytest

import ehrforge.tasks.calc.tool
from ehrforge.core.types import Abstain, Answer
from ehrforge.tasks.calc.calculators import CALCULATORS
from ehrforge.tasks.calc.notes import make_item
from ehrforge.tasks.calc.score import is_correct
from ehrforge.tasks.calc.tool import (
    KINDS,
    parameter_list,
    parse_tool_call,
    run_tool_call,
    schema_json,
    tool_schema,
    tool_target,
)


def test_doctests() -> None:
    assert doctest.testmod(ehrforge.tasks.calc.tool).failed == 0


@pytest.mark.parametrize("key", sorted(CALCULATORS))
def test_gold_call_reproduces_the_gold_answer(key: str) -> None:
    calc = CALCULATORS[key]
    for i in range(8):
        item = make_item(calc, random.Random(f"tool-{key}-{i}"), "x")
        target = tool_target(key, item["inputs"], item["shown"])
        call = json.loads(target)
        assert call["calculator"] == key
        result = run_tool_call(target)
        assert isinstance(result, Answer), result
        assert is_correct(
            result.value, item["ground_truth"], item["answer_format"], item["lower_limit"], item["upper_limit"]
        )
        assert result.evidence["calculator"] == key and result.evidence["explanation"]
        # units as the note writes them (blood pressure reads "120/80 mm Hg", so number and unit separately)
        for name, value in call.items():
            if isinstance(value, dict):
                assert str(value["value"]) in item["note"] and value["unit"] in item["note"], (name, value)


def test_schema_is_typed_for_all_55() -> None:
    assert len(CALCULATORS) == 55
    for key in CALCULATORS:
        params = tool_schema(key)
        assert params and all(p.kind in KINDS for p in params)
        assert parameter_list(key).count("\n") == len(params) - 1
    weight = {p.name: p for p in tool_schema("cockcroft_gault")}["weight"]
    assert weight.kind == "numeric" and weight.unit == "kg" and {"kg", "lb"} <= set(weight.units)
    temp = {p.name: p for p in tool_schema("sirs")}["temperature"]
    assert {"°C", "°F"} <= set(temp.units)
    creat = {p.name: p for p in tool_schema("ckd_epi_2021")}["creatinine"]
    assert {"mg/dL", "µmol/L"} <= set(creat.units)
    assert schema_json(2)["calculator"] == "cockcroft_gault"


def test_unit_conversion() -> None:
    base = {"calculator": "cockcroft_gault", "age": 67, "sex": "male"}
    metric = run_tool_call(base | {"weight": {"value": 70, "unit": "kg"}, "height": {"value": 175, "unit": "cm"},
                                   "creatinine": {"value": 1.2, "unit": "mg/dL"}})  # fmt: skip
    imperial = run_tool_call(base | {"weight": {"value": 154.32, "unit": "lb"}, "height": {"value": 68.9, "unit": "in"},
                                     "creatinine": {"value": 106.08, "unit": "umol/l"}})  # fmt: skip
    assert isinstance(metric, Answer) and isinstance(imperial, Answer)
    assert float(imperial.value) == pytest.approx(float(metric.value), rel=2e-3)
    f = run_tool_call({"calculator": "sirs", "temperature": {"value": 101.3, "unit": "F"}, "heart_rate": 95,
                       "resp_rate": 22, "wbc": 13})  # fmt: skip
    assert f.value == "4" and "38.5 °C" in f.evidence["explanation"]  # (101.3 − 32) / 1.8 = 38.5


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        ({"calculator": "bmi", "weight": 70}, "missing parameter: height"),
        ({"calculator": "bmi", "weight": {"value": 70, "unit": "mg/dL"}, "height": 170}, "unit 'mg/dL' not accepted"),
        ({"calculator": "bmi", "weight": {"value": 70, "unit": ["kg", "lb"]}, "height": 170}, "unit that is not text"),
        ({"calculator": "bmi", "weight": "seventy", "height": 170}, "'weight' must be a number"),
        ({"calculator": "bmi", "weight": float("nan"), "height": 170}, "'weight' must be a number"),
        (
            {
                "calculator": "curb65",
                "age": 70,
                "bun": 20,
                "resp_rate": 20,
                "sbp": 120,
                "dbp": 80,
                "confusion": "maybe",
            },
            "'confusion' must be true or false",
        ),
        (
            {
                "calculator": "child_pugh",
                "bilirubin": 1,
                "albumin": 3,
                "inr": 1,
                "ascites": "lots",
                "encephalopathy": "none",
            },
            "'ascites' must be one of",
        ),
        ({"calculator": "due_date", "lmp": "02/30/2021", "cycle_length": 28}, "'lmp' must be a date"),
        ({"calculator": "quantum_score"}, "unknown calculator 'quantum_score'"),
        ({"calculator": "mme", "morphine_dose": {"value": 10, "unit": "mg"}}, "morphine_doses_per_day"),
        ({"calculator": "mme"}, "no opioid dose"),
        ({"calculator": "bmi", "weight": 70, "height": 0}, "out of range"),
    ],
)
def test_bad_calls_abstain_naming_the_fault(call: dict, reason: str) -> None:
    result = run_tool_call(call)
    assert isinstance(result, Abstain) and reason in result.reason, result


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x" * 1_000_000,
        "{" * 1_000_000,
        '{"calculator": ' + "[" * 100_000,
        "note " * 200_000 + '{"calculator": "bmi", "weight": 70}',
        '{"calculator": 5}',
        '{"calculator": null, "weight": 1}',
        '[{"calculator": "bmi"}]',
        "\x00\ud800{}",
    ],
)
def test_never_raises_on_any_string(text: str) -> None:
    result = run_tool_call(text)
    assert isinstance(result, (Answer, Abstain))
    assert isinstance(parse_tool_call(text), (dict, Abstain))


def test_calculator_argument_fills_in_and_fences_are_fine() -> None:
    text = 'Here it is:\n```json\n{"weight": {"value": 80, "unit": "kg"}, "height": {"value": 1.8, "unit": "m"}}\n```'
    assert isinstance(run_tool_call(text), Abstain)  # no calculator named anywhere
    parsed = json.loads(text.split("```json\n")[1].split("\n```")[0])
    assert run_tool_call(parsed, "bmi").value == "24.691"  # 80 / 1.8²
    fenced = '```json\n{"calculator": "bmi", "weight": 80, "height": {"value": 180, "unit": "cm"}}\n```'
    assert run_tool_call(fenced).value == "24.691"
