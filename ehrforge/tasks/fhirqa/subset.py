"""Cut a small, self-consistent subset out of a FHIR export (how the bundled demo data was made).

Per patient it keeps the most recent encounters and what hangs off them (conditions, medication requests,
procedures, immunizations recorded in those encounters), plus every still-active condition and medication and
every allergy, so questions about "current" state stay answerable. Narrative ``text`` is dropped (size) and
clinical notes (DocumentReference) are left out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ehrforge.core.io import atomic_write_jsonl
from ehrforge.tasks.fhirqa.fhir_load import load_fhir

KEPT_TYPES = ("Patient", "Encounter", "Condition", "MedicationRequest", "Procedure", "Immunization", "AllergyIntolerance", "Device")


def _encounter_of(res: dict[str, Any]) -> str | None:
    ref = (res.get("encounter") or {}).get("reference", "")
    return ref.split("/", 1)[1] if ref.startswith("Encounter/") else None


def _is_active(res: dict[str, Any]) -> bool:
    if res["resourceType"] == "MedicationRequest":
        return res.get("status") == "active"
    codes = [c.get("code") for c in (res.get("clinicalStatus") or {}).get("coding", [])]
    return "active" in codes


def make_subset(source: str | os.PathLike, out_dir: str | os.PathLike, patient_ids: list[str], *, max_encounters: int = 30) -> dict[str, int]:
    """Write ``<Type>.000.jsonl`` files for ``patient_ids`` into ``out_dir``; returns resource counts per type."""
    store = load_fhir(source)
    by_type: dict[str, list[dict[str, Any]]] = {t: [] for t in KEPT_TYPES}
    for pid in patient_ids:
        resources = store.patient_resources(pid)
        encounters = sorted((r for r in resources if r["resourceType"] == "Encounter"), key=lambda r: r["period"]["start"])
        kept_enc = {r["id"] for r in encounters[-max_encounters:]}
        for res in resources:
            rtype = res["resourceType"]
            if rtype not in KEPT_TYPES:
                continue
            keep = (
                rtype in ("Patient", "AllergyIntolerance", "Device")
                or (rtype == "Encounter" and res["id"] in kept_enc)
                or _encounter_of(res) in kept_enc
                or (rtype in ("Condition", "MedicationRequest") and _is_active(res))
            )
            if keep:
                slim = {k: v for k, v in res.items() if k != "text"}
                by_type[rtype].append(slim)
    out = Path(out_dir)
    counts = {}
    for rtype, items in by_type.items():
        if items:
            atomic_write_jsonl(out / f"{rtype}.000.jsonl", sorted(items, key=lambda r: r["id"]))
            counts[rtype] = len(items)
    return counts
