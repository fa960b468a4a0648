"""A PHI scrubber *check* for synthetic text, so a synthetic set can be shared.

Synthetic notes should contain no names, dates, record numbers, phone numbers, e-mail addresses or ages over 89
(HIPAA Safe Harbor identifiers that a teacher LLM likes to invent to make a note look real). This module finds
them with conservative patterns in **every string field** (and in every line that is not a JSON object, which is
itself a finding: it cannot be shown clean) and reports **type, field, line and offsets only**: it never echoes
the matched text, so its report is itself safe to log or share. It is a check, not a de-identifier: a record with findings is dropped by
:mod:`ehrforge.tasks.extract.synth`, never edited.

The patterns favour recall on the forms LLMs write ("Mr. Smith", "MRN: 483920", "03/14/2021") over catching every
possible identifier; biomedical words that look like names (gene symbols, eponyms such as "Hodgkin") are not
flagged because a bare capitalised word is not treated as a name.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ehrforge.errors import DataError

_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
    r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_CAP = r"[A-Z](?:[a-z]+|'[A-Z][a-z]+)(?:-[A-Z][a-z]+)?"  # Carter, O'Neil, Smith-Jones

#: type -> compiled pattern. Order matters only for readability; overlapping findings are all reported.
PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    "phone": re.compile(r"(?<!\w)(?:\+?1[-.\s]?)?(?:\(\d{3}\)\s?|\d{3}[-.\s])\d{3}[-.\s]\d{4}\b"),
    "mrn": re.compile(r"\b(?:MRN|medical record (?:number|no\.?)|record #|patient id|acct|account)\s*[:#]?\s*[A-Z]{0,3}\d{5,}\b", re.I),
    "ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "date": re.compile(
        r"\b(?:\d{1,2}[/-]\d{1,2}[/-](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2}"
        rf"|{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+{_MONTHS}\.?,?\s+\d{{4}})\b"
    ),
    "name": re.compile(
        rf"\b(?:(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+{_CAP}(?:\s+{_CAP})?"
        rf"|(?:[Pp]atient|[Nn]ame|[Pp]t)\s*(?:name)?\s*:\s*{_CAP}\s+{_CAP})"
    ),
    "age_over_89": re.compile(r"\b(?:9\d|1[0-4]\d)[- ](?:year|yr)s?[- ]old\b", re.I),
}


@dataclass(frozen=True)
class PhiFinding:
    """One suspected identifier: its type and character offsets, never its text."""

    kind: str
    start: int
    end: int


def scan_phi(text: str) -> list[PhiFinding]:
    """Suspected identifiers in ``text``, sorted by offset.

    >>> [f.kind for f in scan_phi("Seen by Dr. Alvarez on 03/14/2021, MRN: 4839201, call 555-867-5309.")]
    ['name', 'date', 'mrn', 'phone']
    >>> scan_phi("Cisplatin-induced nephrotoxicity in a 54-year-old man with Hodgkin lymphoma.")
    []
    """
    found = [PhiFinding(kind, m.start(), m.end()) for kind, pat in PATTERNS.items() for m in pat.finditer(text)]
    return sorted(found, key=lambda f: (f.start, f.end, f.kind))


def string_fields(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value with its field path (``entities.0.text``), keys included.

    A teacher may put an identifier in any field (a ``note`` beside ``text``, an entity's ``text``, even a key),
    so the check looks at all of them.

    A key that itself looks like an identifier is named by its position (``meta.<key 2>``), never spelled out, in
    its own finding and in the paths below it: the report must not carry what it found.

    >>> list(string_fields({"id": "p3", "note": "x", "entities": [{"text": "y"}], "n": 3}))
    [('id', 'p3'), ('note', 'x'), ('entities.0.text', 'y')]
    >>> [path for path, _ in string_fields({"meta": {"a": "1", "MRN 12345678": "x"}})]
    ['meta.a', 'meta.<key 2> (key)', 'meta.<key 2>']
    """
    if isinstance(value, str):
        yield path or "value", value
    elif isinstance(value, dict):
        for position, (key, item) in enumerate(value.items(), start=1):
            identifying = bool(scan_phi(str(key)))
            name = f"<key {position}>" if identifying else str(key)
            child = f"{path}.{name}" if path else name
            if identifying:  # an identifier used as a key is still an identifier
                yield child + " (key)", str(key)
            yield from string_fields(item, child)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from string_fields(item, f"{path}.{i}" if path else str(i))


def _safe_id(rec: dict[str, Any]) -> Any:
    """The record id for the report, unless the id itself looks like an identifier (then it is withheld)."""
    rid = rec.get("id")
    if isinstance(rid, (str, int)) and not isinstance(rid, bool) and not scan_phi(str(rid)):
        return rid
    return None


