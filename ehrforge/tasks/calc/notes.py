"""Render a sampled patient as a realistic, varied clinical note, and build a complete synthetic calc item.

Three note styles (narrative case report, H&P with headings, terse triage line), varied units and analyte names,
and distractor facts (unrelated labs, vitals and history) so that a model must pick the right inputs. Distractors
are chosen so they can never change the answer (they are never one of the calculator's inputs, and the history
distractors are conditions no implemented calculator reads).
"""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from ehrforge.tasks.calc.calculators import Calculator, format_answer
from ehrforge.tasks.calc.features import CHOICES, FLAGS, NUMERIC, Patient, sample_patient

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
    "mild asthma",
    "migraine",
)
SAFE_MEDS = ("levothyroxine", "omeprazole", "vitamin D", "acetaminophen as needed", "sertraline", "allopurinol")
NO_DISTRACT = {"target_bmi", "alcohol_drinks_per_week"}


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
    if "high_risk_surgery" in shown and sex == "male":
        context = [c.replace("She is", "He is") for c in context]

    neuro = [n for n in ("gcs_eye", "gcs_verbal", "gcs_motor") if n in shown]
    neuro_text = ""
    if neuro:
        parts = [rng.choice(CHOICES[n].options[str(v[n])]) for n in neuro]
        neuro_text = f"On neurological assessment the patient {', '.join(parts[:-1]) + ' and ' + parts[-1] if len(parts) > 1 else parts[0]}."

    def numeric(section: str) -> list[str]:
        out = []
        names = [n for n in shown if n in NUMERIC and NUMERIC[n].section == section]
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def make_item(calc: Calculator, rng: random.Random, item_id: str) -> dict[str, Any]:
    """One synthetic record: note, question, gold answer (from the calculator function) and worked reasoning."""
    pool = [n for n in NUMERIC if n not in calc.inputs and n not in NO_DISTRACT]
    distractors = tuple(rng.sample(pool, k=rng.randint(2, 4)))
    patient = sample_patient(
        rng, calc.inputs, age_range=calc.age_range, sex=calc.sex, ranges=calc.ranges, extra=distractors
    )
    value, lines = calc.compute(patient.values)
    answer = format_answer(value, calc.answer_format)
    lower = upper = answer
    if calc.answer_format == "decimal":
        a, b = float(answer) * 0.95, float(answer) * 1.05
        lower, upper = f"{min(a, b):.6g}", f"{max(a, b):.6g}"
    extracted = []
    for n in calc.inputs:
        if n in patient.shown:
            canonical = patient.values[n]
            unit = NUMERIC[n].canonical_unit
            shown = patient.shown[n]
            conv = "" if shown.endswith(unit) and unit else f" = {float(canonical):.4g} {unit}".rstrip()
            extracted.append(f"- {n.replace('_', ' ')}: {shown}{conv}")
        elif n in ("lmp", "today"):
            extracted.append(
                f"- {'last menstrual period' if n == 'lmp' else 'current date'}: {patient.values[n]:%m/%d/%Y}"
            )
        else:
            value = patient.values[n]
            shown = ("present" if value else "absent") if isinstance(value, bool) else _jsonable(value)
            extracted.append(f"- {n.replace('_', ' ')}: {shown}")
    return {
        "id": item_id,
        "calculator": calc.key,
        "calculator_id": calc.id,
        "calculator_name": calc.name,
        "category": calc.category,
        "output_type": calc.output_type,
        "answer_format": calc.answer_format,
        "note": render_note(calc, patient, rng, distractors),
        "question": calc.question,
        "ground_truth": answer,
        "lower_limit": lower,
        "upper_limit": upper,
        "reasoning": "Relevant values from the note:\n" + "\n".join(extracted) + "\n" + "\n".join(lines),
        "inputs": {n: _jsonable(patient.values[n]) for n in calc.inputs},
        "shown": {n: patient.shown[n] for n in calc.inputs if n in patient.shown},
        "source": "synthetic",
    }
