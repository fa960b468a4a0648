"""The template stand-in teacher: surface forms beyond its lexicon, negated mentions, context, and the HTTP path."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serve"))  # serve_helpers: the real LiveServer


from ehrforge.core.io import read_jsonl
from ehrforge.tasks.extract.conll import check_spans
from ehrforge.tasks.extract.synth import RelationSpec, synthesize, teacher_prompt
from ehrforge.tasks.extract.template_teacher import NEGATED_TEMPLATES, TemplateTeacher, neighbour_words

LEXICON = {"Chemical": ["cisplatin", "lithium", "valproic acid", "haloperidol"],
           "Disease": ["acute renal failure", "seizures", "hepatic necrosis", "tardive dyskinesia"]}
CONTEXTS = ["Blood samples were drawn at baseline.", "The cohort included forty adults."]


def _notes(teacher, n=300):
    out = []
    for i in range(n):
        gen = teacher.generate([teacher_prompt("progress note", "neurology", ["Chemical", "Disease"], RelationSpec(), str(i))])
        out.append(json.loads(gen[0].text))
    return out


def test_surface_forms_beyond_the_lexicon_with_exact_spans():
    teacher = TemplateTeacher(LEXICON, seed=1, contexts=CONTEXTS, variant_rate=0.5)
    notes = _notes(teacher)
    known = {n for names in LEXICON.values() for n in names}
    for note in notes:
        assert check_spans(note) == []
    mentions = [e["text"] for n in notes for e in n["entities"]]
    outside = {m for m in mentions if m not in known}
    assert {"ARF", "HN", "TD"} & outside  # abbreviations, annotated as their own spans
    assert any(m.endswith(("hydrochloride", "sodium", "sulfate", "citrate", "maleate", "acetate")) for m in outside)
    assert any(m.lower() not in {k.lower() for k in known} and " " not in m and m.upper() != m for m in outside)  # misspelt
    for kind in ("abbreviation", "misspelling", "multi_word_chemical", "capitalised"):
        assert teacher.variants[kind] > 0
    # "acute renal failure (ARF)": both mentions annotated
    note = next(n for n in notes if "(ARF)" in n["text"])
    assert {"acute renal failure", "ARF"} <= {e["text"] for e in note["entities"]} or "Acute renal failure" in note["text"]
    assert any(c in n["text"] for n in notes for c in CONTEXTS)


def test_negated_and_family_history_mentions_are_entities_not_relations():
    teacher = TemplateTeacher(LEXICON, seed=2, variant_rate=0.0)
    fields = {"Note style": "abstract", "Entity types": "Chemical, Disease", "Relation": "CID"}
    import random

    for template, causes in NEGATED_TEMPLATES:
        assert causes == []
    notes = [teacher.compose(fields, random.Random(i)) for i in range(200)]
    negated = [n for n in notes if "family history" in n["text"].lower() or "ruled out" in n["text"]]
    assert negated
    for n in negated:
        assert n["entities"]


def test_lexicon_variant_rate_zero_stays_inside_the_lexicon():
    teacher = TemplateTeacher(LEXICON, seed=3, variant_rate=0.0)
    known = {n for names in LEXICON.values() for n in names}
    known |= {k[0].upper() + k[1:] for k in known}  # a sentence starts with a capital
    assert {e["text"] for n in _notes(teacher, 60) for e in n["entities"]} <= known


def test_unannotated_neighbour_words_sit_next_to_names_but_outside_their_spans():
    neighbours = {"Chemical": {"before": ["oral"], "after": ["therapy"]}, "Disease": {"before": ["metastatic"], "after": ["risk"]}}
    teacher = TemplateTeacher(LEXICON, seed=4, variant_rate=0.0, neighbours=neighbours, neighbour_rate=1.0)
    notes = _notes(teacher, 80)
    for note in notes:
        assert check_spans(note) == []
        for ent in note["entities"]:
            assert not ent["text"].lower().startswith(("oral", "metastatic")) and not ent["text"].endswith(("therapy", "risk"))
    text = " ".join(n["text"] for n in notes).lower()
    for word in ("oral ", "metastatic ", " therapy", " risk"):
        assert word in text
    assert teacher.variants["unannotated_word_before"] > 0 and teacher.variants["unannotated_word_after"] > 0
    plain = TemplateTeacher(LEXICON, seed=4, variant_rate=0.0, neighbours=neighbours, neighbour_rate=0.0)
    assert "metastatic" not in " ".join(n["text"] for n in _notes(plain, 80)).lower()


def test_a_qualifier_at_sentence_start_lowercases_only_capitals_the_sentence_gave():
    lexicon = {"Chemical": ["Aspirin"], "Disease": ["Parkinson disease", "seizures"]}
    neighbours = {"Chemical": {"before": ["oral"], "after": []}, "Disease": {"before": ["early"], "after": []}}
    teacher = TemplateTeacher(lexicon, seed=1, variant_rate=0.0, neighbours=neighbours, neighbour_rate=2.0)
    names = {ent["text"] for note in _notes(teacher, 120) for ent in note["entities"]}
    assert "Parkinson disease" in names and "parkinson disease" not in names
    assert "Aspirin" in names and "aspirin" not in names
    assert "seizures" in names


def test_neighbour_words_skip_function_words_and_words_inside_another_entity():
    rec = {"text": "the cisplatin nephrotoxicity", "entities": [
        {"start": 4, "end": 13, "label": "Chemical", "text": "cisplatin"},
        {"start": 14, "end": 28, "label": "Disease", "text": "nephrotoxicity"}]}
    assert neighbour_words([rec, rec]) == {"Chemical": {"before": [], "after": []}, "Disease": {"before": [], "after": []}}


def test_synthesis_through_the_http_endpoint_equals_the_direct_call(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from benchmarks._teacher_server import http_teacher

    teacher = TemplateTeacher(LEXICON, seed=4, contexts=CONTEXTS)
    direct = synthesize(tmp_path / "direct.jsonl", teacher=teacher, n=15, seed=0)
    with http_teacher(TemplateTeacher(LEXICON, seed=4, contexts=CONTEXTS), model_name="template") as client:
        served = synthesize(tmp_path / "http.jsonl", teacher=client, n=15, seed=0)
    assert served["accepted"] == direct["accepted"] == 15
    strip = lambda rs: [(r["text"], r["entities"], r.get("relations")) for r in rs]
    assert strip(read_jsonl(tmp_path / "http.jsonl").records) == strip(read_jsonl(tmp_path / "direct.jsonl").records)


@pytest.mark.parametrize("flag", [True, False])
def test_context_fragments_come_from_train_records_only_when_asked(flag):
    recs = [{"text": "Pretreatment with cisplatin raised the blood pressure in all rats .",
             "entities": [{"start": 18, "end": 27, "label": "Chemical", "text": "cisplatin"},
                          {"start": 0, "end": 0, "label": "Disease", "text": ""}][:1]},
            {"text": "seizures were seen", "entities": [{"start": 0, "end": 8, "label": "Disease", "text": "seizures"}]}]
    teacher = TemplateTeacher.from_records(recs, context_fragments=flag)
    assert bool(teacher.contexts) is flag
