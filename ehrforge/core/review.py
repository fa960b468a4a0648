"""Confidence filtering and the human review queue: steps 2 and 3 of :mod:`ehrforge.core.label`.

* :func:`filter_labels` (``ehrforge label filter``) - keep confident labels; everything else goes to a review queue
  written three ways: JSONL, CSV (open it in a spreadsheet, fill ``reviewed_label``) and an Argilla-compatible JSON
  export, plus ``<review>.queue.json`` listing the queued ids.
* :func:`import_review` (``ehrforge label import-review``) - merge reviewed labels back, each record with a
  ``provenance``: ``teacher``, ``human``, ``unreviewed`` (queued, not reviewed - also when its row is missing from
  the returned file) or ``filtered-out`` (rejected by the reviewer, or never labelled). Only teacher and human
  records carry a label, so training skips the rest.
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ehrforge.core.io import atomic_open, atomic_write_json, atomic_write_jsonl, read_jsonl
from ehrforge.errors import ConfigError, DataError

STRATEGIES = ("threshold", "top-fraction", "per-label-top-fraction")
#: fields the labeller adds; they are not shown to a reviewer as content
LABEL_FIELDS = (
    "label", "confidence", "confidence_method", "teacher", "label_status", "label_error", "samples", "provenance",
    "input_label", "teacher_label", "reviewed_label", "suggested_label", "reason",
)
#: never shown in a review queue: the answer itself and generator metadata that gives it away (blind review)
HIDDEN_FROM_REVIEW = ("gold", "kind", "difficulty")
#: what a reviewer writes to throw a record away instead of labelling it
REJECT_WORDS = ("skip", "reject", "discard", "-")


def _load_labelled(path: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(path)
    res = read_jsonl(path, rejects=path.with_name(path.stem + ".rejects.jsonl"))
    if res.rejected_lines:
        raise DataError(f"{path.name} has malformed lines {res.rejected_lines[:10]}",
                        f"they were copied to {path.stem}.rejects.jsonl; repair or delete them and run again")
    missing = [i + 1 for i, r in enumerate(res.records) if "id" not in r or "confidence" not in r]
    if missing:
        raise DataError(f"{path.name}: records {missing[:10]} lack 'id' or 'confidence'",
                        "pass the output of `ehrforge label`")
    return res.records


def select_confident(records: Sequence[dict[str, Any]], strategy: str = "threshold", min_confidence: float = 0.9,
                     keep_fraction: float = 0.5) -> list[bool]:
    """Which records to keep. ``threshold``: confidence >= min_confidence. ``top-fraction``: the most confident
    ``keep_fraction`` of labelled records. ``per-label-top-fraction``: the same within each label, so a class the
    teacher is less sure about is not filtered away entirely. Unlabelled records are never kept.

    >>> recs = [{"label": "a", "confidence": c} for c in (0.95, 0.5)] + [{"label": "b", "confidence": 0.6}]
    >>> select_confident(recs, "threshold", 0.9), select_confident(recs, "per-label-top-fraction", keep_fraction=0.5)
    ([True, False, False], [True, False, True])
    """
    problems = []
    if strategy not in STRATEGIES:
        problems.append(f"strategy must be one of {', '.join(STRATEGIES)} (got '{strategy}')")
    if not 0.0 <= min_confidence <= 1.0:
        problems.append("min_confidence must be within [0, 1]")
    if not 0.0 < keep_fraction <= 1.0:
        problems.append("keep_fraction must be within (0, 1]")
    if problems:
        raise ConfigError(problems)
    labelled = [r.get("label") is not None for r in records]
    if strategy == "threshold":
        return [ok and float(r["confidence"]) >= min_confidence for ok, r in zip(labelled, records)]
    groups: dict[Any, list[int]] = {}
    for i, (ok, r) in enumerate(zip(labelled, records)):
        if ok:
            groups.setdefault(r["label"] if strategy == "per-label-top-fraction" else None, []).append(i)
    keep = [False] * len(records)
    for idx in groups.values():
        n_keep = max(1, round(len(idx) * keep_fraction))
        for i in sorted(idx, key=lambda i: (-float(records[i]["confidence"]), i))[:n_keep]:
            keep[i] = True
    return keep


def _review_row(rec: dict[str, Any], min_confidence: float, strategy: str) -> dict[str, Any]:
    if rec.get("label") is None:
        reason = f"teacher gave no label ({rec.get('label_error', 'unknown')})"
    elif strategy == "threshold":
        reason = f"low confidence {float(rec['confidence']):.3f} < {min_confidence}"
    else:
        reason = f"below the kept fraction (confidence {float(rec['confidence']):.3f})"
    content = {k: v for k, v in rec.items() if k not in LABEL_FIELDS and k not in HIDDEN_FROM_REVIEW and k != "id"
               and k != "label_attempts" and k != "second_label" and isinstance(v, (str, int, float))}
    return {"id": rec["id"], "suggested_label": rec.get("label"), "confidence": rec.get("confidence", 0.0),
            "reason": reason, "reviewed_label": None, **content}


def filter_labels(
    inp: str | os.PathLike,
    out: str | os.PathLike,
    review_out: str | os.PathLike,
    strategy: str = "threshold",
    min_confidence: float = 0.9,
    *,
    keep_fraction: float = 0.5,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Split a labelled JSONL into confident labels (``out``) and a review queue: ``review_out`` (JSONL),
    ``<review_out stem>.csv`` and ``<review_out stem>.argilla.json``. Review rows are blind: the gold label and
    generator metadata are left out. Returns counts and the fraction kept."""
    records = _load_labelled(inp)
    keep = select_confident(records, strategy, min_confidence, keep_fraction)
    kept = [r for r, k in zip(records, keep) if k]
    # Every row carries its queue's id, so a sheet the reviewer renamed or moved still finds its queue manifest.
    queue_id = uuid.uuid4().hex[:12]
    review = [{**_review_row(r, min_confidence, strategy), "queue_id": queue_id} for r, k in zip(records, keep) if not k]
    review_out = Path(review_out)
    atomic_write_jsonl(out, kept)
    atomic_write_jsonl(review_out, review)
    csv_path = review_out.with_suffix(".csv")
    write_review_csv(review, csv_path)
    argilla_path = review_out.with_suffix(".argilla.json")
    all_labels = list(labels) if labels else sorted({str(r["label"]) for r in records if r.get("label") is not None})
    export_argilla(review, argilla_path, all_labels)
    # What was queued, so import-review can tell "not reviewed" from "kept" even when a reviewer returns a
    # partial file (rows deleted, or an unedited copy): queued records never come back as teacher labels.
    queue_path = queue_manifest_path(review_out)
    atomic_write_json(queue_path, {"queue_id": queue_id, "ids": [str(r["id"]) for r in review], "strategy": strategy,
                                   "min_confidence": min_confidence, "kept_file": str(out)})
    return {
        "n": len(records),
        "kept": len(kept),
        "review": len(review),
        "unlabelled": sum(r.get("label") is None for r in records),
        "fraction_kept": len(kept) / len(records) if records else 0.0,
        "strategy": strategy,
        "min_confidence": min_confidence,
        "out": str(out),
        "review_files": [str(review_out), str(csv_path), str(argilla_path)],
        "queue_manifest": str(queue_path),
    }


