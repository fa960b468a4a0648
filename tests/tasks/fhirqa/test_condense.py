"""Condensed lines (golden), short ids, token-budget chunking with a real tokenizer, synthetic Observations."""

from __future__ import annotations

from pathlib import Path

import pytest

from ehrforge.tasks.fhirqa.condense import approx_tokens, chunk_lines, condense, short_ids
from ehrforge.tasks.fhirqa.fhir_load import load_default, validate_resource
from ehrforge.tasks.fhirqa.observations import synthetic_observations
from ehrforge.tasks.fhirqa.synth import patient_record

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "fhirqa"


@pytest.fixture(scope="module")
def store():
    return load_default()


def _pid(store, prefix: str) -> str:
    return next(p for p in store.patient_ids if p.startswith(prefix))


def test_condensed_record_matches_golden(store) -> None:
    rows = condense(patient_record(store, _pid(store, "cbc86e51")))
    assert "\n".join(r["line"] for r in rows) + "\n" == (GOLDEN / "condensed_cbc86e51.txt").read_text()


def test_short_ids_are_unique_prefixes_that_map_back(store) -> None:
    for pid in store.patient_ids:
        rows = condense(patient_record(store, pid))
        shorts = [r["short"] for r in rows]
        assert len(set(shorts)) == len(shorts)
        assert all(r["id"].startswith(r["short"]) and r["line"].startswith(r["short"] + " ") for r in rows)
    ids = ["aaaaaaaa-0001", "aaaaaaaa-0002", "bbbbbbbb-0003"]
    assert short_ids(ids) == {"aaaaaaaa-0001": "aaaaaaaa-0001", "aaaaaaaa-0002": "aaaaaaaa-0002", "bbbbbbbb-0003": "bbbbbbbb"}


def test_chunks_respect_a_real_tokenizer_budget(store, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    lines = [r["line"] for r in condense(patient_record(store, _pid(store, "6a4160eb")))]
    budget = 400
    chunks = chunk_lines(lines, budget, count)
    assert [i for c in chunks for i in c] == list(range(len(lines)))  # nothing lost, order kept
    assert len(chunks) > 3
    for c in chunks:
        assert sum(count(lines[i]) + 1 for i in c) <= budget or len(c) == 1
    approx = chunk_lines(lines, budget, approx_tokens)  # the tokenizer-free estimate (for HTTP backends)
    assert [i for c in approx for i in c] == list(range(len(lines)))


def test_synthetic_observations_are_valid_deterministic_and_tagged(store) -> None:
    pid = _pid(store, "79a66c97")  # has type 2 diabetes
    base = store.patient_resources(pid)
    obs = synthetic_observations(pid, base)
    assert obs == synthetic_observations(pid, base)
    assert len(obs) == 4 * 5 + 2 * 5  # vitals at 4 encounters, labs at the latest 2
    for o in obs:
        assert validate_resource(o) is None
        assert o["meta"]["tag"][0]["code"] == "synthetic"
        assert o["code"]["coding"][0]["system"] == "http://loinc.org"
    a1c = [o["valueQuantity"]["value"] for o in obs if o["code"]["coding"][0]["code"] == "4548-4"]
    assert a1c and all(v >= 6.5 for v in a1c)  # diabetes shifts HbA1c into the diabetic range
    healthy = _pid(store, "cbc86e51")
    a1c_h = [o["valueQuantity"]["value"] for o in synthetic_observations(healthy, store.patient_resources(healthy)) if o["code"]["coding"][0]["code"] == "4548-4"]
    assert a1c_h and all(v < 5.7 for v in a1c_h)
    # A record that already has Observations gets none added.
    assert synthetic_observations(pid, base + obs[:1]) == []
