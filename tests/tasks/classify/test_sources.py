"""Bring-your-own tables: real files of every supported type, malformed lines set aside with line numbers."""

from __future__ import annotations

import json

import pytest

from ehrforge.errors import DataError
from ehrforge.tasks.classify.sources import load_tables
from ehrforge.tasks.classify.task import ClassifyTask


def test_jsonl_with_malformed_lines_goes_to_rejects(tmp_path, capsys):
    src = tmp_path / "tables.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "| Visit | V1 |", "gold": "yes"}),
        "{broken",
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "b", "text": ""}),
        "",
        json.dumps({"id": "c", "text": "Lab ranges", "label": "maybe"}),
        json.dumps({"text": "Dosing", "gold": 0}),
    ]
    src.write_text("\n".join(lines) + "\n")
    task = ClassifyTask()
    recs = task.load("all", source=str(src))
    assert [r["id"] for r in recs] == ["a", "tables-7"]
    assert recs[0]["gold"] == "soe" and recs[1]["gold"] == "other"
    assert [n for n, _ in task.last_rejected] == [2, 3, 4, 6]
    rejects = (tmp_path / "tables.rejects.jsonl").read_text().splitlines()
    assert rejects == [lines[1], lines[2], lines[3], lines[5]]  # verbatim: nothing lost
    err = capsys.readouterr().err
    assert "skipped 4 malformed input line(s)" in err and "Lab ranges" not in err


def test_folder_of_html_markdown_csv_and_text(tmp_path):
    (tmp_path / "protocol.html").write_text(
        "<h1>Protocol</h1><table><tr><th>Visit</th><th>V1</th></tr><tr><td>ECG</td><td>X</td></tr></table>"
        "<p>text</p><TABLE><tr><td>Sodium</td><td>135</td></tr></TABLE>"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "soe.md").write_text("| Visit | V1 |\n|---|---|\n| ECG | X |\n")
    (tmp_path / "labs.csv").write_text("Parameter,Low,High\nSodium,135,145\n")
    (tmp_path / "notes.txt").write_text("Inclusion criteria\n1. Age >= 18\n")
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF")
    recs = load_tables(tmp_path).records
    by_id = {r["id"]: r for r in recs}
    assert sorted(by_id) == ["labs.csv", "notes.txt", "protocol.html#1", "protocol.html#2", "sub/soe.md"]
    assert by_id["protocol.html#2"]["text"].startswith("<TABLE>") and by_id["protocol.html#1"]["format"] == "html"
    assert by_id["labs.csv"]["text"].splitlines()[0] == "| Parameter | Low | High |"
    assert by_id["sub/soe.md"]["format"] == "markdown"


def test_missing_unsupported_and_duplicate_inputs_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="input not found"):
        load_tables(tmp_path / "nope.jsonl")
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(DataError, match="unsupported file type"):
        load_tables(tmp_path / "x.pdf")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no table files"):
        load_tables(empty)
    dup = tmp_path / "dup.jsonl"
    dup.write_text(json.dumps({"id": "1", "text": "a"}) + "\n" + json.dumps({"id": "1", "text": "b"}) + "\n")
    with pytest.raises(DataError, match="duplicate ids"):
        load_tables(dup)
