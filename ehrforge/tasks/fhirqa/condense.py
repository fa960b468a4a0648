"""FHIR resources → compact one-line text, and token-budget chunking of a patient's record.

A Synthea MedicationRequest is ~1.5 kB of JSON; the facts a question needs fit in one ~25-token line::

    6a4160eb MedicationRequest: lisinopril 10 MG Oral Tablet; active; authored 2019-05-27; for Essential hypertension

Each line starts with a *short id*: the shortest prefix (≥ 8 characters) of the resource id that is unique in the
record. Small models copy 8 hex characters far more reliably than a 36-character UUID, and the prefix maps back to
the full id unambiguously (:func:`short_ids`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: Resource types shown to the model (clinical content; notes, practitioners and locations are left out).
CLINICAL_TYPES = (
    "Patient",
    "Condition",
    "MedicationRequest",
    "AllergyIntolerance",
    "Encounter",
    "Immunization",
    "Procedure",
    "Observation",
    "Device",
)

TokenCounter = Callable[[str], int]


def approx_tokens(text: str) -> int:
    """A tokenizer-free upper-side estimate (≈3 characters per token for codes, dates and ids).

    >>> approx_tokens("abcdef")
    3
    """
    return len(text) // 3 + 1


def _date(value: Any) -> str:
    return value[:10] if isinstance(value, str) else ""


def _concept(cc: Any) -> str:
    if not isinstance(cc, dict):
        return ""
    if cc.get("text"):
        return str(cc["text"])
    for coding in cc.get("coding") or []:
        if coding.get("display"):
            return str(coding["display"])
        if coding.get("code"):
            return str(coding["code"])
    return ""


def _status(res: dict[str, Any], key: str = "clinicalStatus") -> str:
    value = res.get(key)
    if isinstance(value, dict):
        return _concept(value) or ""
    return value if isinstance(value, str) else ""


def _reasons(res: dict[str, Any]) -> str:
    names = [r.get("display", "") for r in res.get("reasonReference") or [] if isinstance(r, dict)]
    names += [_concept(c) for c in res.get("reasonCode") or []]
    names = [n for n in names if n]
    return ", ".join(dict.fromkeys(names))


def _is_synthetic(res: dict[str, Any]) -> bool:
    return any(t.get("code") == "synthetic" for t in (res.get("meta") or {}).get("tag") or [])


def when(res: dict[str, Any]) -> str:
    """The clinically relevant date of a resource (YYYY-MM-DD), or ""."""
    for key in ("onsetDateTime", "authoredOn", "occurrenceDateTime", "performedDateTime", "effectiveDateTime", "recordedDate", "birthDate"):
        if res.get(key):
            return _date(res[key])
    for key in ("period", "performedPeriod"):
        if isinstance(res.get(key), dict) and res[key].get("start"):
            return _date(res[key]["start"])
    return ""


def describe(res: dict[str, Any]) -> str:
    """The facts of one resource, without its id (deterministic; same input → same text)."""
    rtype = res["resourceType"]
    parts: list[str] = []
    if rtype == "Patient":
        parts = [res.get("gender", ""), f"born {_date(res.get('birthDate'))}"]
        if res.get("deceasedDateTime"):
            parts.append(f"died {_date(res['deceasedDateTime'])}")
    elif rtype == "Condition":
        parts = [_concept(res.get("code")), _status(res), f"onset {_date(res.get('onsetDateTime'))}"]
        if res.get("abatementDateTime"):
            parts.append(f"resolved {_date(res['abatementDateTime'])}")
    elif rtype == "MedicationRequest":
        med = _concept(res.get("medicationCodeableConcept")) or (res.get("medicationReference") or {}).get("display", "")
        parts = [med, res.get("status", ""), f"authored {_date(res.get('authoredOn'))}"]
        if _reasons(res):
            parts.append(f"for {_reasons(res)}")
    elif rtype == "AllergyIntolerance":
        parts = [_concept(res.get("code")), _status(res), ",".join(res.get("category") or []), f"criticality {res.get('criticality', '')}"]
        reactions = [_concept(m) for r in res.get("reaction") or [] for m in r.get("manifestation") or []]
        if reactions:
            parts.append("reactions " + ", ".join(reactions[:4]))
    elif rtype == "Encounter":
        period = res.get("period") or {}
        cls = (res.get("class") or {}).get("code", "")
        types = ", ".join(_concept(t) for t in res.get("type") or [])
        parts = [types, cls, f"{_date(period.get('start'))}"]
        if _reasons(res):
            parts.append(f"reason {_reasons(res)}")
    elif rtype == "Immunization":
        parts = [_concept(res.get("vaccineCode")), _date(res.get("occurrenceDateTime"))]
    elif rtype == "Procedure":
        when = res.get("performedDateTime") or (res.get("performedPeriod") or {}).get("start")
        parts = [_concept(res.get("code")), _date(when)]
        if _reasons(res):
            parts.append(f"for {_reasons(res)}")
    elif rtype == "Observation":
        q = res.get("valueQuantity") or {}
        value = f"{q.get('value')} {q.get('unit', '')}".strip() if q else _concept(res.get("valueCodeableConcept"))
        parts = [f"{_concept(res.get('code'))} = {value}", _date(res.get("effectiveDateTime"))]
    elif rtype == "Device":
        names = [d.get("name", "") for d in res.get("deviceName") or []]
        parts = [", ".join(names) or _concept(res.get("type")), res.get("status", "")]
    else:
        parts = [_concept(res.get("code"))]
    if _is_synthetic(res):
        parts.append("synthetic")
    return "; ".join(p for p in parts if p and p.strip() not in ("onset", "authored", "born", "criticality"))


def short_ids(ids: Sequence[str], min_len: int = 8) -> dict[str, str]:
    """Full id → shortest prefix (≥ ``min_len``) unique among ``ids``.

    >>> short_ids(["abcdefgh-1", "abcdefgh-2", "12345678-x"])
    {'abcdefgh-1': 'abcdefgh-1', 'abcdefgh-2': 'abcdefgh-2', '12345678-x': '12345678'}
    """
    out: dict[str, str] = {}
    for full in ids:
        n = min(min_len, len(full))
        while n < len(full) and any(o != full and o.startswith(full[:n]) for o in ids):
            n += 1
        out[full] = full[:n]
    return out


def condense(resources: Sequence[dict[str, Any]], *, types: Sequence[str] = CLINICAL_TYPES) -> list[dict[str, str]]:
    """One ``{"id", "type", "short", "line", "date"}`` per clinical resource, sorted by type, then date."""
    chosen = [r for r in resources if r["resourceType"] in types]
    shorts = short_ids([r["id"] for r in chosen])
    rows = []
    for res in chosen:
        short = shorts[res["id"]]
        line = f"{short} {res['resourceType']}: {describe(res)}"
        rows.append({"id": res["id"], "type": res["resourceType"], "short": short, "line": line, "date": when(res)})
    order = {t: i for i, t in enumerate(types)}
    return sorted(rows, key=lambda r: (order[r["type"]], r["date"], r["id"]))


def chunk_lines(lines: Sequence[str], budget: int, count: TokenCounter = approx_tokens) -> list[list[int]]:
    """Split line indices into consecutive chunks whose token count (one newline per line) stays within ``budget``.

    A line longer than the whole budget goes alone in its chunk (it is never cut: a half resource misleads).

    >>> chunk_lines(["aaaaa", "bbbbb", "ccccc"], budget=6, count=lambda s: 3)
    [[0], [1], [2]]
    >>> chunk_lines(["a", "b", "c"], budget=8, count=lambda s: 3)
    [[0, 1], [2]]
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i, line in enumerate(lines):
        cost = count(line) + 1
        if current and used + cost > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(i)
        used += cost
    if current:
        chunks.append(current)
    return chunks
