"""FHIR loading: NDJSON, Bundle, folder of resources; invalid resources reported (file, line, reason) and skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ehrforge.errors import DataError
from ehrforge.tasks.fhirqa.fhir_load import bundled_fhir_dir, load_fhir, patient_of

SECRET = "Zyxwvut-Private-Name"  # stands for patient text: must never appear in a reported reason


def _bundled_lines(rtype: str, n: int) -> list[str]:
    return (bundled_fhir_dir() / f"{rtype}.000.jsonl").read_text().splitlines()[:n]


def test_bundled_subset_loads_cleanly() -> None:
    store = load_fhir(bundled_fhir_dir())
    assert store.issues == []
    assert len(store.patient_ids) == 3
    for pid in store.patient_ids:
        res = store.patient_resources(pid)
        assert res[0]["resourceType"] == "Patient"
        assert {r["resourceType"] for r in res} >= {"Condition", "Encounter", "Procedure", "Immunization"}
        assert all(r["resourceType"] == "Patient" or patient_of(r) == pid for r in res)


def test_invalid_lines_are_reported_and_skipped_without_losing_the_rest(tmp_path: Path) -> None:
    good = _bundled_lines("Condition", 3)
    bad_type = json.loads(good[0]) | {"id": "bad-1", "clinicalStatus": SECRET}  # CodeableConcept expected
    unknown = {"resourceType": "NotAThing", "id": "x", "note": SECRET}
    path = tmp_path / "Condition.000.ndjson"
    path.write_text("\n".join([good[0], "{not json " + SECRET, json.dumps(bad_type), good[1], json.dumps(unknown), "", good[2]]) + "\n")
    store = load_fhir(path)
    assert len(store.resources) == 3
    where = [(i.file, i.where) for i in store.issues]
    assert where == [("Condition.000.ndjson", "line 2"), ("Condition.000.ndjson", "line 3"), ("Condition.000.ndjson", "line 5")]
    assert "clinicalStatus" in store.issues[1].reason
    assert "unknown resourceType" in store.issues[2].reason
    assert all(SECRET not in str(i) for i in store.issues)


def test_bundle_and_folder_of_resources(tmp_path: Path) -> None:
    patient = json.loads(_bundled_lines("Patient", 1)[0])
    cond = json.loads(_bundled_lines("Condition", 1)[0])
    cond["subject"] = {"reference": f"urn:uuid:{patient['id']}"}  # transaction-Bundle style reference
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient}, {"resource": {"resourceType": "Condition", "id": "c2", "subject": 5}}, {"resource": cond}],
    }
    (tmp_path / "bundle.json").write_text(json.dumps(bundle, indent=2))
    store = load_fhir(tmp_path / "bundle.json")
    assert [i.where for i in store.issues] == ["entry 1"]
    assert store.patient_resources(patient["id"])[1]["id"] == cond["id"]

    folder = tmp_path / "resources"
    folder.mkdir()
    (folder / "p.json").write_text(json.dumps(patient))
    (folder / "c.json").write_text(json.dumps(json.loads(_bundled_lines("Condition", 1)[0])))
    (folder / "log.ndjson").write_text('{"eventId": "kickoff"}\n{"eventId": "done"}\n')
    store = load_fhir(folder)
    assert len(store.resources) == 2
    assert [(i.file, i.where) for i in store.issues] == [("log.ndjson", "file")]


def test_missing_source_and_unknown_patient_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_fhir(tmp_path / "nope")
    with pytest.raises(DataError, match=r"unknown patient id — list the \d+ known ones with `python -m ehrforge.tasks.fhirqa patients"):
        load_fhir(bundled_fhir_dir()).patient_resources("nobody")


def test_shared_synthea_export_validates(shared_data: Path) -> None:
    store = load_fhir(shared_data / "synthea_fhir_10")
    assert len(store.patient_ids) == 13
    assert len(store.resources) == 7160  # the README table, summed
    assert [i.where for i in store.issues] == ["file"]  # only log.ndjson, which holds no resources


# -- broken input: every problem named (file, where, reason, never a value); nothing written when nothing is valid --
def _patient_line() -> str:
    return _bundled_lines("Patient", 1)[0]


def _broken_inputs(tmp_path: Path) -> dict[str, tuple[Path, str, str]]:
    """name -> (file, expected where, expected reason fragment)."""
    bundle = json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": json.loads(_patient_line())}]})
    cases = {
        "truncated-bundle": ("b.json", bundle[: len(bundle) // 2].encode(), "line 1", "truncated"),
        "binary": ("x.json", b"\x7fELF\x02\x01\x01\x00\x00" + SECRET.encode(), "file", "binary"),
        "empty": ("e.ndjson", b"", "file", "empty file"),
        "non-utf8": ("l.ndjson", ('{"resourceType": "Patient", "id": "p", "name": [{"family": "' + SECRET).encode() + b'\xfc"}]}\n',
                     "line 1", "not UTF-8"),
        "empty-bundle": ("eb.json", b'{"resourceType": "Bundle", "type": "collection", "entry": []}', "file", "without entries"),
    }
    out = {}
    for name, (fname, content, where, reason) in cases.items():
        path = tmp_path / name / fname
        path.parent.mkdir()
        path.write_bytes(content)
        out[name] = (path, where, reason)
    return out


def test_broken_files_are_errors_naming_file_where_and_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, (path, where, reason) in _broken_inputs(tmp_path).items():
        with pytest.raises(DataError, match="no valid FHIR resource") as err:
            load_fhir(path)
        printed = capsys.readouterr().err
        assert f"{path.name} {where}: " in printed and reason in printed, (name, printed)
        assert reason in str(err.value) and SECRET not in printed + str(err.value)


def test_synthesize_from_broken_input_writes_nothing(tmp_path: Path) -> None:
    from ehrforge.tasks.fhirqa.synth import synthesize

    for name, (path, _, _) in _broken_inputs(tmp_path).items():
        out = tmp_path / f"{name}.jsonl"
        with pytest.raises(DataError):
            synthesize(out, n=5, source=path)
        assert not out.exists() and not list(tmp_path.glob(f".{name}.jsonl*")), name


def test_valid_resources_load_and_every_problem_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "Patient.ndjson").write_text(_patient_line() + "\n" + '{"resourceType": "Patient", "id": "q", "gender": 5}\n')
    for name, (path, _, _) in _broken_inputs(tmp_path).items():
        (folder / f"{name}-{path.name}").write_bytes(path.read_bytes())
    store = load_fhir(folder)
    assert len(store.resources) == 1
    printed = capsys.readouterr().err
    assert "Patient.ndjson line 2: Patient.gender" in printed
    assert len(store.issues) == 6 and all(str(i) in printed for i in store.issues)
    assert SECRET not in printed
