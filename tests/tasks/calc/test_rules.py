"""The rule-based calc baseline: values read off short real-looking snippets, negation, units converted by the tool,
abstentions that name the missing parameter, and no crash on hostile input."""

from __future__ import annotations

import doctest

import pytest

import ehrforge.tasks.calc.rules
import ehrforge.tasks.calc.rules_findings
import ehrforge.tasks.calc.rules_read
from ehrforge.core.types import Abstain, Answer
from ehrforge.tasks.calc.rules import extracted_inputs, predict, rule_call
from ehrforge.tasks.calc.rules_findings import find_choice, find_flag, find_opioids
from ehrforge.tasks.calc.rules_read import Reading, find_age, find_bp, find_numeric, find_sex


@pytest.mark.parametrize("module", [ehrforge.tasks.calc.rules, ehrforge.tasks.calc.rules_read, ehrforge.tasks.calc.rules_findings])
def test_doctests(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    ("text", "feature", "value", "unit"),
    [
        ("Laboratory studies: creatinine 0.5 mg/dL, albumin 3.7 g/dL, bilirubin 28.1 umol/L, INR 2.0.", "bilirubin", 28.1, "µmol/L"),
        ("Laboratory studies: creatinine 0.5 mg/dL, albumin 3.7 g/dL, bilirubin 28.1 umol/L, INR 2.0.", "inr", 2.0, ""),
        ("platelet of 437,000/µL and C-reactive protein of 120 mg/dL", "platelets", 437000.0, "/µL"),
        ("Platelets 181 x10^3/uL", "platelets", 181.0, "×10^9/L"),
        ("vital signs: body temperature, 39.4 °C; heart rate, 101 beats per minutes", "temp_c", 39.4, "°C"),
        ("vital signs: body temperature, 39.4 °C; heart rate, 101 beats per minutes", "heart_rate", 101.0, "beats/min"),
        ("Temp 101.3 F, RR 22", "temp_c", 101.3, "°F"),
        ("Na 128, K 5.9 mEq/L", "potassium", 5.9, "mEq/L"),
        ("serum creatinine 1.7 mg/dL and urine creatinine 128 mg/dL", "urine_creatinine", 128.0, "mg/dL"),
        ("SpO2 was 91% on room air", "spo2", 91.0, "%"),
        ("fasting insulin 126 pmol/L", "insulin", 21.0, "µIU/mL"),  # 6 pmol/L per µIU/mL
    ],
)
def test_numbers_with_units(text: str, feature: str, value: float, unit: str) -> None:
    got = find_numeric(text, feature)
    assert got is not None and got.value == pytest.approx(value) and got.unit == unit


def test_bare_numbers_get_a_unit_by_magnitude_and_implausible_ones_are_skipped() -> None:
    assert find_numeric("creatinine 442 on admission", "creatinine") == Reading(442.0, "µmol/L", "unit by magnitude")
    assert find_numeric("glucose 7.3", "glucose").unit == "mmol/L"
    # "sodium" whose number is a day count, then a real value later
    assert find_numeric("sodium restriction for 3 days; sodium 131 mmol/L", "sodium").value == 131.0
    assert find_numeric("the creatinine clearance was 40 mL/min", "creatinine") is None
    assert find_numeric("urine sodium 20 mmol/L", "sodium") is None


def test_age_sex_blood_pressure() -> None:
    assert find_age("A 72-year-old woman").value == 72 and find_sex("A 72-year-old woman").value == "female"
    assert find_age("17 y/o").value == 17
    assert find_sex("The patient said his knee hurt; he denied falls.").value == "male"
    assert find_sex("The patient was admitted.") is None
    assert (find_bp("BP 144/65 mm Hg", "sbp").value, find_bp("BP 144/65 mm Hg", "dbp").value) == (144, 65)
    assert find_bp("systolic blood pressure of 75 mmHg", "sbp").value == 75


