"""A rule-based calc baseline with no model: read each input of the calculator's typed schema off the note with
regular expressions and a lexicon, write the tool call a student would write, and run it through the same tool path
(:func:`ehrforge.tasks.calc.tool.run_tool_call`, what ``CalcTask.parse`` runs in tool mode). The calculator computes
the answer; an input the rules cannot find is left out of the call, so the prediction is an :class:`Abstain` that
names the missing parameter ("curb65: missing parameter: bun").

Readers: ``rules_read`` (numbers with units, age, sex, height/weight, blood pressure, dates, negation),
``rules_findings`` (yes/no findings, categorical inputs, GCS components, steroid and opioid doses), ``rules_lexicon``
(the words). Conventions, all MedCalc-Bench's: an unmentioned finding is absent (left out of the call); a
categorical input with an "absent/normal" option takes it when nothing is said; an unreported GCS is 15.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ehrforge.core.types import Abstain, Answer, Prediction
from ehrforge.tasks.calc.calculators import CALCULATORS
from ehrforge.tasks.calc.calculators.dosing import MME_INPUTS
from ehrforge.tasks.calc.features import NUMERIC
from ehrforge.tasks.calc.medcalc_data import MAX_NOTE_CHARS
from ehrforge.tasks.calc.rules_findings import (
    find_choice,
    find_flag,
    find_gcs_component,
    find_opioids,
    find_steroid_dose,
    steroid_in,
)
from ehrforge.tasks.calc.rules_read import (
    DEFAULT,
    KEYWORD,
    Reading,
    find_age,
    find_body,
    find_bp,
    find_date,
    find_numeric,
    find_sex,
)
from ehrforge.tasks.calc.tool import Param, read_call, run_tool_call, tool_schema

_DATE_LABELS = {
    "lmp": re.compile(r"last menstrual period|\bLMP\b", re.I),
    "today": re.compile(r"today'?s date|current date|\btoday is\b|date today", re.I),
}
_CYCLE = re.compile(r"cycle length (?:is |of |was )?(\d{2})|(\d{2})[- ]day (?:menstrual )?cycles?|cycles? (?:every|of) (\d{2}) days", re.I)
_FIO2_FRACTION = re.compile(r"\bFiO2\b[^\d;\n]{0,20}?(0?\.\d+|1\.0\b)", re.I)
_ROOM_AIR = re.compile(r"\broom air\b", re.I)
_DRINKS = re.compile(
    r"(\d+)\s*(?:alcoholic\s+)?(?:drinks?|beers?|glasses of wine|units? of alcohol)\s*(?:per|a|/|each)\s*week", re.I
)
_NO_ALCOHOL = re.compile(r"(?:denies|no|not drink|never drinks?|abstinen\w*|abstains? from)[^.;]{0,30}\balcohol", re.I)


def _labelled_date(text: str, feature: str) -> Reading | None:
    for m in _DATE_LABELS[feature].finditer(text):
        found = find_date(text[m.end() : m.end() + 60])
        if found:
            return Reading(found, how=KEYWORD)
    return None


def _numeric_special(text: str, feature: str) -> Reading | None:
    """Numeric inputs with phrasings of their own: cycle length, drinks per week, FiO2 as a fraction or "room air",
    an unreported GCS."""
    if feature == "cycle_length":
        m = _CYCLE.search(text)
        return Reading(int(next(g for g in m.groups() if g))) if m else None
    if feature == "alcohol_drinks_per_week":
        m = _DRINKS.search(text)
        if m:
            return Reading(int(m.group(1)))
        return Reading(0, how=KEYWORD) if _NO_ALCOHOL.search(text) else None
    reading = find_numeric(text, feature)
    if reading is not None or feature not in ("fio2", "gcs"):
        return reading
    if feature == "fio2":
        m = _FIO2_FRACTION.search(text)
        if m:
            return Reading(round(float(m.group(1)) * 100, 1), "%")
        return Reading(21, "%", KEYWORD) if _ROOM_AIR.search(text) else None
    return Reading(15, how=DEFAULT)  # MedCalc-Bench's explanations: "GCS is not reported so we take it to be 15"


def read_param(p: Param, note: str, question: str = "") -> Reading | None:
    """One schema parameter read off the note (the steroid target off the question), or None when not found.

    >>> from ehrforge.tasks.calc.tool import tool_schema
    >>> age, sex = tool_schema("ckd_epi_2021")[:2]
    >>> read_param(age, "A 81-year-old male").value, read_param(sex, "A 81-year-old male").value
    (81, 'male')
    """
    feature = p.feature
    if feature == "age":
        return find_age(note)
    if feature == "sex":
        return find_sex(note)
    if feature in ("sbp", "dbp"):
        return find_bp(note, feature)
    if feature in ("weight_kg", "height_cm"):
        return find_body(note, feature)
    if feature in _DATE_LABELS:
        return _labelled_date(note, feature)
    if feature in ("gcs_eye", "gcs_verbal", "gcs_motor"):
        return find_gcs_component(note, feature)
    if feature == "input_steroid":
        found = steroid_in(note)
        return None if found is None else Reading(found, how=KEYWORD)
    if feature == "target_steroid":  # the question names the input steroid, then the target after its last "of"
        found = steroid_in(question.rpartition(" of ")[2])
        return None if found is None else Reading(found, how=KEYWORD)
    if feature == "steroid_dose":
        return find_steroid_dose(note)
    if feature in NUMERIC or feature == "cycle_length":
        return _numeric_special(note, feature)
    if p.kind == "bool":
        return find_flag(note, feature)
    if p.kind == "categorical":
        return find_choice(note, feature)
    return None


def read_note(record: dict[str, Any]) -> dict[str, Reading]:
    """Every parameter of the record's calculator the rules can read, by tool parameter name."""
    calc = CALCULATORS[str(record["calculator"])]
    note = str(record.get("note") or "")[:MAX_NOTE_CHARS]
    question = str(record.get("question") or "")[:2000]
    if calc.key == "mme":  # opioids are read together: each dose has its own frequency
        return find_opioids(note)
    readings = {}
    for p in tool_schema(calc.key):
        if p.feature in MME_INPUTS:
            continue
        reading = read_param(p, note, question)
        if reading is not None:
            readings[p.name] = reading
    return readings


