"""BM25 baseline: ranks the line naming the question's entity first, scores relative to the best line, and selects
nothing for a question sharing no word with the record."""

from __future__ import annotations

from ehrforge.tasks.fhirqa.bm25 import BM25Relevance, bm25_scores, line_words
from ehrforge.tasks.fhirqa.task import FHIRQATask

LINES = [
    "aaaaaaaa Condition: Asthma (disorder); active; onset 2001-02-03",
    "bbbbbbbb Condition: Essential hypertension (disorder); active; onset 2010-05-06",
    "cccccccc MedicationRequest: lisinopril 10 MG Oral Tablet; active; authored 2010-05-06; for Essential hypertension (disorder)",
]


def test_entity_line_ranks_first_and_scores_are_relative() -> None:
    (scores,) = BM25Relevance().score_questions([("When was Asthma first recorded?", LINES)])
    assert scores[0] == 1.0 and scores[1] < 1.0 and scores[2] < 1.0
    (hyp,) = BM25Relevance().score_questions([("What is prescribed for essential hypertension?", LINES)])
    assert hyp.index(1.0) in (1, 2) and hyp[0] < 0.5


def test_rare_words_weigh_more_than_common_ones() -> None:
    docs = [line_words(x) for x in LINES]
    # "active" is on every line (low IDF), "lisinopril" on one
    common, rare = bm25_scores(["active"], docs), bm25_scores(["lisinopril"], docs)
    assert max(rare) > max(common)


def test_no_shared_word_selects_nothing_and_abstains() -> None:
    task = FHIRQATask("both")
    rows = [{"id": x.split()[0], "short": x.split()[0], "type": "Condition", "line": x} for x in LINES]
    (sel,) = task.select(BM25Relevance(), [("What is the patient's blood type?", rows)])
    assert sel.value == [] and set(sel.evidence["scores"].values()) == {0.0}
