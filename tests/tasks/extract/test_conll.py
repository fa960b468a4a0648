"""IOB/CoNLL ⇄ span JSONL: lossless round trips on the real corpora and clear errors on bad input."""

from __future__ import annotations

import filecmp
import json

import pytest

from ehrforge.core.io import atomic_write_jsonl
from ehrforge.errors import DataError
from ehrforge.tasks.extract.conll import (
    conll_lines,
    read_conll,
    record_words,
    spans_to_iob,
    word_offsets,
    write_conll,
)
from ehrforge.tasks.extract.task import read_span_file

SMALL = "Cisplatin\tB-Chemical\n-\tO\ninduced\tO\nacute\tB-Disease\nrenal\tI-Disease\nfailure\tI-Disease\n.\tO\n\nNo\tO\nfindings\tO\n\n"


def test_read_small_file_gives_exact_spans(tmp_path):
    path = tmp_path / "small.tsv"
    path.write_text(SMALL)
    recs = read_conll(path)
    assert [r["text"] for r in recs] == ["Cisplatin - induced acute renal failure .", "No findings"]
    ents = recs[0]["entities"]
    assert [(e["label"], e["text"]) for e in ents] == [("Chemical", "Cisplatin"), ("Disease", "acute renal failure")]
    for e in ents:
        assert recs[0]["text"][e["start"] : e["end"]] == e["text"]
    assert recs[1]["entities"] == []
    assert "relations" not in recs[0]  # IOB has no relation annotations: absent, not "none"


def test_small_file_round_trips_through_jsonl(tmp_path):
    src = tmp_path / "small.tsv"
    src.write_text(SMALL)
    jsonl = tmp_path / "small.jsonl"
    atomic_write_jsonl(jsonl, read_conll(src))
    back = tmp_path / "back.tsv"
    write_conll(read_span_file(jsonl), back)
    assert back.read_text() == SMALL


@pytest.mark.parametrize("name", ["ncbi_disease/devel.tsv", "bc5cdr/devel.tsv"])
def test_real_corpora_round_trip_byte_for_byte(shared_data, tmp_path, name):
    src = shared_data / name
    out = tmp_path / "back.tsv"
    write_conll(read_conll(src), out)
    assert filecmp.cmp(src, out, shallow=False)


def test_records_without_tokens_are_tokenized_and_cut_at_entities(tmp_path):
    rec = {"id": "s1", "text": "Anti-TNF therapy caused lupus-like syndrome.",
           "entities": [{"start": 5, "end": 8, "label": "Chemical", "text": "TNF"},
                        {"start": 24, "end": 43, "label": "Disease", "text": "lupus-like syndrome"}]}
    lines = conll_lines(rec)
    assert lines[:4] == ["Anti\tO", "-\tO", "TNF\tB-Chemical", "therapy\tO"]
    assert [ln.split("\t")[1] for ln in lines[5:9]] == ["B-Disease", "I-Disease", "I-Disease", "I-Disease"]
    out = tmp_path / "x.tsv"
    write_conll([rec], out)
    again = read_conll(out)[0]
    assert [(e["label"], e["text"].replace(" ", "")) for e in again["entities"]] == [("Chemical", "TNF"), ("Disease", "lupus-likesyndrome")]


def test_word_cut_inside_a_word_at_entity_boundary():
    assert word_offsets("preeclampsia-like", cut_points=[3]) == [(0, 3), (3, 12), (12, 13), (13, 17)]
    rec = {"text": "antiBRCA1", "entities": [{"start": 4, "end": 9, "label": "Disease"}]}
    assert spans_to_iob(record_words(rec), rec["entities"]) == ["O", "B-Disease"]


def test_unaligned_and_overlapping_spans_are_errors_not_moved():
    words = [(0, 5), (6, 11)]
    with pytest.raises(DataError, match="not aligned"):
        spans_to_iob(words, [{"start": 1, "end": 5, "label": "X"}])
    with pytest.raises(DataError, match="overlaps"):
        spans_to_iob(words, [{"start": 0, "end": 11, "label": "X"}, {"start": 6, "end": 11, "label": "Y"}])


@pytest.mark.parametrize("bad, what", [("\tB-Disease\n", "malformed"), ("secret\tX-Disease\n", "bad IOB tag"),
                                       ("secret patient words\n", "bad IOB tag")])
def test_malformed_conll_names_line_not_content(tmp_path, bad, what):
    path = tmp_path / "bad.tsv"
    path.write_text("ok\tO\n\n" + bad)
    with pytest.raises(DataError) as err:
        read_conll(path)
    msg = str(err.value)
    assert what in msg and "line 3" in msg
    assert "secret" not in msg and "words" not in msg


def test_jsonl_with_wrong_offsets_is_rejected_without_echoing_text(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"text": "Mr Doe has gout", "entities": [{"start": 0, "end": 6, "label": "Disease", "text": "gout"}]}) + "\n")
    with pytest.raises(DataError, match="record 1") as err:
        read_span_file(path)
    assert "Doe" not in str(err.value) and "gout" not in str(err.value)
