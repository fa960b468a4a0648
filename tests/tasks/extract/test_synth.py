"""Synthesis: teacher JSON is validated (bad notes counted and dropped), deduplicated, PHI-checked, resumable."""

from __future__ import annotations

import json

import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.core.io import read_jsonl
from ehrforge.errors import ConfigError, DataError
from ehrforge.tasks.extract.conll import check_spans, record_words, spans_to_iob
from ehrforge.tasks.extract.synth import (
    NearDuplicateFilter,
    RelationSpec,
    SynthConfig,
    synthesize,
    teacher_prompt,
    validate_note,
)

LABELS = ["Chemical", "Disease"]
CID = RelationSpec()


def note(text, ents, rels=None):
    obj = {"text": text, "entities": ents}
    if rels is not None:
        obj["relations"] = rels
    return json.dumps(obj)


GOOD = note("Lithium caused tremor.", [{"text": "Lithium", "label": "Chemical", "start": 0, "end": 7},
                                       {"text": "tremor", "label": "Disease", "start": 15, "end": 21}],
            [{"head": 0, "tail": 1, "type": "CID"}])


@pytest.mark.parametrize("raw, reason", [
    ("I cannot help with that.", "no_json"),
    ('{"text": "x"}', "schema"),
    (note("Lithium caused tremor.", [{"text": "Lithium", "label": "Drug", "start": 0, "end": 7}]), "unknown_label"),
    (note("Lithium caused tremor.", [{"text": "Lithium", "label": "Chemical", "start": 1, "end": 8}]), "offset_mismatch"),
    (note("Lithium caused tremor.", [{"text": "Lithium", "label": "Chemical", "start": 0, "end": 99}]), "offset_mismatch"),
    (note("tremor, then more tremor.", [{"text": "tremor", "label": "Disease"}]), "ambiguous_span"),
    (note("Lithium caused tremor.", [{"text": "ataxia", "label": "Disease"}]), "span_not_found"),
    (note("Lithium caused tremor.", [{"text": "Lithium", "label": "Chemical", "start": 0, "end": 7},
                                     {"text": "tremor", "label": "Disease", "start": 15, "end": 21}],
          [{"head": 1, "tail": 0, "type": "CID"}]), "bad_relation"),
    (note("Lithium caused tremor.", [{"text": "Lithium", "label": "Chemical", "start": 0, "end": 7}],
          [{"head": 0, "tail": 5, "type": "CID"}]), "bad_relation"),
    (note("acute renal failure", [{"text": "acute renal failure", "label": "Disease", "start": 0, "end": 19},
                                  {"text": "renal failure", "label": "Disease", "start": 6, "end": 19}]), "overlap"),
])
def test_bad_generations_are_rejected_with_a_reason(raw, reason):
    got, why, _ = validate_note(raw, LABELS, CID)
    assert got is None and why == reason


def test_good_generation_kept_exactly():
    got, why, located = validate_note("Here you go:\n```json\n" + GOOD + "\n```", LABELS, CID)
    assert why == "ok" and located == 0
    assert got["relations"] == [{"head": 0, "tail": 1, "type": "CID"}]
    assert not check_spans(got)


def test_missing_offsets_are_located_only_when_unique():
    got, why, located = validate_note(note("Lithium caused tremor.", [{"text": "tremor", "label": "Disease"}]), LABELS, None)
    assert why == "ok" and located == 1 and got["entities"][0]["start"] == 15


def test_prompt_names_style_topic_types_and_relation():
    text = teacher_prompt("radiology report", "oncology", LABELS, CID, "0-7")[-1]["content"]
    for needle in ("Note style: radiology report", "Topic: oncology", "Entity types: Chemical, Disease", "Relation: CID", "Note id: 0-7"):
        assert needle in text


def test_near_duplicates_are_caught_and_distinct_notes_pass():
    d = NearDuplicateFilter(threshold=0.5)
    base = "The patient developed acute kidney injury after three days of high dose cisplatin therapy in hospital"
    assert d.check_and_add("a", base) is None
    assert d.check_and_add("b", base.upper() + "!") == "duplicate"
    assert d.check_and_add("c", base.replace("three", "four")) == "near_duplicate"
    assert d.check_and_add("d", "Chest radiograph shows a small left pleural effusion without pneumothorax today") is None


