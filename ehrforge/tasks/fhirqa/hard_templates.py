"""Harder question templates: several resources per answer, dates, negation, and questions the record cannot answer.

* **multi-resource**: "What is being done for <condition>?" needs the condition *and* its medication requests;
  "What happened at the visit on <date>?" needs the encounter and everything recorded in it;
* **dates**: "Which conditions were first recorded after <year>?" (a range, so the reader must compare dates);
* **negation**: "Has the patient ever been prescribed <drug>?" / "... diagnosed with <condition>?" for a drug or
  condition the patient has (gold: every such resource; "Yes: ...") and for one the patient does not have (gold:
  nothing; the answer says the record has none, :data:`NOT_IN_RECORD_FOR`);
* **unanswerable**: blood type, smoking, insurance... nothing in these records says; gold: nothing, answer
  :data:`NOT_IN_RECORD`.

A question with no relevant resource should make a system abstain; its abstention is then scored against these
gold answers (``FHIRQATask.score``). Distractors of negation questions are drawn from the asked-about type (a
"warfarin?" question is shown the patient's other prescriptions), which is where a lexical matcher is fooled.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from ehrforge.tasks.fhirqa.condense import describe, when
from ehrforge.tasks.fhirqa.patients import ACUTE, CHRONIC

#: what a system says when the record has nothing relevant (also the text an abstention is scored with)
NOT_IN_RECORD = "The record has no resource about that."
NOT_IN_RECORD_FOR = "No: the record has no resource about {thing}."
MAX_GOLD = 6

UNANSWERABLE = [
    "What is the patient's blood type?",
    "Does the patient smoke?",
    "Who is the patient's insurance provider?",
    "What is the patient's occupation?",
    "How many children does the patient have?",
    "What is the patient's preferred pharmacy?",
]
DRUGS = sorted({m for _, _, meds in CHRONIC for _, m in meds} | {t[1] for _, _, t in ACUTE if t})
DISEASES = sorted({d for _, d, _ in CHRONIC} | {d for _, d, _ in ACUTE})


def _name(res: dict[str, Any]) -> str:
    return describe(res).split("; ")[0].split(" = ")[0]


def _q(category: str, template: str, question: str, gold: list[dict[str, Any]], answer: str,
       distractor_types: tuple[str, ...] = (), **slots: str) -> dict[str, Any]:
    return {"category": category, "template": template, "question": question, "gold": [r["id"] for r in gold],
            "answer": answer, "slots": slots, "distractor_types": distractor_types}


def _of(res: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return sorted((r for r in res if r["resourceType"] == rtype), key=when)


def _rng(res: list[dict[str, Any]], salt: str) -> random.Random:
    return random.Random(f"{res[0]['id'] if res else ''}|{salt}")


def negation_questions(res: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rtype, verb, vocabulary in (("MedicationRequest", "prescribed", DRUGS), ("Condition", "diagnosed with", DISEASES)):
        items = _of(res, rtype)
        by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in items:
            by_name[_name(r)].append(r)
        rng = _rng(res, rtype)
        present = [n for n, v in by_name.items() if len(v) <= MAX_GOLD]
        for name in rng.sample(present, min(2, len(present))):
            dates = ", ".join(dict.fromkeys(when(r) for r in by_name[name]))
            out.append(_q("negation", f"ever_{rtype.lower()}", f"Has the patient ever been {verb} {name}?", by_name[name],
                          f"Yes: {name} on {dates}.", (rtype,), thing=name))
        # "never" only when the name occurs nowhere in the record (not even as another resource's reason)
        text = " ".join(describe(r) for r in res)
        absent = [n for n in vocabulary if n not in by_name and n not in text]
        for name in rng.sample(absent, min(2, len(absent))):
            out.append(_q("negation", f"never_{rtype.lower()}", f"Has the patient ever been {verb} {name}?", [],
                          NOT_IN_RECORD_FOR.format(thing=name), (rtype,), thing=name))
    return out


def unanswerable_questions(res: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rng = _rng(res, "unanswerable")
    return [_q("unanswerable", "unanswerable", q, [], NOT_IN_RECORD, (), topic=q) for q in rng.sample(UNANSWERABLE, 2)]


def multi_resource_questions(res: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    conditions = {r["id"]: r for r in _of(res, "Condition")}
    treated: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for med in _of(res, "MedicationRequest"):
        for ref in med.get("reasonReference") or []:
            cid = (ref.get("reference") or "").split("/")[-1].removeprefix("urn:uuid:")
            if cid in conditions:
                treated[cid].append(med)
    for cid, meds in treated.items():
        cond = conditions[cid]
        if len(meds) + 1 <= MAX_GOLD:
            name = _name(cond)
            med_names = "; ".join(dict.fromkeys(f"{_name(m)} ({when(m)})" for m in meds))
            out.append(_q("multi", "condition_and_treatment", f"When was {name} diagnosed and what was prescribed for it?",
                          [cond, *meds], f"{name} was diagnosed on {when(cond)}; prescribed: {med_names}.",
                          ("Condition", "MedicationRequest"), condition=name))
    by_encounter: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in res:
        ref = ((r.get("encounter") or {}).get("reference") or "").split("/")[-1].removeprefix("urn:uuid:")
        if ref and r["resourceType"] in ("Condition", "MedicationRequest", "Procedure", "Immunization"):
            by_encounter[ref].append(r)
    encounters = _of(res, "Encounter")
    for enc in _rng(res, "visits").sample(encounters, min(3, len(encounters))):
        linked = by_encounter.get(enc["id"], [])
        if 1 <= len(linked) < MAX_GOLD:
            facts = "; ".join(dict.fromkeys(_name(r) for r in linked))
            out.append(_q("multi", "visit_contents", f"What was recorded at the visit on {when(enc)}?", [enc, *linked],
                          f"At the visit on {when(enc)}: {facts}.", ("Procedure", "Condition", "Immunization"), date=when(enc)))
    return out


def date_range_questions(res: list[dict[str, Any]]) -> list[dict[str, Any]]:
    conditions = _of(res, "Condition")
    years = sorted({when(r)[:4] for r in conditions if when(r)})
    out = []
    for year in _rng(res, "after").sample(years, min(2, len(years))):
        later = [r for r in conditions if when(r)[:4] > year]
        if later and len(later) <= MAX_GOLD:
            names = "; ".join(dict.fromkeys(f"{_name(r)} ({when(r)})" for r in later))
            out.append(_q("dates", "conditions_after_year", f"Which conditions were first recorded after {year}?", later,
                          f"After {year}: {names}.", ("Condition",), year=year))
    return out


HARD_GENERATORS = [negation_questions, unanswerable_questions, multi_resource_questions, date_range_questions]
