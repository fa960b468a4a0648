"""A PHI scrubber *check* for synthetic text, so a synthetic set can be shared.

Synthetic notes should contain no names, dates, record numbers, phone numbers, e-mail addresses or ages over 89
(HIPAA Safe Harbor identifiers that a teacher LLM likes to invent to make a note look real). This module finds
them with conservative patterns and reports **type and offsets only**: it never echoes the matched text, so its
report is itself safe to log or share. It is a check, not a de-identifier: a record with findings is dropped by
:mod:`ehrforge.tasks.extract.synth`, never edited.

The patterns favour recall on the forms LLMs write ("Mr. Smith", "MRN: 483920", "03/14/2021") over catching every
possible identifier; biomedical words that look like names (gene symbols, eponyms such as "Hodgkin") are not
flagged because a bare capitalised word is not treated as a name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def phi_report(records: Iterable[dict[str, Any]], *, text_key: str = "text", max_listed: int = 50) -> dict[str, Any]:
    """Counts of findings by type over ``records`` plus up to ``max_listed`` locations as (id, type, start, end).

    >>> phi_report([{"id": "a", "text": "Call 555-867-5309"}, {"id": "b", "text": "No identifiers."}])
    {'records': 2, 'records_with_phi': 1, 'by_type': {'phone': 1}, 'findings': [{'id': 'a', 'type': 'phone', 'start': 5, 'end': 17}]}
    """
    by_type: Counter[str] = Counter()
    listed: list[dict[str, Any]] = []
    n = flagged = 0
    for rec in records:
        n += 1
        findings = scan_phi(str(rec.get(text_key, "")))
        if findings:
            flagged += 1
        for f in findings:
            by_type[f.kind] += 1
            if len(listed) < max_listed:
                listed.append({"id": rec.get("id"), "type": f.kind, "start": f.start, "end": f.end})
    return {"records": n, "records_with_phi": flagged, "by_type": dict(sorted(by_type.items())), "findings": listed}


def phi_check_file(path: str | Path, *, text_key: str = "text") -> dict[str, Any]:
    """:func:`phi_report` over a span JSONL file (one record per line); for a CLI ``phi-check`` verb.

    Malformed lines are counted (``unreadable_lines``), not echoed.
    """
    from ehrforge.core.io import read_jsonl

    result = read_jsonl(path)
    report = phi_report(result.records, text_key=text_key)
    report["file"] = str(path)
    report["unreadable_lines"] = len(result.rejected_lines)
    return report
