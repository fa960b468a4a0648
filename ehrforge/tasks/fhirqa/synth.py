"""Build a verifiable QA dataset from patients' FHIR records.

Every question comes from a template over the record, so its *gold relevant resource ids* and *gold answer* are
computed from the data, not written by a model. A teacher model may then paraphrase the question; a paraphrase is
kept only when it still names every entity of the template (the condition, medication, year...), so the computed
labels stay true for it. Otherwise the template wording is kept and the record says so (``paraphrased: false``).

Each record is self-contained (it carries the condensed candidate lines), so training and evaluation never need the
FHIR files again::

    {"id", "split", "patient_id", "category", "template", "question", "question_template", "slots",
     "candidates": [{"id", "short", "type", "line"}], "relevant_ids": [...], "answer", "paraphrased"}

``candidates`` is the gold resources plus distractors (half of the same resource type: the hard ones), at most
``max_candidates`` lines, in record order. Long jobs (teacher paraphrase) checkpoint each record and resume.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ehrforge.core.io import JsonlCheckpoint, atomic_write_jsonl
from ehrforge.core.progress import progress_bar
from ehrforge.tasks.fhirqa.condense import condense, describe, when
from ehrforge.tasks.fhirqa.fhir_load import FHIRStore, load_default
from ehrforge.tasks.fhirqa.hard_templates import HARD_GENERATORS
from ehrforge.tasks.fhirqa.observations import with_synthetic_observations

CATEGORIES = ("conditions", "medications", "allergies", "encounters", "immunizations", "procedures", "observations",
              "negation", "unanswerable", "multi", "dates")
MAX_GOLD = 6  # questions whose answer needs more resources than this are skipped (the answer gets unwieldy)

Question = dict[str, Any]


def split_of(qid: str) -> str:
    """Deterministic 80/10/10 split by question id (stable when the dataset grows).

    >>> split_of("fhirqa-x")
    'train'
    """
    bucket = int(hashlib.sha256(qid.encode()).hexdigest()[:8], 16) % 10
    return "valid" if bucket == 0 else "test" if bucket == 1 else "train"


def _name(res: dict[str, Any]) -> str:
    """The resource's main concept (condition, medication, vaccine...) as written in the record."""
    text = describe(res).split("; ")[0]
    return text.split(" = ")[0]


def _status(res: dict[str, Any]) -> str:
    if res["resourceType"] == "MedicationRequest":
        return res.get("status", "")
    return "".join(c.get("code", "") for c in (res.get("clinicalStatus") or {}).get("coding", []))


def _q(category: str, template: str, question: str, gold: list[dict[str, Any]], answer: str, **slots: str) -> Question:
    return {"category": category, "template": template, "question": question, "gold": [r["id"] for r in gold], "answer": answer, "slots": slots}


