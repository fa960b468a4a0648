"""Bring your own tables: JSONL records, or HTML / Markdown / CSV / text files (one file or a folder of them).

* ``.jsonl``: one object per line with a ``text`` field; optional ``id``, ``gold`` (the true label, for evaluation)
  and ``label`` (a training label). Labels may be written ``soe``/``other``, ``yes``/``no``, ``true``/``false`` or
  ``1``/``0``. Lines that are not JSON objects, lack ``text`` or carry an unknown label are skipped, reported by line
  number (never by content) and copied verbatim to a rejects file, so nothing is lost.
* ``.html``/``.htm``: every ``<table>`` becomes one record (the whole file if it has none).
* ``.md``/``.markdown``/``.txt``: the whole file is one record.
* ``.csv``: the whole file is one table, rendered as a Markdown pipe table (what the model sees in training).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ehrforge.core.io import atomic_open
from ehrforge.errors import DataError
from ehrforge.tasks.classify.tables import NEGATIVE, POSITIVE

SUPPORTED = (".jsonl", ".html", ".htm", ".md", ".markdown", ".txt", ".csv")
_TRUE = {"soe", "yes", "true", "1", "positive", "schedule of events"}
_FALSE = {"other", "no", "false", "0", "negative"}
_TABLE = re.compile(r"<table\b.*?</table>", re.IGNORECASE | re.DOTALL)


def normalise_label(value: Any) -> str | None:
    """Map the spellings people use to ``soe``/``other``; ``None`` if it is none of them.

    >>> normalise_label("Yes"), normalise_label(0), normalise_label(True), normalise_label("maybe")
    ('soe', 'other', 'soe', None)
    """
    text = str(value).strip().lower()
    if text in _TRUE:
        return POSITIVE
    if text in _FALSE:
        return NEGATIVE
    return None


@dataclass
class LoadReport:
    """What was read: records plus the 1-based line numbers (JSONL) that were skipped, and why."""

    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    rejects_path: Path | None = None


def load_tables(source: str | Path, rejects: str | Path | None = None) -> LoadReport:
    """Read tables from a file or a folder (searched recursively, in sorted order)."""
    source = Path(source).expanduser()
    if not source.exists():
        raise DataError(f"input not found: {source}", "pass a .jsonl file, a table file (.html/.md/.csv/.txt) or a folder")
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED)
        if not files:
            raise DataError(f"no table files in {source}", f"put files ending in {', '.join(SUPPORTED)} there")
    else:
        if source.suffix.lower() not in SUPPORTED:
            raise DataError(f"unsupported file type: {source.name}", f"use one of {', '.join(SUPPORTED)}")
        files = [source]
    report = LoadReport()
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            rej_path = Path(rejects) if rejects is not None else path.with_name(path.stem + ".rejects.jsonl")
            sub = _load_jsonl(path, rej_path)
            report.records.extend(sub.records)
            report.rejected.extend(sub.rejected)
            report.rejects_path = sub.rejects_path or report.rejects_path
        else:
            report.records.extend(_load_document(path, source if source.is_dir() else path.parent))
    ids = [r["id"] for r in report.records]
    dupes = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if dupes:
        raise DataError(f"duplicate ids in input: {', '.join(dupes[:5])}", "give every record a unique 'id'")
    return report


def _load_jsonl(path: Path, rejects: Path) -> LoadReport:
    report = LoadReport()
    bad_raw: list[str] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            reason = ""
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj, reason = None, "not valid JSON"
            if obj is not None and not isinstance(obj, dict):
                reason = "not a JSON object"
            elif isinstance(obj, dict):
                reason = _check_record(obj)
            if reason:
                report.rejected.append((lineno, reason))
                bad_raw.append(line if line.endswith("\n") else line + "\n")
                continue
            rec = dict(obj)
            rec["id"] = str(rec.get("id", f"{path.stem}-{lineno}"))
            for key in ("gold", "label"):
                if rec.get(key) is not None:
                    rec[key] = normalise_label(rec[key])
            report.records.append(rec)
    if bad_raw:
        with atomic_open(rejects) as fh:
            fh.writelines(bad_raw)
        report.rejects_path = rejects
    return report


def _check_record(obj: dict[str, Any]) -> str:
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        return "missing or empty 'text'"
    for key in ("gold", "label"):
        if obj.get(key) is not None and normalise_label(obj[key]) is None:
            return f"unknown '{key}' value (use soe/other or yes/no)"
    return ""


def _load_document(path: Path, root: Path) -> list[dict[str, Any]]:
    raw = path.read_text(encoding="utf-8", errors="replace")
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        tables = _TABLE.findall(raw) or [raw]
        return [
            {"id": f"{rel}#{k}" if len(tables) > 1 else rel, "text": t.strip(), "format": "html", "source": rel}
            for k, t in enumerate(tables, start=1)
            if t.strip()
        ]
    if suffix == ".csv":
        return [{"id": rel, "text": csv_to_markdown(raw), "format": "markdown", "source": rel}] if raw.strip() else []
    fmt = "markdown" if suffix in (".md", ".markdown") else "text"
    return [{"id": rel, "text": raw.strip(), "format": fmt, "source": rel}] if raw.strip() else []


def csv_to_markdown(raw: str) -> str:
    """Render CSV text as a Markdown pipe table.

    >>> print(csv_to_markdown("Visit,Day\\nV1,1\\n"))
    | Visit | Day |
    |---|---|
    | V1 | 1 |
    """
    rows = [r for r in csv.reader(io.StringIO(raw)) if any(c.strip() for c in r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    lines.extend("| " + " | ".join(r) + " |" for r in rows[1:])
    return "\n".join(lines)
