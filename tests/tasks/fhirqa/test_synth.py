"""QA synthesis: labels verifiable from the data, balanced sampling, teacher paraphrase with checks, resume."""

from __future__ import annotations

import json
from pathlib import Path

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.tasks.fhirqa.condense import condense, describe, when
from ehrforge.tasks.fhirqa.fhir_load import load_default
from ehrforge.tasks.fhirqa.synth import CATEGORIES, build_questions, patient_record, synthesize


def test_every_category_and_gold_labels_agree_with_the_record() -> None:
    store = load_default()
    records = build_questions(store)
    assert {r["category"] for r in records} == set(CATEGORIES)
    assert {r["split"] for r in records} == {"train", "valid", "test"}
    resources = {pid: {r["id"]: r for r in patient_record(store, pid)} for pid in store.patient_ids}
    for rec in records:
        cand_ids = [c["id"] for c in rec["candidates"]]
        assert set(rec["relevant_ids"]) <= set(cand_ids)
        assert len(rec["candidates"]) <= 16
        for value in rec["slots"].values():
            assert value in rec["question"] and (value in rec["answer"] or rec["template"] in ("encounters_in_year", "unanswerable"))
        gold = [resources[rec["patient_id"]][i] for i in rec["relevant_ids"]]
        if rec["template"] == "latest_observation":
            (obs,) = gold
            same = [r for r in resources[rec["patient_id"]].values() if r["resourceType"] == "Observation" and r["code"] == obs["code"]]
            assert obs["effectiveDateTime"] == max(r["effectiveDateTime"] for r in same)
            assert str(obs["valueQuantity"]["value"]) in rec["answer"]
        if rec["template"] == "encounters_in_year":
            year = rec["slots"]["year"]
            n = sum(1 for r in resources[rec["patient_id"]].values() if r["resourceType"] == "Encounter" and r["period"]["start"].startswith(year))
            assert len(gold) == n and rec["answer"].startswith(f"{n} encounter")
        if rec["template"] == "allergies" and not gold:
            assert rec["answer"] == "No allergies are recorded."
        if rec["template"].startswith("never_"):  # negation: nothing of that name anywhere in the record
            thing = rec["slots"]["thing"]
            assert not gold and all(thing not in c["line"] for c in condense(list(resources[rec["patient_id"]].values())))
        if rec["template"].startswith("ever_"):
            assert gold and all(rec["slots"]["thing"] in describe(r) for r in gold)
        if rec["template"] == "conditions_after_year":
            assert all(when(r)[:4] > rec["slots"]["year"] for r in gold)
        if rec["template"] == "condition_and_treatment":
            assert {r["resourceType"] for r in gold} == {"Condition", "MedicationRequest"}


def test_balanced_sample_covers_categories_and_is_deterministic() -> None:
    store = load_default()
    a = build_questions(store, n=40, seed=3)
    assert len(a) == 40 and [r["id"] for r in a] == [r["id"] for r in build_questions(store, n=40, seed=3)]
    assert len({r["category"] for r in a}) == len(CATEGORIES)


def test_synthesize_with_teacher_paraphrase_keeps_only_checked_rewrites(tmp_path: Path) -> None:
    calls = {"n": 0}

    def teacher(messages):
        calls["n"] += 1
        q = messages[0]["content"].split("Question: ", 1)[1]
        # Every other paraphrase drops the entity words: it must be rejected and the template kept.
        return f"Could you tell me: {q}" if calls["n"] % 2 else "What about that thing?"

    out = tmp_path / "qa.jsonl"
    stats = synthesize(out, n=12, teacher=FakeBackend(respond=teacher), seed=1)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert stats["records"] == len(rows) == 12
    assert stats["paraphrased"] + stats["paraphrase_rejected"] == 12 and stats["paraphrase_rejected"] == 6
    for r in rows:
        if r["paraphrased"]:
            assert r["question"].startswith("Could you tell me:") and r["question"].endswith(r["question_template"])
        else:
            assert r["question"] == r["question_template"]
    assert not (tmp_path / "qa.jsonl.progress.jsonl").exists()


def test_interrupted_paraphrase_run_resumes(tmp_path: Path) -> None:
    out = tmp_path / "qa.jsonl"

    class Boom(Exception):
        pass

    seen: list[str] = []

    def flaky(messages):
        seen.append(messages[0]["content"])
        if len(seen) == 5:
            raise Boom
        return "Could you tell me: " + messages[0]["content"].split("Question: ", 1)[1]

    try:
        synthesize(out, n=8, teacher=FakeBackend(respond=flaky))
    except Boom:
        pass
    assert not out.exists() and (tmp_path / "qa.jsonl.progress.jsonl").exists()
    before = len(seen)
    stats = synthesize(out, n=8, teacher=FakeBackend(respond=flaky))
    assert len(seen) - before == 8 - 4  # the 4 finished paraphrases were not asked again
    assert stats["paraphrased"] == 8
