"""Render a sampled patient as a realistic, varied clinical note, and build a complete synthetic calc item.

Three note styles (narrative case report, H&P with headings, terse triage line), varied units and analyte names,
and distractor facts (unrelated labs, vitals and history) so that a model must pick the right inputs. Distractors
are chosen so they can never change the answer (they are never one of the calculator's inputs, and the history
distractors are conditions no implemented calculator reads).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ehrforge.tasks.calc.calculators import Calculator, format_answer
from ehrforge.tasks.calc.features import CHOICES, FLAGS, INT_CHOICES, NUMERIC

STYLES = ("narrative", "hp", "triage")
GENERIC_COMPLAINTS = (
    "fatigue",
    "shortness of breath",
    "abdominal pain",
    "dizziness",
    "a routine follow-up visit",
    "chest discomfort",
)
SAFE_HISTORY = (
    "hypothyroidism",
    "osteoarthritis of both knees",
    "gout",
    "gastro-esophageal reflux",
    "depression",
    "seasonal allergic rhinitis",
    "migraine",
)
SAFE_MEDS = ("levothyroxine", "loratadine", "vitamin D", "acetaminophen as needed", "sertraline", "allopurinol")
# never distractors: goals and habits read as inputs; a GCS total would contradict GCS components; infusions imply
# a different cardiovascular picture
NO_DISTRACT = {
    "target_bmi",
    "alcohol_drinks_per_week",
    "gcs",
    "dopamine",
    "dobutamine",
    "epinephrine",
    "norepinephrine",
}


# --- sampling a patient ------------------------------------------------------------------------------------------
# A displayed value is rounded in its display unit and the canonical value is recomputed *from the displayed number*,
# so the gold answer always follows from exactly what the note says.


@dataclass
class Patient:
    """Canonical values (what calculators read) and display strings (what the note says)."""

    values: dict[str, object] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)  # numeric name -> "106 µmol/L"
    names: dict[str, str] = field(default_factory=dict)  # numeric name -> analyte label used in the note


def sample_patient(
    rng: random.Random,
    inputs: tuple[str, ...],
    *,
    age_range: tuple[int, int] = (18, 90),
    sex: str | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
    extra: tuple[str, ...] = (),
) -> Patient:
    """Sample every feature in ``inputs + extra`` (plus age and sex) and choose how each is displayed."""
    ranges = ranges or {}
    p = Patient()
    p.values["age"] = rng.randint(*age_range)
    p.values["sex"] = sex or rng.choice(["male", "female"])
    wanted = list(dict.fromkeys(("age", "sex") + tuple(inputs) + tuple(extra)))
    raw: dict[str, float] = {}
    for name in wanted:
        if name in NUMERIC:
            lo, hi = ranges.get(name, (NUMERIC[name].lo, NUMERIC[name].hi))
            raw[name] = rng.uniform(lo, hi)
        elif name in FLAGS:
            p.values[name] = rng.random() < FLAGS[name].p
        elif name in CHOICES:
            options = list(CHOICES[name].options)
            value = rng.choice(options)
            p.values[name] = int(value) if name in INT_CHOICES else value
    _make_plausible(rng, raw, p.values, ranges)
    if "lmp" in wanted or "today" in wanted or "cycle_length" in wanted:
        lmp = date(2018, 1, 1) + timedelta(days=rng.randint(0, 365 * 7))
        p.values["lmp"] = lmp
        p.values["cycle_length"] = rng.choice([28, 28, 28, 21, 24, 26, 30, 32, 35])
        p.values["today"] = lmp + timedelta(days=rng.randint(30, 290))
    for name, value in raw.items():
        feature = NUMERIC[name]
        if feature.p_zero and rng.random() < feature.p_zero:
            p.values[name] = 0.0  # not on this infusion: the note does not mention it
            continue
        unit = rng.choice(feature.units)
        shown, canonical = unit.show(value)
        p.values[name] = canonical
        p.shown[name] = f"{shown} {unit.label}".strip()
        p.names[name] = unit.name or rng.choice(feature.labels)
    return p


def _make_plausible(rng: random.Random, raw: dict[str, float], values: dict[str, object], ranges: dict) -> None:
    """Couple features that are not independent in real patients (weight follows height and BMI, DBP < SBP, ...)."""
    if "height_cm" in raw:
        female = str(values["sex"]).startswith("f")
        raw["height_cm"] = rng.uniform(150, 178) if female else rng.uniform(160, 195)
        if "weight_kg" in raw and "weight_kg" not in ranges:
            raw["weight_kg"] = rng.uniform(16, 42) * (raw["height_cm"] / 100) ** 2
    if "sbp" in raw and "dbp" in raw:
        raw["dbp"] = min(raw["dbp"], raw["sbp"] - 20)
    if {"sodium", "chloride", "bicarbonate"} <= raw.keys():
        # The anion gap, not chloride, is what varies clinically: pick a realistic gap (4-30), then keep chloride
        # and bicarbonate physiological; a requested bicarbonate range (acidosis items) wins over chloride.
        gap = rng.uniform(4, 30)
        if "bicarbonate" in ranges:
            raw["chloride"] = min(max(raw["sodium"] - raw["bicarbonate"] - gap, 85.0), 125.0)
        else:
            raw["bicarbonate"] = min(max(raw["sodium"] - raw["chloride"] - gap, 5.0), 34.0)
    if "hdl" in raw and "total_cholesterol" in raw:
        raw["hdl"] = min(raw["hdl"], raw["total_cholesterol"] * 0.45)
    if "alcohol_drinks_per_week" in raw and rng.random() < 0.4:
        raw["alcohol_drinks_per_week"] = 0


# --- rendering -------------------------------------------------------------------------------------------------------


def _person(age: int, sex: str) -> str:
    if age < 18:
        return "boy" if sex == "male" else "girl"
    return "man" if sex == "male" else "woman"


def _fmt_date(d: date, rng: random.Random) -> str:
    return d.strftime("%m/%d/%Y") if rng.random() < 0.7 else f"{d:%B} {d.day}, {d.year}"


def render_note(calc: Calculator, p: Patient, rng: random.Random, distractors: tuple[str, ...] = ()) -> str:
    """The note text for patient ``p``; mentions every input of ``calc`` and the given distractor features."""
    v = p.values
    age, sex = int(v["age"]), str(v["sex"])
    he = "He" if sex == "male" else "She"
    shown = [n for n in list(calc.inputs) + list(distractors) if n not in ("age", "sex")]
    complaint = rng.choice(calc.complaints or GENERIC_COMPLAINTS)

    history = [rng.choice(FLAGS[n].positive) for n in shown if n in FLAGS and FLAGS[n].section == "history" and v[n]]
    negatives = [
        rng.choice(FLAGS[n].negative)
        for n in shown
        if n in FLAGS and FLAGS[n].section == "history" and not v[n] and (FLAGS[n].always or rng.random() < 0.5)
    ]
    for n in shown:  # graded history (Charlson): the baseline option reads as a negative, the others as history
        if n in CHOICES and CHOICES[n].section == "history":
            phrase = rng.choice(CHOICES[n].options[str(v[n])])
            (negatives if str(v[n]) == next(iter(CHOICES[n].options)) else history).append(phrase)
    history += rng.sample(SAFE_HISTORY, k=rng.randint(0, 2))
    rng.shuffle(history)
    meds = [rng.choice(FLAGS[n].positive) for n in shown if n in FLAGS and FLAGS[n].section == "medication" and v[n]]
    meds += rng.sample(SAFE_MEDS, k=rng.randint(0, 2))
    symptoms = [
        rng.choice(FLAGS[n].positive if v[n] else FLAGS[n].negative)
        for n in shown
        if n in FLAGS and FLAGS[n].section == "symptom" and (v[n] or FLAGS[n].always or rng.random() < 0.5)
    ]
    exam = [
        rng.choice(FLAGS[n].positive if v[n] else FLAGS[n].negative)
        for n in shown
        if n in FLAGS and FLAGS[n].section == "exam" and (v[n] or FLAGS[n].always or rng.random() < 0.6)
    ]
    exam += [rng.choice(CHOICES[n].options[str(v[n])]) for n in shown if n in CHOICES and CHOICES[n].section == "exam"]
    context = [
        rng.choice(FLAGS[n].positive if v[n] else FLAGS[n].negative)
        for n in shown
        if n in FLAGS and FLAGS[n].section == "context"
    ]
    context += [
        rng.choice(CHOICES[n].options[str(v[n])]) for n in shown if n in CHOICES and CHOICES[n].section == "context"
    ]
    if "high_risk_surgery" in shown and sex == "male":
        context = [c.replace("She is", "He is") for c in context]

    neuro = [n for n in ("gcs_eye", "gcs_verbal", "gcs_motor") if n in shown]
    neuro_text = ""
    if neuro:
        parts = [rng.choice(CHOICES[n].options[str(v[n])]) for n in neuro]
        neuro_text = f"On neurological assessment the patient {', '.join(parts[:-1]) + ' and ' + parts[-1] if len(parts) > 1 else parts[0]}."

    def numeric(section: str) -> list[str]:
        out = []
        names = [n for n in shown if n in NUMERIC and NUMERIC[n].section == section and n in p.shown]
        if section == "vitals" and "sbp" in names and "dbp" in names:
            sys_, dia = p.shown["sbp"].split()[0], p.shown["dbp"].split()[0]
            out.append(f"blood pressure {sys_}/{dia} mm Hg")
            names = [n for n in names if n not in ("sbp", "dbp")]
        out += [f"{p.names[n]} {p.shown[n]}" for n in names]
        return out

    vitals, labs, body, ecg = numeric("vitals"), numeric("labs"), numeric("body"), numeric("ecg")
    rng.shuffle(labs)
    extra_sentences: list[str] = []
    if "alcohol_drinks_per_week" in shown:
        n = int(v["alcohol_drinks_per_week"])
        extra_sentences.append(
            f"{he} drinks about {n} alcoholic drinks per week." if n else f"{he} does not drink alcohol."
        )
    if "target_bmi" in shown:
        extra_sentences.append(f"The agreed goal is to reach a BMI of {p.shown['target_bmi']}.")
    if "lmp" in shown:
        extra_sentences.append(f"Her last menstrual period started on {_fmt_date(v['lmp'], rng)}.")
    if "cycle_length" in shown:
        extra_sentences.append(f"Her menstrual cycles are regular, every {v['cycle_length']} days.")
    if "today" in shown:
        extra_sentences.append(f"Today's date is {v['today']:%m/%d/%Y}.")
    support = [f"{p.names[n]} {p.shown[n]}" for n in numeric_names(shown, "support") if n in p.shown]
    if support:
        extra_sentences.append("Current infusions: " + ", ".join(support) + ".")
    extra_sentences += context

    style = rng.choice(STYLES)
    if style == "hp":
        lines = [f"HPI: {age}-year-old {_person(age, sex)} presenting with {complaint}."]
        lines.append(
            "PMH: "
            + ("; ".join(history) if history else "none significant")
            + (". Notably " + ", ".join(negatives) + "." if negatives else "")
        )
        lines.append("Medications: " + (", ".join(meds) if meds else "none") + ".")
        if symptoms:
            lines.append("ROS: " + "; ".join(symptoms) + ".")
        if vitals or body:
            lines.append("Vitals: " + ", ".join(vitals + body) + ".")
        if exam or neuro_text:
            lines.append("Exam: " + "; ".join(exam) + (". " if exam else "") + neuro_text)
        if labs:
            lines.append("Labs: " + ", ".join(labs) + ".")
        if ecg:
            lines.append("ECG: sinus rhythm, " + ", ".join(ecg) + ".")
        lines += extra_sentences
        return "\n".join(line.strip() for line in lines)
    if style == "triage":
        sx = "M" if sex == "male" else "F"
        bits = [f"{age}{sx}, {complaint}."]
        if history:
            bits.append("Hx " + ", ".join(history) + ".")
        if negatives:
            bits.append(", ".join(negatives).capitalize() + ".")
        if meds:
            bits.append("On " + ", ".join(meds) + ".")
        if symptoms:
            bits.append("Reports: " + "; ".join(symptoms) + ".")
        if vitals or body:
            bits.append("VS/anthro: " + ", ".join(vitals + body) + ".")
        if exam:
            bits.append("O/E " + "; ".join(exam) + ".")
        if neuro_text:
            bits.append(neuro_text)
        if labs or ecg:
            bits.append("Results: " + ", ".join(labs + ecg) + ".")
        return " ".join(bits + extra_sentences)
    setting = rng.choice(["the emergency department", "the outpatient clinic", "our hospital", "the medical ward"])
    text = [f"A {age}-year-old {_person(age, sex)} was seen in {setting} for {complaint}."]
    if history:
        text.append(
            f"{he} has a history of "
            + (", ".join(history[:-1]) + " and " + history[-1] if len(history) > 1 else history[0])
            + "."
        )
    if negatives:
        text.append(f"{he} has " + ", ".join(negatives) + ".")
    if meds:
        text.append(f"{he} takes " + ", ".join(meds) + ".")
    if symptoms:
        text.append("On review of systems: " + "; ".join(symptoms) + ".")
    if vitals:
        text.append("On arrival, " + ", ".join(vitals) + ".")
    if body:
        text.append(", ".join(body).capitalize() + ".")
    if exam:
        text.append("Examination revealed " + "; ".join(exam) + ".")
    if neuro_text:
        text.append(neuro_text)
    if labs:
        text.append("Laboratory studies showed " + ", ".join(labs) + ".")
    if ecg:
        text.append("An ECG showed sinus rhythm with " + ", ".join(ecg) + ".")
    return " ".join(text + extra_sentences)


def numeric_names(names: list[str], section: str) -> list[str]:
    return [n for n in names if n in NUMERIC and NUMERIC[n].section == section]


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def make_item(calc: Calculator, rng: random.Random, item_id: str) -> dict[str, Any]:
    """One synthetic record: note, question, gold answer (from the calculator function) and worked reasoning."""
    if calc.make_case is not None:  # dosing: a medication sentence, not a patient with features
        values, shown_map, note = calc.make_case(rng)
    else:
        pool = [n for n in NUMERIC if n not in calc.inputs and n not in NO_DISTRACT]
        distractors = tuple(rng.sample(pool, k=rng.randint(2, 4)))
        patient = sample_patient(
            rng, calc.inputs, age_range=calc.age_range, sex=calc.sex, ranges=calc.ranges, extra=distractors
        )
        values, shown_map, note = patient.values, patient.shown, ""
    value, lines = calc.compute(values)
    if calc.make_case is None:
        note = render_note(calc, patient, rng, distractors)
    answer = format_answer(value, calc.answer_format)
    lower = upper = answer
    if calc.answer_format == "decimal":
        a, b = float(answer) * 0.95, float(answer) * 1.05
        lower, upper = f"{min(a, b):.6g}", f"{max(a, b):.6g}"
    return {
        "id": item_id,
        "calculator": calc.key,
        "calculator_id": calc.id,
        "calculator_name": calc.name,
        "category": calc.category,
        "output_type": calc.output_type,
        "answer_format": calc.answer_format,
        "note": note,
        "question": calc.ask(values),
        "ground_truth": answer,
        "lower_limit": lower,
        "upper_limit": upper,
        "reasoning": "Relevant values from the note:\n"
        + "\n".join(_extracted(calc, values, shown_map))
        + "\n"
        + "\n".join(lines),
        "inputs": {n: _jsonable(values[n]) for n in calc.inputs},
        "shown": {n: shown_map[n] for n in calc.inputs if n in shown_map},
        "source": "synthetic",
    }


def _extracted(calc: Calculator, values: dict[str, Any], shown_map: dict[str, str]) -> list[str]:
    """The reasoning's first block: each input as the note gives it (with its canonical conversion)."""
    out = []
    for n in calc.inputs:
        if n in shown_map:
            unit = NUMERIC[n].canonical_unit if n in NUMERIC else ""
            shown = shown_map[n]
            conv = (
                ""
                if n not in NUMERIC or (shown.endswith(unit) and unit)
                else f" = {float(values[n]):.4g} {unit}".rstrip()
            )
            out.append(f"- {n.replace('_', ' ')}: {shown}{conv}")
        elif n in ("lmp", "today"):
            out.append(f"- {'last menstrual period' if n == 'lmp' else 'current date'}: {values[n]:%m/%d/%Y}")
        elif (n in NUMERIC and NUMERIC[n].p_zero) or calc.make_case is not None and isinstance(values[n], float):
            continue  # an infusion or opioid the patient is not on: nothing to extract
        else:
            value = values[n]
            shown = ("present" if value else "absent") if isinstance(value, bool) else _jsonable(value)
            out.append(f"- {n.replace('_', ' ')}: {shown}")
    return out