def rule_call(record: dict[str, Any]) -> str:
    """The tool call the rules write for a record, as the JSON text a student would generate.

    >>> rule_call({"calculator": "bmi", "note": "Weight 70 kg, height 175 cm."})
    '{"calculator": "bmi", "weight": {"value": 70.0, "unit": "kg"}, "height": {"value": 175.0, "unit": "cm"}}'
    """
    call: dict[str, Any] = {"calculator": str(record["calculator"])}
    call.update({name: reading.call_value() for name, reading in read_note(record).items()})
    return json.dumps(call, ensure_ascii=False)


def predict(record: dict[str, Any]) -> Prediction:
    """The rules' prediction for one record: the calculator's answer from the extracted inputs, or an abstention
    that names what is missing. Never raises (the tool call path does not).

    >>> predict({"calculator": "curb65", "note": "A 70-year-old man, BP 120/80 mmHg, RR 31/min, alert."})
    Abstain(reason='curb65: missing parameter: bun', confidence=0.0)
    >>> predict({"calculator": "bmi", "note": "Weight 154 lb, height 68 in."}).value
    '23.415'
    """
    if str(record.get("calculator")) not in CALCULATORS:
        return Abstain("rules: unknown calculator")
    if not str(record.get("note") or "").strip():
        return Abstain("rules: no patient note")
    return run_tool_call(rule_call(record), str(record["calculator"]))


def extracted_inputs(record: dict[str, Any]) -> dict[str, Any]:
    """The canonical inputs the rules' call gives, as the tool reads them (unit conversion included; optional inputs
    not found at their defaults; required ones not found absent). For parameter-level scoring."""
    calc = CALCULATORS[str(record["calculator"])]
    values, _problems = read_call(json.loads(rule_call(record)), calc)
    return values
