"""The second verifiable task: patient–trial eligibility matching on synthetic criteria.

A synthetic trial has inclusion criteria (age range, sex, a required diagnosis, lab windows) and exclusion criteria
(conditions, a medication). A synthetic patient summary either meets all of them or fails a known subset.
:func:`check_eligibility` is the rule-based ground truth; the model must answer ``<answer>eligible</answer>`` or
``<answer>not eligible</answer>``; :class:`~ehrforge.tasks.calc.verifiers.EligibilityVerifier` rewards agreement.
:class:`EligibilityTask` shows how such a task plugs into the same SFT/GRPO pipeline (it is not in the CLI
registry; register it there to expose it).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from ehrforge.core.types import Abstain, Answer, Generation, Message, Prediction
from ehrforge.core.contract import Record, RewardFn, Task
from ehrforge.tasks.calc.score import extract_tag
from ehrforge.tasks.calc.verifiers import parse_verdict

CONDITIONS = (
    "type 2 diabetes",
    "hypertension",
    "heart failure",
    "chronic kidney disease",
    "COPD",
    "rheumatoid arthritis",
    "atrial fibrillation",
)
EXCLUSIONS = ("active cancer", "pregnancy", "liver cirrhosis", "recent myocardial infarction", "HIV infection")
MEDICATIONS = ("warfarin", "insulin", "prednisone", "metformin", "methotrexate")
LABS = {
    "hba1c": ("HbA1c", "%", 5.0, 12.0),
    "egfr": ("eGFR", "mL/min/1.73 m²", 15.0, 110.0),
    "ldl": ("LDL", "mg/dL", 60.0, 220.0),
}


@dataclass
class Trial:
    min_age: int
    max_age: int
    sex: str | None  # None: any
    required_condition: str
    lab: str
    lab_min: float
    lab_max: float
    excluded_conditions: list[str]
    excluded_medication: str

    def criteria_text(self) -> str:
        name, unit, _, _ = LABS[self.lab]
        inc = [
            f"Age {self.min_age}–{self.max_age} years",
            f"Diagnosis of {self.required_condition}",
            f"{name} between {self.lab_min:g} and {self.lab_max:g} {unit}",
        ]
        if self.sex:
            inc.insert(1, f"{self.sex.capitalize()} participants only")
        exc = [*self.excluded_conditions, f"current use of {self.excluded_medication}"]
        return (
            "Inclusion criteria:\n"
            + "\n".join(f"- {c}" for c in inc)
            + "\nExclusion criteria:\n"
            + "\n".join(f"- {c}" for c in exc)
        )


@dataclass
class TrialPatient:
    age: int
    sex: str
    conditions: list[str]
    medications: list[str]
    labs: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        labs = ", ".join(f"{LABS[k][0]} {v:g} {LABS[k][1]}" for k, v in self.labs.items())
        return (
            f"{self.age}-year-old {self.sex}. Conditions: {', '.join(self.conditions) or 'none'}. "
            f"Medications: {', '.join(self.medications) or 'none'}. Labs: {labs}."
        )


def check_eligibility(patient: TrialPatient, trial: Trial) -> tuple[bool, list[str]]:
    """Rule-based verdict and the list of failed criteria (empty when eligible).

    >>> t = Trial(40, 75, None, "type 2 diabetes", "hba1c", 7.0, 10.0, ["active cancer"], "insulin")
    >>> check_eligibility(TrialPatient(55, "female", ["type 2 diabetes"], ["metformin"], {"hba1c": 8.1}), t)
    (True, [])
    >>> check_eligibility(TrialPatient(80, "male", ["type 2 diabetes", "active cancer"], ["insulin"], {"hba1c": 6.2}), t)[1]
    ['age', 'hba1c', 'excluded condition: active cancer', 'excluded medication: insulin']
    """
    failed = []
    if not trial.min_age <= patient.age <= trial.max_age:
        failed.append("age")
    if trial.sex and patient.sex != trial.sex:
        failed.append("sex")
    if trial.required_condition not in patient.conditions:
        failed.append("required condition")
    value = patient.labs.get(trial.lab)
    if value is None or not trial.lab_min <= value <= trial.lab_max:
        failed.append(trial.lab)
    failed += [f"excluded condition: {c}" for c in trial.excluded_conditions if c in patient.conditions]
    if trial.excluded_medication in patient.medications:
        failed.append(f"excluded medication: {trial.excluded_medication}")
    return not failed, failed


def sample_trial(rng: random.Random) -> Trial:
    lab = rng.choice(list(LABS))
    _, _, lo, hi = LABS[lab]
    a = round(rng.uniform(lo, lo + (hi - lo) * 0.5), 1)
    b = round(rng.uniform(a + (hi - lo) * 0.15, hi), 1)
    min_age = rng.choice([18, 30, 40, 50])
    return Trial(
        min_age=min_age,
        max_age=rng.choice([65, 75, 80, 85]),
        sex=rng.choice([None, None, "female", "male"]),
        required_condition=rng.choice(CONDITIONS),
        lab=lab,
        lab_min=a,
        lab_max=b,
        excluded_conditions=rng.sample(EXCLUSIONS, k=2),
        excluded_medication=rng.choice(MEDICATIONS),
    )


def sample_patient_for(trial: Trial, rng: random.Random, eligible: bool) -> TrialPatient:
    """A patient who meets every criterion, then (when ``eligible`` is False) breaks one to three of them."""
    _, _, lo, hi = LABS[trial.lab]
    p = TrialPatient(
        age=rng.randint(trial.min_age, trial.max_age),
        sex=trial.sex or rng.choice(["female", "male"]),
        conditions=[trial.required_condition]
        + rng.sample([c for c in CONDITIONS if c != trial.required_condition], k=rng.randint(0, 2)),
        medications=rng.sample([m for m in MEDICATIONS if m != trial.excluded_medication], k=rng.randint(0, 2)),
        labs={trial.lab: round(rng.uniform(trial.lab_min, trial.lab_max), 1)},
    )
    for other in LABS:  # distractor labs with no criterion attached
        if other != trial.lab and rng.random() < 0.6:
            p.labs[other] = round(rng.uniform(LABS[other][2], LABS[other][3]), 1)
    if not eligible:
        breaks = rng.sample(["age", "sex", "condition", "lab", "exclusion", "medication"], k=rng.randint(1, 3))
        if "sex" in breaks and not trial.sex:
            breaks = [b for b in breaks if b != "sex"] or ["lab"]
        for b in breaks:
            if b == "age":
                p.age = rng.choice([max(trial.min_age - rng.randint(1, 15), 16), trial.max_age + rng.randint(1, 10)])
            elif b == "sex":
                p.sex = "male" if trial.sex == "female" else "female"
            elif b == "condition":
                p.conditions.remove(trial.required_condition)
            elif b == "lab":
                below = round(rng.uniform(lo, trial.lab_min - 0.1), 1) if trial.lab_min - 0.1 > lo else None
                p.labs[trial.lab] = (
                    below
                    if below is not None and rng.random() < 0.5
                    else round(rng.uniform(trial.lab_max + 0.1, hi + 5), 1)
                )
            elif b == "exclusion":
                p.conditions.append(rng.choice(trial.excluded_conditions))
            elif b == "medication":
                p.medications.append(trial.excluded_medication)
    return p


def make_eligibility_items(n: int, seed: int = 0) -> list[Record]:
    """``n`` balanced synthetic (trial, patient) items; the label comes from :func:`check_eligibility`."""
    items = []
    for i in range(n):
        rng = random.Random(f"eligibility-{seed}-{i}")
        trial = sample_trial(rng)
        patient = sample_patient_for(trial, rng, eligible=i % 2 == 0)
        ok, failed = check_eligibility(patient, trial)
        items.append(
            {
                "id": f"elig-{seed}-{i}",
                "criteria": trial.criteria_text(),
                "patient": patient.summary(),
                "eligible": ok,
                "failed": failed,
                "trial": asdict(trial),
                "patient_data": asdict(patient),
            }
        )
    return items


class EligibilityTask(Task):
    """Patient–trial eligibility as a verifiable task (same SFT/GRPO pipeline as ``calc``)."""

    name = "eligibility"
    summary = "patient–trial eligibility matching on synthetic criteria (verifiable)"
    metric = "accuracy"
    default_max_new_tokens = 128
    ask_fields: ClassVar[dict[str, str]] = {
        "criteria": "the trial's criteria, one per line (CLI --context criteria=@trial.txt; HTTP context.criteria)",
        "patient": "the patient summary (CLI --context patient=@patient.txt; HTTP context.patient)",
    }

    def ask_record(self, question: str, **context: Any) -> Record:
        return {"id": "ask", "question": question, "criteria": context["criteria"], "patient": context["patient"]}

    def load(self, split: str, *, limit: int | None = None, seed: int = 0, source: str | None = None) -> list[Record]:
        offset = {"train": 0, "valid": 1, "test": 2}.get(split, 3)
        return make_eligibility_items(limit or 200, seed=seed * 10 + offset)

    def prompt(self, record: Record) -> list[Message]:
        return [
            {
                "role": "system",
                "content": "Check each trial criterion against the patient, then answer <answer>eligible</answer> or <answer>not eligible</answer>.",
            },
            {"role": "user", "content": f"Trial:\n{record['criteria']}\n\nPatient: {record['patient']}"},
        ]

    def target(self, record: Record) -> str:
        why = "All criteria are met." if record["eligible"] else "Fails: " + "; ".join(record["failed"]) + "."
        return f"{why}\n<answer>{'eligible' if record['eligible'] else 'not eligible'}</answer>"

    def parse(self, generation: Generation, record: Record) -> Prediction:
        tag = extract_tag(generation.text)
        verdict = parse_verdict(tag) if tag is not None else None
        if verdict is None:
            return Abstain("no eligible/not eligible verdict in <answer>")
        return Answer(verdict)

    def score(self, records: Sequence[Record], predictions: Sequence[Prediction]) -> dict[str, float]:
        hits = [isinstance(p, Answer) and p.value == bool(r["eligible"]) for r, p in zip(records, predictions)]
        return {"accuracy": sum(hits) / len(hits) if hits else 0.0, "n": float(len(hits))}

    def rewards(self) -> list[RewardFn]:
        from ehrforge.tasks.calc.verifiers import get_verifier, verifier_reward

        return [verifier_reward(get_verifier("eligibility"))]

    def grpo_example(self, record: Record) -> dict[str, Any]:
        # Only flat columns: nested dicts (trial, patient_data) would make the Arrow schema brittle across rows.
        return {"prompt": self.prompt(record), "eligible": bool(record["eligible"])}
