"""Strict entity-level and relation scoring against hand-computed golden cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ehrforge.core.types import Abstain, Answer
from ehrforge.tasks.extract.score import score_extraction

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "extract" / "score_cases.json"


def E(s, e, label):  # noqa: N802 - short constructor for readability of the cases
    return {"start": s, "end": e, "label": label}


def test_golden_cases():
    cases = json.loads(GOLDEN.read_text())
    for case in cases:
        got = score_extraction(case["gold"], case["pred"])
        for key, want in case["expected"].items():
            assert got[key] == pytest.approx(want), (case["name"], key)


def test_strict_means_boundaries_and_type_both_count():
    gold = [{"entities": [E(0, 10, "Disease")]}]
    for wrong in (E(0, 9, "Disease"), E(1, 10, "Disease"), E(0, 10, "Chemical")):
        assert score_extraction(gold, [{"entities": [wrong]}])["entity_f1"] == 0.0
    assert score_extraction(gold, [{"entities": [E(0, 10, "Disease")]}])["entity_f1"] == 1.0


def test_abstention_predicts_nothing_and_is_counted():
    gold = [{"entities": [E(0, 3, "X")]}, {"entities": [E(0, 3, "X")]}]
    s = score_extraction(gold, [Answer({"entities": [E(0, 3, "X")]}), Abstain("no JSON")])
    assert (s["entity_precision"], s["entity_recall"], s["abstained"]) == (1.0, 0.5, 1.0)


def test_relation_needs_both_exact_arguments():
    ents = [E(0, 7, "Chemical"), E(15, 23, "Disease")]
    gold = [{"entities": ents, "relations": [{"head": 0, "tail": 1, "type": "CID"}]}]
    shifted = [E(0, 7, "Chemical"), E(16, 23, "Disease")]
    s = score_extraction(gold, [{"entities": shifted, "relations": [{"head": 0, "tail": 1, "type": "CID"}]}])
    assert s["relation_f1"] == 0.0 and s["entity_f1"] == 0.5
    s = score_extraction(gold, [{"entities": ents, "relations": [{"head": 0, "tail": 1, "type": "CID"}]}])
    assert s["relation_f1"] == 1.0


def test_no_relation_keys_when_nothing_has_relations():
    s = score_extraction([{"entities": []}], [{"entities": []}])
    assert "relation_f1" not in s and s["entity_f1"] == 0.0


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        score_extraction([{"entities": []}], [])


def test_relations_on_unannotated_records_are_not_scored():
    ents = [E(0, 7, "Chemical"), E(15, 23, "Disease")]
    pred = {"entities": ents, "relations": [{"head": 0, "tail": 1, "type": "CID"}]}
    assert "relation_f1" not in score_extraction([{"entities": ents}], [pred])  # CoNLL record: no annotations
    s = score_extraction([{"entities": ents, "relations": []}], [pred])  # annotated: "no relation here"
    assert s["relation_precision"] == 0.0