def _group(resources: Iterable[dict[str, Any]], rtype: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for res in resources:
        if res["resourceType"] == rtype:
            groups[_name(res)].append(res)
    for items in groups.values():
        items.sort(key=when)
    return groups


def _listing(items: list[str]) -> str:
    return "; ".join(dict.fromkeys(items))


def condition_questions(res: list[dict[str, Any]]) -> list[Question]:
    out = []
    active = [r for r in res if r["resourceType"] == "Condition" and _status(r) == "active"]
    disorders = [r for r in active if "(disorder)" in _name(r)] if len(active) > MAX_GOLD else active
    if len(disorders) <= MAX_GOLD:
        names = _listing([_name(r) for r in disorders])
        answer = f"Active conditions: {names}." if disorders else "No active conditions are recorded."
        wording = "Which disorders are currently active?" if disorders is not active else "Which conditions are currently active?"
        out.append(_q("conditions", "active_conditions", wording, disorders, answer))
    for name, items in _group(res, "Condition").items():
        first = items[0]
        out.append(_q("conditions", "condition_onset", f"When was {name} first recorded?", [first], f"{name} was first recorded on {when(first)}.", condition=name))
        last = items[-1]
        if _status(last) == "active":
            answer = f"{name} is active (onset {when(last)})."
        else:
            ended = (last.get("abatementDateTime") or "")[:10]
            answer = f"{name} is resolved" + (f" since {ended}." if ended else ".")
        out.append(_q("conditions", "condition_status", f"Is {name} still active?", [last], answer, condition=name))
    return out


def medication_questions(res: list[dict[str, Any]]) -> list[Question]:
    out = []
    meds = [r for r in res if r["resourceType"] == "MedicationRequest"]
    active = [r for r in meds if r.get("status") == "active"]
    if len(active) <= MAX_GOLD:
        answer = f"Current medications: {_listing([_name(r) for r in active])}." if active else "No active medications are recorded."
        out.append(_q("medications", "active_medications", "What medications is the patient currently taking?", active, answer))
    by_reason: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in active:
        for ref in r.get("reasonReference") or []:
            if ref.get("display"):
                by_reason[ref["display"]].append(r)
    for reason, items in by_reason.items():
        if len(items) <= MAX_GOLD:
            answer = f"For {reason}: {_listing([_name(r) for r in items])}."
            out.append(_q("medications", "medications_for_condition", f"What medications is the patient taking for {reason}?", items, answer, condition=reason))
    for name, items in _group(res, "MedicationRequest").items():
        last = items[-1]
        out.append(_q("medications", "medication_last_prescribed", f"When was {name} last prescribed?", [last], f"{name} was last prescribed on {when(last)}.", medication=name))
    return out


def allergy_questions(res: list[dict[str, Any]]) -> list[Question]:
    allergies = [r for r in res if r["resourceType"] == "AllergyIntolerance"]
    out = []
    if len(allergies) <= 8:
        answer = f"Recorded allergies: {_listing([_name(r) for r in allergies])}." if allergies else "No allergies are recorded."
        out.append(_q("allergies", "allergies", "What is the patient allergic to?", allergies, answer))
    for r in allergies:
        reactions = [m.get("text", "") for x in r.get("reaction") or [] for m in x.get("manifestation") or []]
        if reactions:
            out.append(_q("allergies", "allergy_reactions", f"What reactions does the patient have to {_name(r)}?", [r], f"Reactions to {_name(r)}: {_listing(reactions)}.", substance=_name(r)))
    return out


def encounter_questions(res: list[dict[str, Any]]) -> list[Question]:
    encounters = sorted((r for r in res if r["resourceType"] == "Encounter"), key=when)
    if not encounters:
        return []
    last = encounters[-1]
    out = [_q("encounters", "last_encounter", "When was the most recent encounter and what was it for?", [last], f"The most recent encounter was on {when(last)}: {describe(last).split('; ', 2)[0]}.")]
    by_year: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in encounters:
        by_year[when(r)[:4]].append(r)
    for year, items in by_year.items():
        if len(items) <= MAX_GOLD:
            n = len(items)
            answer = f"{n} encounter{'s' if n > 1 else ''} in {year}: {', '.join(when(r) for r in items)}."
            out.append(_q("encounters", "encounters_in_year", f"How many encounters did the patient have in {year}?", items, answer, year=year))
    return out


def immunization_questions(res: list[dict[str, Any]]) -> list[Question]:
    out = []
    for name, items in _group(res, "Immunization").items():
        last = items[-1]
        out.append(_q("immunizations", "last_vaccine", f"When did the patient last receive the {name} vaccine?", [last], f"The last {name} vaccine was given on {when(last)}.", vaccine=name))
    by_year: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in res:
        if r["resourceType"] == "Immunization":
            by_year[when(r)[:4]].append(r)
    for year, items in by_year.items():
        if len(items) <= MAX_GOLD:
            out.append(_q("immunizations", "vaccines_in_year", f"Which vaccines were given in {year}?", items, f"Vaccines in {year}: {_listing([_name(r) for r in items])}.", year=year))
    return out


def procedure_questions(res: list[dict[str, Any]]) -> list[Question]:
    out = []
    for name, items in _group(res, "Procedure").items():
        if len(items) <= 4:
            out.append(_q("procedures", "procedure_dates", f"When was {name} performed?", items, f"{name} was performed on {', '.join(dict.fromkeys(when(r) for r in items))}.", procedure=name))
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in res:
        if r["resourceType"] == "Procedure":
            by_day[when(r)].append(r)
    for day, items in by_day.items():
        if len(items) <= MAX_GOLD:
            out.append(_q("procedures", "procedures_on_date", f"Which procedures were performed on {day}?", items, f"Procedures on {day}: {_listing([_name(r) for r in items])}.", date=day))
    return out


def observation_questions(res: list[dict[str, Any]]) -> list[Question]:
    out = []
    for name, items in _group(res, "Observation").items():
        last = items[-1]
        q = last.get("valueQuantity") or {}
        out.append(_q("observations", "latest_observation", f"What was the most recent {name} value?", [last], f"The most recent {name} was {q.get('value')} {q.get('unit', '')} on {when(last)}.", observation=name))
        if 2 <= len(items) <= 4:
            series = ", ".join(f"{(r.get('valueQuantity') or {}).get('value')} on {when(r)}" for r in items)
            out.append(_q("observations", "observation_trend", f"How has the {name} changed over time?", items, f"{name} ({q.get('unit', '')}): {series}.", observation=name))
    return out


GENERATORS: list[Callable[[list[dict[str, Any]]], list[Question]]] = [
    condition_questions,
    medication_questions,
    allergy_questions,
    encounter_questions,
    immunization_questions,
    procedure_questions,
    observation_questions,
    *HARD_GENERATORS,
]


def patient_record(store: FHIRStore, patient_id: str, *, synthetic: bool = True) -> list[dict[str, Any]]:
    """One patient's resources, plus deterministic synthetic Observations when the record has none."""
    resources = store.patient_resources(patient_id)
    return with_synthetic_observations(patient_id, resources) if synthetic else resources


def _candidates(rows: list[dict[str, str]], gold: list[str], max_candidates: int, rng: random.Random,
                distractor_types: Iterable[str] = ()) -> list[dict[str, str]]:
    gold_set = set(gold)
    # hard distractors share the gold's type (or the type a negation question asks about)
    gold_types = {r["type"] for r in rows if r["id"] in gold_set} | set(distractor_types)
    others = [r for r in rows if r["id"] not in gold_set]
    same = [r for r in others if r["type"] in gold_types]
    diff = [r for r in others if r["type"] not in gold_types]
    room = max(0, max_candidates - len(gold_set))
    n_same = min(len(same), (room + 1) // 2 if diff else room)
    picked = rng.sample(same, n_same) + rng.sample(diff, min(len(diff), room - n_same))
    keep = gold_set | {r["id"] for r in picked}
    return [{k: r[k] for k in ("id", "short", "type", "line")} for r in rows if r["id"] in keep]


def patient_questions(patient_id: str, resources: list[dict[str, Any]], *, max_candidates: int, seed: int) -> list[dict[str, Any]]:
    """Every template question for one patient, as finished dataset records (no paraphrase yet)."""
    rows = condense(resources)
    out = []
    for generate in GENERATORS:
        for q in generate(resources):
            slot_key = "|".join(f"{k}={v}" for k, v in sorted(q["slots"].items()))
            digest = hashlib.sha256(f"{patient_id}|{q['template']}|{slot_key}".encode()).hexdigest()[:10]
            qid = f"fhirqa-{patient_id[:8]}-{q['template']}-{digest}"
            rng = random.Random(f"{seed}|{qid}")
            out.append(
                {
                    "id": qid,
                    "split": split_of(qid),
                    "patient_id": patient_id,
                    "category": q["category"],
                    "template": q["template"],
                    "question": q["question"],
                    "question_template": q["question"],
                    "slots": q["slots"],
                    "candidates": _candidates(rows, q["gold"], max_candidates, rng, q.get("distractor_types", ())),
                    "relevant_ids": q["gold"],
                    "answer": q["answer"],
                    "paraphrased": False,
                }
            )
    return out


def _balanced_sample(records: list[dict[str, Any]], n: int | None, seed: int) -> list[dict[str, Any]]:
    """Round-robin over (category, template) so a few prolific templates (procedures on a date) do not dominate."""
    if n is None or n >= len(records):
        return records
    rng = random.Random(seed)
    buckets: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        buckets[(r["category"], r["template"])].append(r)
    for items in buckets.values():
        rng.shuffle(items)
    keys = sorted(buckets)
    picked: list[dict[str, Any]] = []
    while len(picked) < n:
        for key in keys:
            if buckets[key] and len(picked) < n:
                picked.append(buckets[key].pop())
    return sorted(picked, key=lambda r: r["id"])


def build_questions(store: FHIRStore, *, n: int | None = None, seed: int = 0, max_candidates: int = 16, synthetic: bool = True) -> list[dict[str, Any]]:
    """Template questions over every patient in ``store`` (balanced sample of ``n`` when given)."""
    records: list[dict[str, Any]] = []
    for pid in store.patient_ids:
        records.extend(patient_questions(pid, patient_record(store, pid, synthetic=synthetic), max_candidates=max_candidates, seed=seed))
    return _balanced_sample(records, n, seed)


PARAPHRASE_PROMPT = (
    "Rewrite this question a clinician asks about one patient's record so it sounds natural. Keep its meaning and "
    "copy these words exactly: {slots}. Reply with the question only.\n\nQuestion: {question}"
)


#: Templates without slots must keep one of these word stems, so "What about that?" cannot pass.
TOPIC_WORDS = {
    "active_conditions": ("condition", "disorder", "diagnos", "problem"),
    "active_medications": ("medic", "drug", "prescri"),
    "allergies": ("allerg",),
    "last_encounter": ("encounter", "visit"),
}


def accept_paraphrase(text: str, record: dict[str, Any]) -> str | None:
    """The cleaned paraphrase if it keeps every slot value verbatim (case-insensitive) and is one question.

    >>> accept_paraphrase("Which drugs treat Asthma now?", {"slots": {"condition": "asthma"}})
    'Which drugs treat Asthma now?'
    >>> accept_paraphrase("Which drugs does she take?", {"slots": {"condition": "asthma"}}) is None
    True
    """
    text = re.sub(r"^\s*(question|paraphrase)\s*:\s*", "", text.strip().strip('"'), flags=re.I).split("\n")[0].strip()
    if not text.endswith("?") or len(text) > 300 or len(text) < 8:
        return None
    if any(str(v).lower() not in text.lower() for v in record["slots"].values()):
        return None
    topic = TOPIC_WORDS.get(record.get("template", ""))
    if topic and not any(w in text.lower() for w in topic):
        return None
    return text


def synthesize(
    out: str | os.PathLike,
    *,
    n: int = 200,
    teacher: Any = None,
    seed: int = 0,
    source: str | os.PathLike | None = None,
    max_candidates: int = 16,
    synthetic_observations: bool = True,
) -> dict[str, Any]:
    """Write a QA dataset (JSONL) to ``out``; returns statistics. Resumes an interrupted teacher run."""
    store = load_default(source)
    records = build_questions(store, n=n, seed=seed, max_candidates=max_candidates, synthetic=synthetic_observations)
    out = Path(out)
    rejected = 0
    if teacher is not None:
        progress_path = out.with_name(out.name + ".progress.jsonl")
        with JsonlCheckpoint(progress_path) as ckpt, progress_bar("paraphrase questions", len(records)) as advance:
            for rec in records:
                if rec["id"] not in ckpt:
                    slots = ", ".join(f'"{v}"' for v in rec["slots"].values()) or "(none)"
                    prompt = [{"role": "user", "content": PARAPHRASE_PROMPT.format(slots=slots, question=rec["question"])}]
                    text = teacher.generate([prompt], max_new_tokens=64, temperature=0.7, seed=seed)[0].text
                    ckpt.add({"id": rec["id"], "paraphrase": accept_paraphrase(text, rec)})
                advance(1)
            done = dict(ckpt.done)
        for rec in records:
            para = done[rec["id"]]["paraphrase"]
            if para:
                rec["question"], rec["paraphrased"] = para, True
            else:
                rejected += 1
    atomic_write_jsonl(out, records)
    if teacher is not None:
        progress_path.unlink(missing_ok=True)
    synthetic_count = sum(1 for r in records for c in r["candidates"] if c["type"] == "Observation")
    return {
        "out": str(out),
        "records": len(records),
        "patients": len({r["patient_id"] for r in records}),
        "splits": dict(Counter(r["split"] for r in records)),
        "categories": dict(Counter(r["category"] for r in records)),
        "paraphrased": sum(r["paraphrased"] for r in records),
        "paraphrase_rejected": rejected,
        "mean_candidates": round(sum(len(r["candidates"]) for r in records) / max(1, len(records)), 2),
        "mean_relevant": round(sum(len(r["relevant_ids"]) for r in records) / max(1, len(records)), 2),
        "synthetic_observation_lines": synthetic_count,
        "load_issues": len(store.issues),
    }