@pytest.mark.parametrize(
    ("text", "flag", "expected"),
    [
        ("She denies nausea, vomiting or hematemesis.", "prior_bleeding", False),
        ("History of hypertension and type 2 diabetes.", "hypertension", True),
        ("No history of congestive heart failure.", "chf", False),
        ("negative for deep vein thrombosis", "prior_dvt", False),
        ("without hemoptysis", "hemoptysis", False),
        ("He had no fever but reports cough.", "fever_24h", False),
        ("Doppler for DVT was negative.", "prior_dvt", False),
        ("Her mother had a stroke.", "stroke_tia", None),  # a relative's history is not the patient's
        ("pulmonary hypertension on echo", "hypertension", None),
        ("He denies any cough.", "cough_absent", True),
        ("productive cough for a week", "cough_absent", False),
        ("temperature 38.6 °C", "fever_24h", True),
        ("Nothing relevant.", "syncope", None),
    ],
)
def test_findings_and_negation(text: str, flag: str, expected: bool | None) -> None:
    found = find_flag(text, flag)
    assert (None if found is None else found.value) == expected


def test_choices_default_to_absent_only_where_that_option_exists() -> None:
    assert find_choice("moderate ascites on ultrasound", "ascites").value == "moderate"
    assert find_choice("no ascites", "ascites").value == "absent"
    assert find_choice("", "encephalopathy") == Reading("none", "", "default")
    assert find_choice("", "heart_history") is None  # no "absent" option: the call stays incomplete


def test_units_are_converted_by_the_tool_not_by_the_rules() -> None:
    record = {"calculator": "ckd_epi_2021", "note": "A 60-year-old man. Creatinine 120 µmol/L."}
    assert '"unit": "µmol/L"' in rule_call(record)
    inputs = extracted_inputs(record)
    assert inputs["creatinine"] == pytest.approx(120 / 88.4) and inputs["age"] == 60 and inputs["sex"] == "male"
    temp = extracted_inputs({"calculator": "sirs", "note": "Temp 101.3 F, HR 95 bpm, RR 25/min, WBC 13.5 x10^9/L"})
    assert temp["temp_c"] == pytest.approx((101.3 - 32) * 5 / 9) and temp["wbc"] == pytest.approx(13.5)


def test_predictions_answer_through_the_calculator_or_name_the_missing_parameter() -> None:
    note = "A 72-year-old man, confused. BUN 39 mg/dL. BP 144/65 mmHg, respiratory rate 30 breaths/min."
    pred = predict({"calculator": "curb65", "note": note})
    assert isinstance(pred, Answer) and pred.value == "4" and pred.evidence["calculator"] == "curb65"
    missing = predict({"calculator": "curb65", "note": "A 72-year-old man, BP 144/65 mmHg."})
    assert isinstance(missing, Abstain) and missing.reason == "curb65: missing parameters: bun, resp_rate"
    assert predict({"calculator": "bmi", "note": "  "}) == Abstain("rules: no patient note")
    assert predict({"calculator": "nope", "note": "x"}) == Abstain("rules: unknown calculator")


def test_doses() -> None:
    opioids = find_opioids("The patient takes 10 mg of OxyMORphone 2 times a day and 25 µg of FentaNYL buccal daily.")
    assert opioids["oxymorphone_doses_per_day"].value == 2 and opioids["fentanyl_buccal_dose"] == Reading(25.0, "µg")
    pred = predict({"calculator": "steroid_conversion", "note": "Patient has taken 40 mg of PredniSONE PO.",
                    "question": "Based on the patient's dose of PredniSONE PO, what is the equivalent dosage in mg of Dexamethasone IV?"})
    assert isinstance(pred, Answer) and float(pred.value) == pytest.approx(6.0)


@pytest.mark.parametrize("note", ["x" * 1_000_000, "{" * 50_000, "creatinine " * 20_000, "\ud800 BUN 12", "1/1/1 " * 5000])
def test_hostile_notes_never_raise(note: str) -> None:
    pred = predict({"calculator": "apache_ii", "note": note})
    assert isinstance(pred, (Answer, Abstain))