def queue_manifest_path(review_file: str | os.PathLike) -> Path:
    """``review.queue.json`` beside any of the review files ``label filter`` writes (``review.jsonl``,
    ``review.csv``, ``review.argilla.json``).

    >>> queue_manifest_path("out/review.argilla.json").as_posix(), queue_manifest_path("review.csv").as_posix()
    ('out/review.queue.json', 'review.queue.json')
    """
    path = Path(review_file)
    stem = path.name[: -len(".argilla.json")] if path.name.endswith(".argilla.json") else path.stem
    return path.with_name(stem + ".queue.json")


def write_review_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """A spreadsheet-friendly review queue: fill the ``reviewed_label`` column (or write ``skip``)."""
    head = ["id", "suggested_label", "confidence", "reason", "reviewed_label"]
    extra = sorted({k for r in rows for k in r} - set(head))
    with atomic_open(path) as fh:
        writer = csv.DictWriter(fh, fieldnames=head + extra, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in head + extra})
    return Path(path)


def export_argilla(rows: Sequence[dict[str, Any]], path: str | os.PathLike, labels: Sequence[str]) -> Path:
    """Argilla 2.x-shaped export: ``settings`` (text fields, one ``label`` label-selection question) and
    ``records`` with the teacher's answer as a *suggestion* (value, score, agent), ready for
    ``rg.Dataset(settings=...)`` / ``dataset.records.log(...)``. Import edits back via :func:`import_review`."""
    content_keys = sorted({k for r in rows for k in r} - {"id", "suggested_label", "confidence", "reason", "reviewed_label"})
    text_fields = [k for k in content_keys if any(isinstance(r.get(k), str) for r in rows)] or ["text"]
    records = []
    for r in rows:
        suggestion = []
        if r.get("suggested_label") is not None:
            suggestion = [{"question_name": "label", "value": r["suggested_label"], "score": r.get("confidence"),
                           "agent": "teacher"}]
        records.append({
            "id": str(r["id"]),
            "fields": {k: str(r.get(k, "")) for k in text_fields},
            "suggestions": suggestion,
            "responses": [],
            "metadata": {"confidence": r.get("confidence"), "reason": r.get("reason")},
        })
    settings = {
        "guidelines": "Choose the correct label for each record; the suggestion is the teacher's low-confidence answer.",
        "fields": [{"name": k, "type": "text", "required": k == text_fields[0]} for k in text_fields],
        "questions": [{"name": "label", "type": "label_selection", "labels": list(labels), "required": True}],
        "metadata": [{"name": "confidence", "type": "float"}, {"name": "reason", "type": "terms"}],
    }
    return atomic_write_json(path, {"settings": settings, "records": records})