def test_config_lists_every_problem_at_once():
    with pytest.raises(ConfigError) as err:
        SynthConfig(labels=["Disease"], styles=["sonnet"], dedup_threshold=2).validate()
    text = str(err.value)
    assert "styles" in text and "dedup_threshold" in text and "relation CID" in text


def test_fake_teacher_bad_notes_counted_and_dropped(tmp_path):
    phi = note("Dr. Alvarez saw lithium toxicity.", [{"text": "lithium", "label": "Chemical", "start": 16, "end": 23}])
    teacher = FakeBackend([GOOD, "not json", phi, GOOD, note("Aspirin helps.", [{"text": "Aspirin", "label": "Chemical", "start": 0, "end": 7}])])
    stats = synthesize(tmp_path / "out.jsonl", teacher=teacher, n=2, cfg=SynthConfig(labels=LABELS, batch_size=5))
    assert stats["accepted"] == 2 and stats["attempts"] == 5
    assert stats["rejected_by_reason"] == {"duplicate": 1, "no_json": 1, "phi": 1}
    out = read_jsonl(tmp_path / "out.jsonl").records
    assert [r["text"] for r in out] == ["Lithium caused tremor.", "Aspirin helps."]
    assert "Alvarez" not in (tmp_path / "out.jsonl.checkpoint.jsonl").read_text()  # rejected notes are not stored


def test_stops_after_max_attempts(tmp_path):
    stats = synthesize(tmp_path / "o.jsonl", teacher=FakeBackend(respond=lambda m: "nope"), n=3,
                       cfg=SynthConfig(labels=LABELS, max_attempts=7))
    assert stats["accepted"] == 0 and stats["attempts"] == 7 and stats["rejected_by_reason"] == {"no_json": 7}


def test_template_teacher_notes_are_valid_diverse_and_reported(tmp_path, sample_lexicon_teacher):
    stats = synthesize(tmp_path / "s.jsonl", teacher=sample_lexicon_teacher, n=60, seed=3)
    notes = read_jsonl(tmp_path / "s.jsonl").records
    assert len(notes) == stats["accepted"] == 60
    assert set(stats["style_distribution"]) == {"abstract", "discharge summary", "progress note", "radiology report"}
    assert stats["label_distribution"]["Chemical"] > 0 and stats["label_distribution"]["Disease"] > 0
    assert stats["relation_distribution"]["CID"] > 0
    for r in notes:
        assert not check_spans(r), r["id"]
        spans_to_iob(record_words(r), r["entities"])  # every span is expressible in IOB
    assert len({r["text"] for r in notes}) == 60
    assert json.loads((tmp_path / "s.jsonl.stats.json").read_text())["accepted"] == 60


class Crashing:
    """Wraps a teacher and raises after a number of calls, like a killed job."""

    name = "template-teacher"

    def __init__(self, inner, calls):
        self.inner, self.calls = inner, calls

    def generate(self, batch, **kw):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return self.inner.generate(batch, **kw)


def test_interrupted_run_resumes_to_the_same_result(tmp_path, sample_lexicon_teacher):
    cfg = SynthConfig(batch_size=4)
    synthesize(tmp_path / "full.jsonl", teacher=sample_lexicon_teacher, n=20, cfg=cfg)
    with pytest.raises(KeyboardInterrupt):
        synthesize(tmp_path / "part.jsonl", teacher=Crashing(sample_lexicon_teacher, 2), n=20, cfg=cfg)
    assert not (tmp_path / "part.jsonl").exists()  # nothing half-written
    assert len((tmp_path / "part.jsonl.checkpoint.jsonl").read_text().splitlines()) == 8
    counting = Crashing(sample_lexicon_teacher, 100)
    synthesize(tmp_path / "part.jsonl", teacher=counting, n=20, cfg=SynthConfig(batch_size=3))
    assert 100 - counting.calls < 6  # only the missing notes were generated
    assert (tmp_path / "part.jsonl").read_text() == (tmp_path / "full.jsonl").read_text()


def test_checkpoint_from_other_settings_is_refused(tmp_path, sample_lexicon_teacher):
    synthesize(tmp_path / "o.jsonl", teacher=sample_lexicon_teacher, n=3, seed=1)
    with pytest.raises(DataError, match="other settings"):
        synthesize(tmp_path / "o.jsonl", teacher=sample_lexicon_teacher, n=3, seed=2)