def phi_report(records: Iterable[dict[str, Any]], *, text_key: str = "text", max_listed: int = 50,
               line_numbers: Sequence[int] | None = None) -> dict[str, Any]:
    """Counts of findings by type over every string field of ``records`` plus up to ``max_listed`` locations as
    (id, field, type, start, end), with the file ``line`` when ``line_numbers`` are given; ``records_without_text``
    counts records lacking ``text_key`` (informational: every field is checked either way).

    >>> phi_report([{"id": "a", "text": "Call 555-867-5309"}, {"id": "b", "text": "No identifiers."}])
    {'records': 2, 'records_with_phi': 1, 'by_type': {'phone': 1}, 'findings': [{'id': 'a', 'field': 'text', 'type': 'phone', 'start': 5, 'end': 17}], 'records_without_text': 0}
    >>> phi_report([{"id": "p3", "note": "Dr. John Smith"}])["findings"]
    [{'id': 'p3', 'field': 'note', 'type': 'name', 'start': 0, 'end': 14}]
    """
    by_type: Counter[str] = Counter()
    listed: list[dict[str, Any]] = []
    n = flagged = without_text = 0
    for i, rec in enumerate(records):
        n += 1
        without_text += text_key not in rec
        hit = False
        for field_path, text in string_fields(rec):
            for f in scan_phi(text):
                hit = True
                by_type[f.kind] += 1
                if len(listed) < max_listed:
                    where = {"line": line_numbers[i]} if line_numbers is not None else {}
                    listed.append({**where, "id": _safe_id(rec), "field": field_path, "type": f.kind,
                                   "start": f.start, "end": f.end})
        flagged += hit
    return {"records": n, "records_with_phi": flagged, "by_type": dict(sorted(by_type.items())), "findings": listed,
            "records_without_text": without_text}


def phi_check_file(path: str | Path, *, text_key: str = "text", max_listed: int = 50) -> dict[str, Any]:
    """:func:`phi_report` over a JSONL file (one record per line); for the CLI ``phi-check`` verb.

    Nothing passes unchecked: a line that is not a JSON object (free text, a torn write, bytes that are not UTF-8)
    cannot be shown to be clean, so it counts as a record with a finding (type ``unreadable_line``, plus whatever
    the patterns find in its raw text). A file that cannot be checked at all (missing, a folder, binary, empty)
    raises :class:`~ehrforge.errors.DataError`. Only types, field paths, line numbers and offsets are reported.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", "check the path")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a JSONL file", "pass one .jsonl file (e.g. from `ehrforge synth`)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {type(exc).__name__}", "check the file's permissions") from None
    if not raw.strip():
        raise DataError(f"{path} is empty: there is nothing to show clean", "pass the JSONL file you mean to share")
    if b"\x00" in raw:
        raise DataError(f"{path} is a binary file, not JSONL text", "pass a UTF-8 JSONL file (one JSON object per line)")
    records: list[dict[str, Any]] = []
    record_lines: list[int] = []
    unreadable: list[dict[str, Any]] = []
    for lineno, line_bytes in enumerate(raw.splitlines(), start=1):
        if not line_bytes.strip():
            continue
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            unreadable.append({"line": lineno, "reason": "not UTF-8", "text": line_bytes.decode("utf-8", "replace")})
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            records.append(obj)
            record_lines.append(lineno)
        else:
            reason = "not JSON" if obj is None else "not a JSON object"
            unreadable.append({"line": lineno, "reason": reason, "text": line})
    report = phi_report(records, text_key=text_key, max_listed=max_listed, line_numbers=record_lines)
    by_type: Counter[str] = Counter(report["by_type"])
    for bad in unreadable:
        by_type["unreadable_line"] += 1
        if len(report["findings"]) < max_listed:
            report["findings"].append({"line": bad["line"], "type": "unreadable_line", "reason": bad["reason"]})
        for f in scan_phi(bad["text"]):
            by_type[f.kind] += 1
            if len(report["findings"]) < max_listed:
                report["findings"].append({"line": bad["line"], "type": f.kind, "start": f.start, "end": f.end})
    report["records"] += len(unreadable)
    report["records_with_phi"] += len(unreadable)  # unreadable = unchecked = not shown clean
    report["by_type"] = dict(sorted(by_type.items()))
    report["findings"].sort(key=lambda f: f.get("line", 0))
    report["file"] = str(path)
    report["unreadable_lines"] = [bad["line"] for bad in unreadable][:max_listed]
    return report