def _argilla_value(rec: dict[str, Any]) -> Any:
    """The reviewer's label from an Argilla record, in the shapes Argilla 1.x/2.x exports use."""
    if rec.get("reviewed_label") is not None:
        return rec["reviewed_label"]
    flat = rec.get("label.responses")
    if isinstance(flat, list) and flat:
        return flat[0]
    responses = rec.get("responses")
    if isinstance(responses, dict):
        label = responses.get("label")
        if isinstance(label, list) and label:
            return label[0].get("value") if isinstance(label[0], dict) else label[0]
    if isinstance(responses, list):
        for resp in responses:
            if not isinstance(resp, dict):
                continue
            if resp.get("question_name") == "label":
                return resp.get("value")
            value = (resp.get("values") or {}).get("label")
            if isinstance(value, dict):
                return value.get("value")
    return None


def read_review(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reviewed rows from a review JSONL, CSV or Argilla JSON file: each has ``id`` and ``reviewed_label``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"review file not found: {path}", "pass the .jsonl/.csv/.argilla.json written by `label filter`")
    if path.is_dir():
        raise DataError(f"review file is a folder: {path}", "pass the .jsonl/.csv/.argilla.json file itself")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            with path.open(encoding="utf-8-sig", newline="") as fh:  # -sig: spreadsheets often save a BOM
                rows = list(csv.DictReader(fh))
        except UnicodeDecodeError:
            raise DataError(f"{path.name} is not UTF-8 text", "save the sheet as 'CSV UTF-8' and import again") from None
        except csv.Error as exc:
            raise DataError(f"{path.name} is not a readable CSV ({type(exc).__name__})", "re-save it as CSV") from None
        if rows and ("id" not in rows[0] or "reviewed_label" not in rows[0]):
            raise DataError(f"{path.name} lacks an 'id' or 'reviewed_label' column", "keep the header row as exported")
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"{path.name} is not UTF-8 text", "re-export it from Argilla") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{path.name} is not valid JSON (line {exc.lineno})", "re-export it from Argilla") from None
        recs = data.get("records", []) if isinstance(data, dict) else data
        if not isinstance(recs, list) or not all(isinstance(r, dict) for r in recs):
            raise DataError(f"{path.name} is not an Argilla export (no list of records)", "re-export it from Argilla")
        rows = []
        for rec in recs:
            row = {**(rec.get("fields") or {}), "id": rec.get("id"), "reviewed_label": _argilla_value(rec)}
            sugg = rec.get("suggestions") or []
            row["suggested_label"] = sugg[0].get("value") if sugg and isinstance(sugg[0], dict) else None
            rows.append(row)
        return rows
    res = read_jsonl(path, rejects=path.with_name(path.stem + ".rejects.jsonl"))
    if res.rejected_lines:
        raise DataError(f"{path.name} has malformed lines {res.rejected_lines[:10]}",
                        f"they were copied to {path.stem}.rejects.jsonl; repair them and import again")
    return res.records


