"""Deterministic synthetic Observations (vitals and labs with LOINC codes) for records that have none.

The shared Synthea snapshot lost its Observation files, yet questions about labs and vitals are among the most
common a clinician asks. We add a small, plausible set per patient: vitals at the patient's most recent encounters
and labs at the latest two. Values depend only on the patient id, the code and the date (a seeded RNG), so the same
record always gets the same observations and ids, and they shift with the patient's conditions (diabetes raises
HbA1c and glucose, hypertension raises blood pressure, kidney disease raises creatinine) so answers stay coherent.

Every generated resource carries ``meta.tag`` code ``synthetic`` and the condensed line says "synthetic"; they
validate as FHIR R4 Observations.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from typing import Any

SYNTHETIC_TAG = {"system": "https://ehrforge.dev/fhir/tags", "code": "synthetic", "display": "synthetic data added by ehrforge"}
_NAMESPACE = uuid.UUID("6f0f3f4e-5b1a-4c57-9a51-0e8b6c1f0a11")

#: (LOINC code, display, unit (UCUM), category, normal range, shifted range, conditions that shift it, decimals)
OBSERVATION_CODES: list[tuple[str, str, str, str, tuple[float, float], tuple[float, float], tuple[str, ...], int]] = [
    ("8480-6", "Systolic blood pressure", "mm[Hg]", "vital-signs", (108, 128), (138, 162), ("hypertension",), 0),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", "vital-signs", (66, 82), (86, 98), ("hypertension",), 0),
    ("8867-4", "Heart rate", "/min", "vital-signs", (60, 88), (60, 88), (), 0),
    ("29463-7", "Body weight", "kg", "vital-signs", (55, 85), (85, 110), ("obesity",), 1),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "vital-signs", (19.5, 27.0), (30.5, 38.0), ("obesity",), 1),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "laboratory", (4.8, 5.6), (6.8, 9.2), ("diabetes",), 1),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory", (72, 99), (130, 210), ("diabetes",), 0),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory", (0.6, 1.1), (1.8, 4.5), ("renal", "kidney"), 2),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory", (150, 195), (205, 260), ("hyperlipidemia",), 0),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "laboratory", (12.0, 15.5), (9.0, 11.5), ("anemia",), 1),
]

VITAL_ENCOUNTERS = 4  # vitals at the most recent 4 encounters
LAB_ENCOUNTERS = 2  # labs at the most recent 2


def _rng(*parts: str) -> random.Random:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _condition_text(resources: list[dict[str, Any]]) -> str:
    texts = []
    for res in resources:
        if res["resourceType"] == "Condition":
            texts.append(str((res.get("code") or {}).get("text", "")))
    return " ".join(texts).lower()


def synthetic_observations(patient_id: str, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Observations for one patient's record (empty when it already has Observations or no encounters)."""
    if any(r["resourceType"] == "Observation" for r in resources):
        return []
    encounters = sorted(
        (r for r in resources if r["resourceType"] == "Encounter" and (r.get("period") or {}).get("start")),
        key=lambda r: r["period"]["start"],
    )
    if not encounters:
        return []
    conditions = _condition_text(resources)
    out = []
    recent = encounters[-VITAL_ENCOUNTERS:]
    for rank, enc in enumerate(reversed(recent)):
        when = enc["period"]["start"]
        for code, display, unit, category, normal, shifted, triggers, decimals in OBSERVATION_CODES:
            if category == "laboratory" and rank >= LAB_ENCOUNTERS:
                continue
            lo, hi = shifted if any(t in conditions for t in triggers) else normal
            value = round(_rng(patient_id, code, when).uniform(lo, hi), decimals)
            if decimals == 0:
                value = int(value)
            out.append(
                {
                    "resourceType": "Observation",
                    "id": str(uuid.uuid5(_NAMESPACE, f"{patient_id}/{code}/{when}")),
                    "meta": {"tag": [dict(SYNTHETIC_TAG)]},
                    "status": "final",
                    "category": [
                        {
                            "coding": [
                                {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}
                            ]
                        }
                    ],
                    "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "encounter": {"reference": f"Encounter/{enc['id']}"},
                    "effectiveDateTime": when,
                    "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
                }
            )
    return out


def with_synthetic_observations(patient_id: str, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The record plus its synthetic observations (idempotent: a record with Observations is returned as is)."""
    return list(resources) + synthetic_observations(patient_id, resources)
