"""Review sheets that were renamed or edited carelessly (issue 33 item 17)."""

from __future__ import annotations

import csv
import json

import pytest

from ehrforge.core.review import filter_labels, import_review
from ehrforge.errors import DataError


def _labelled(path):
    rows = [{"id": str(i), "text": f"table {i}", "label": "soe", "confidence": c} for i, c in enumerate([0.99, 0.95, 0.4, 0.3, 0.2])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _sheet(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write_sheet(path, rows):
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_renamed_sheet_still_finds_its_queue(tmp_path):
    labelled = _labelled(tmp_path / "labelled.jsonl")
    filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.9)
    rows = _sheet(tmp_path / "review.csv")
    assert len(rows) == 3 and len({r["queue_id"] for r in rows}) == 1
    rows[0]["reviewed_label"] = "soe"
    _write_sheet(tmp_path / "review_done.csv", rows[:1])  # renamed, and two queued rows deleted by the reviewer
    (tmp_path / "review.csv").unlink()
    stats = import_review(labelled, tmp_path / "review_done.csv", tmp_path / "merged.jsonl", labels=["soe", "other"])
    merged = {r["id"]: r for r in map(json.loads, (tmp_path / "merged.jsonl").read_text().splitlines())}
    deleted = [r["id"] for r in rows[1:]]
    assert all(merged[i]["provenance"] == "unreviewed" and merged[i]["label"] is None for i in deleted)
    assert stats["human"] == 1 and stats["teacher"] == 2


def test_a_sheet_away_from_its_queue_is_refused(tmp_path):
    labelled = _labelled(tmp_path / "labelled.jsonl")
    filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.9)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _write_sheet(elsewhere / "done.csv", _sheet(tmp_path / "review.csv"))
    with pytest.raises(DataError, match="queue manifest of done.csv"):
        import_review(labelled, elsewhere / "done.csv", tmp_path / "merged.jsonl", labels=["soe", "other"])
    assert not (tmp_path / "merged.jsonl").exists()


def test_conflicting_duplicate_rows_name_both(tmp_path):
    labelled = _labelled(tmp_path / "labelled.jsonl")
    filter_labels(labelled, tmp_path / "kept.jsonl", tmp_path / "review.jsonl", min_confidence=0.9)
    rows = _sheet(tmp_path / "review.csv")
    first = {**rows[0], "reviewed_label": "soe"}
    second = {**rows[0], "reviewed_label": "other"}
    _write_sheet(tmp_path / "review.csv", [first, rows[1], second])
    with pytest.raises(DataError, match=r"rows 1 and 3 \(id 2\): conflicting reviews"):
        import_review(labelled, tmp_path / "review.csv", tmp_path / "merged.jsonl", labels=["soe", "other"])