def import_review(
    labelled: str | os.PathLike,
    reviewed: str | os.PathLike,
    out: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    normalise: Callable[[Any], Any] | None = None,
    queue: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Merge reviewed labels into the labelled (or kept) records and write every record with its ``provenance``:
    ``teacher`` (kept as labelled), ``human`` (set by a reviewer), ``filtered-out`` (rejected by the reviewer, or no
    teacher label) or ``unreviewed`` (queued for review and not reviewed). Only ``teacher`` and ``human`` records
    carry a label, so a review file returned empty-handed or with rows missing never turns queued low-confidence
    labels into training data.

    What was queued comes from the ``<review>.queue.json`` manifest ``label filter`` writes beside the review files
    (or ``queue``); without one, the review file's own rows are the queue. Reviewed rows whose id is not in
    ``labelled`` (the usual case when ``labelled`` is the *kept* file) are added from the review row itself; queued
    ids found in neither file are counted in ``unreviewed`` but cannot be written. A reviewed value must be one of
    ``labels`` (after ``normalise``) or a reject word (``skip``, ``reject``, ``discard``, ``-``); every invalid row
    is listed in one error and nothing is written. A review file without rows is an error.
    """
    base = _load_labelled(labelled)
    rows = read_review(reviewed)
    if not rows:
        raise DataError(f"review file {Path(reviewed).name} has no rows",
                        "pass the review file written by `label filter` after filling its reviewed_label column")
    queued = _queued_ids(queue if queue is not None else find_queue_manifest(reviewed, rows), required=queue is not None)
    allowed = {str(x).lower(): x for x in labels} if labels else None
    decisions: dict[str, Any] = {}
    problems = []
    for n, row in enumerate(rows, start=1):
        rid = row.get("id")
        if rid in (None, ""):
            problems.append(f"row {n}: no id")
            continue
        value = row.get("reviewed_label")
        value = None if value is None or str(value).strip() == "" else str(value).strip()
        if value is not None and value.lower() not in REJECT_WORDS:
            if normalise is not None:
                value = normalise(value)
            elif allowed is not None:
                value = allowed.get(value.lower())
            if value is None or (allowed is not None and str(value).lower() not in allowed):
                problems.append(f"row {n} (id {rid}): unknown label")
                continue
        if str(rid) in decisions and decisions[str(rid)][0] != value:
            problems.append(f"rows {decisions[str(rid)][1].get('_row', '?')} and {n} (id {rid}): conflicting reviews")
            continue
        decisions[str(rid)] = (value, {**row, "_row": n})
    if problems:
        raise DataError("invalid review rows: " + "; ".join(problems[:10]),
                        f"use one of {', '.join(labels) if labels else 'the task labels'} or 'skip'")
    queued = (queued or set()) | set(decisions)
    merged, seen = [], set()
    for rec in base:
        rid = str(rec["id"])
        seen.add(rid)
        if rid in decisions:
            merged.append(_merge(rec, decisions[rid]))
        elif rid in queued:
            merged.append(_merge(rec, (None, {})))  # queued, and its row is missing from the review file
        else:
            merged.append(_merge(rec, None))
    for rid, (value, row) in decisions.items():
        if rid not in seen:
            content = {k: v for k, v in row.items() if k not in ("reviewed_label", "suggested_label", "confidence", "reason", "_row", "queue_id")}
            stub = {**content, "id": rid, "label": row.get("suggested_label"), "confidence": _float(row.get("confidence"))}
            merged.append(_merge(stub, (value, row)))
    atomic_write_jsonl(out, merged)
    counts = {p: sum(r["provenance"] == p for r in merged) for p in ("teacher", "human", "filtered-out", "unreviewed")}
    not_written = len(queued - seen - set(decisions))
    counts["unreviewed"] += not_written
    return {"n": len(merged), **counts, "missing_from_review": len(queued - set(decisions)),
            "unreviewed_not_written": not_written, "out": str(out)}


def find_queue_manifest(reviewed: str | os.PathLike, rows: Sequence[dict[str, Any]]) -> Path:
    """The queue manifest a review sheet belongs to: by the ``queue_id`` its rows carry (searched beside the sheet,
    so a renamed ``review_done.csv`` still finds ``review.queue.json``), else by name. A sheet whose queue id
    matches no manifest there is an error: without its queue, deleted rows would come back as teacher labels."""
    by_name = queue_manifest_path(reviewed)
    ids = {str(r.get("queue_id")) for r in rows if r.get("queue_id") not in (None, "")}
    if not ids:
        return by_name  # a sheet from before queue ids (or an Argilla export): matched by name as before
    if len(ids) > 1:
        raise DataError(f"{Path(reviewed).name} mixes rows of {len(ids)} review queues", "import each queue's sheet on its own")
    wanted = ids.pop()
    for candidate in [by_name, *sorted(Path(reviewed).parent.glob("*.queue.json"))]:
        try:
            if json.loads(candidate.read_text(encoding="utf-8")).get("queue_id") == wanted:
                return candidate
        except (OSError, ValueError, AttributeError):
            continue
    raise DataError(f"the queue manifest of {Path(reviewed).name} (queue {wanted}) is not beside it",
                    "keep the review sheet in the folder with its .queue.json, or pass --queue")


def _queued_ids(path: str | os.PathLike, *, required: bool) -> set[str] | None:
    """The ids ``label filter`` queued for review, from its manifest; None when there is none (and none required)."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise DataError(f"queue manifest not found: {path}", "pass the review.queue.json written by `label filter`")
        return None
    try:
        ids = json.loads(path.read_text(encoding="utf-8")).get("ids")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        ids = None
    if not isinstance(ids, list):
        raise DataError(f"{path.name} is not a queue manifest from `label filter`", "re-run `ehrforge label filter`")
    return {str(i) for i in ids}


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _merge(rec: dict[str, Any], decision: tuple[Any, dict[str, Any]] | None) -> dict[str, Any]:
    """``decision`` is None for a record that was never queued, else (reviewed value or None, review row)."""
    rec = dict(rec)
    if decision is None:
        rec["provenance"] = "teacher" if rec.get("label") is not None else "filtered-out"
        return rec
    value = decision[0]
    rec["teacher_label"] = rec.get("label")
    if value is None:
        rec.update(label=None, provenance="unreviewed")  # queued, nobody looked: not a training label
    elif str(value).lower() in REJECT_WORDS:
        rec.update(label=None, provenance="filtered-out")
    else:
        rec.update(label=value, provenance="human", reviewed_label=value)
    return rec
