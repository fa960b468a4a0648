"""Generated fictional patients: valid FHIR R4 (fhir.resources), deterministic, loadable as an export, and rich
enough for every question template, including the hard ones."""

from __future__ import annotations

from pathlib import Path

from ehrforge.tasks.fhirqa.fhir_load import load_fhir, patient_of, validate_resource
from ehrforge.tasks.fhirqa.patients import generate_patient, write_patients
from ehrforge.tasks.fhirqa.synth import build_questions


def test_every_generated_resource_validates_and_belongs_to_its_patient() -> None:
    for i in range(12):
        resources = generate_patient(i, seed=7)
        pid = resources[0]["id"]
        assert resources[0]["resourceType"] == "Patient"
        for res in resources:
            assert validate_resource(res) is None, (res["resourceType"], validate_resource(res))
            assert res["resourceType"] == "Patient" or patient_of(res) == pid
        # medication requests point at a condition of the same record
        conditions = {r["id"] for r in resources if r["resourceType"] == "Condition"}
        for med in (r for r in resources if r["resourceType"] == "MedicationRequest"):
            assert all(ref["reference"].split("/")[1] in conditions for ref in med.get("reasonReference", []))


def test_generation_is_deterministic_and_patients_differ() -> None:
    assert generate_patient(3, seed=1) == generate_patient(3, seed=1)
    ids = {generate_patient(i, seed=1)[0]["id"] for i in range(20)} | {generate_patient(i, seed=2)[0]["id"] for i in range(20)}
    assert len(ids) == 40


def test_written_folder_loads_and_yields_every_category(tmp_path: Path) -> None:
    counts = write_patients(tmp_path / "gen", 15, seed=0)
    store = load_fhir(tmp_path / "gen")
    assert len(store.patient_ids) == 15 and not store.issues
    assert sum(counts.values()) == len(store.resources)
    records = build_questions(store, max_candidates=8)
    assert {"negation", "unanswerable", "multi", "dates", "medications", "conditions"} <= {r["category"] for r in records}
    assert any(r["template"].startswith("never_") for r in records) and any(r["template"].startswith("ever_") for r in records)
