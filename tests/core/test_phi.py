"""The PHI check finds each identifier type, reports offsets only, and stays quiet on biomedical text."""

from __future__ import annotations

import json

import pytest

from ehrforge.core.phi import phi_report, scan_phi

POSITIVES = [
    ("name", "Seen today by Dr. Maria Alvarez in clinic."),
    ("name", "Patient name: John Carter, admitted for pneumonia."),
    ("name", "Mrs. O'Neil reports nausea."),
    ("date", "Admitted on 03/14/2021 with chest pain."),
    ("date", "Discharged 2019-11-02."),
    ("date", "Surgery on March 3, 2020 was uneventful."),
    ("date", "Seen 12 Jan 2022."),
    ("mrn", "MRN: 48392017"),
    ("mrn", "Medical record number 0048213"),
    ("phone", "Call (617) 555-0142 with results."),
    ("phone", "Pager 617-555-0142."),
    ("email", "Send to j.carter@example-hospital.org please."),
    ("ssn", "SSN 123-45-6789 on file."),
    ("age_over_89", "A 93-year-old woman with dementia."),
]


@pytest.mark.parametrize("kind, text", POSITIVES)
def test_each_identifier_type_is_found(kind, text):
    assert kind in {f.kind for f in scan_phi(text)}


def test_findings_carry_offsets_that_cover_the_identifier():
    text = "Call 617-555-0142 now"
    (f,) = scan_phi(text)
    assert (f.kind, text[f.start : f.end]) == ("phone", "617-555-0142")


@pytest.mark.parametrize("text", [
    "Cisplatin-induced nephrotoxicity in a 54-year-old man with Hodgkin lymphoma.",
    "Patients received 5 mg/kg of doxorubicin on days 1-3 (n = 24, p < 0.05).",
    "The BRCA1 gene and von Willebrand disease were studied in 1995 and 2001.",
    "Dr. showed no change; dose 10/20 mg.",
])
def test_biomedical_text_is_not_flagged(text):
    assert scan_phi(text) == []


def test_real_abstract_sentences_are_clean():
    from ehrforge.tasks.extract.task import ExtractTask

    report = phi_report(ExtractTask(dataset="sample").load("train"))
    assert report["records"] == 300 and report["records_with_phi"] == 0


def test_report_never_contains_the_matched_text():
    report = phi_report([{"id": "n1", "text": "Dr. Gregory House, MRN 99887766, house@ppth.org"}])
    assert report["records_with_phi"] == 1
    assert set(report["by_type"]) == {"name", "mrn", "email"}
    flat = repr(report)
    for secret in ("Gregory", "House", "99887766", "ppth"):
        assert secret not in flat


def test_file_check_counts_without_echoing(tmp_path):
    from ehrforge.core.phi import phi_check_file

    path = tmp_path / "notes.jsonl"
    path.write_text('{"id": "1", "text": "Email me at a.b@c.org"}\n{"id": "2", "text": "Clean note."}\nnot json\n')
    report = phi_check_file(path)
    # the unparseable line cannot be shown clean: it is a finding, not just a count
    assert (report["records_with_phi"], report["by_type"], report["unreadable_lines"]) == (2, {"email": 1, "unreadable_line": 1}, [3])
    assert "a.b@c.org" not in repr(report)


# -- the CLI verb, as a user runs it (a real file, a real process) ------------------------------------------------
def _phi_check(path):
    import subprocess
    import sys

    code = "import sys; from ehrforge.cli import main; sys.argv = ['ehrforge', 'phi-check', sys.argv[1]]; main()"
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)


def test_phi_in_an_unparseable_line_and_in_another_field_fails_the_check(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('John Smith MRN 12345678 phone 555-123-4567\n{"id":"p3","note":"Dr. John Smith, MRN 12345678"}\n')
    proc = _phi_check(path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["records_with_phi"] == 2 and report["unreadable_lines"] == [1]
    assert {(f.get("line"), f.get("field"), f["type"]) for f in report["findings"]} >= {
        (1, None, "unreadable_line"), (1, None, "mrn"), (1, None, "phone"), (2, "note", "name"), (2, "note", "mrn")}
    for secret in ("John", "Smith", "12345678", "555-123"):
        assert secret not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty"),
    (b"\n  \n", "is empty"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00MRN 12345678", "binary"),
])
def test_empty_or_binary_file_is_an_error_not_a_clean_pass(tmp_path, content, expected):
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    proc = _phi_check(path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and expected in proc.stderr and "Traceback" not in proc.stderr
    assert "12345678" not in proc.stdout + proc.stderr


def test_a_folder_is_one_clear_line(tmp_path):
    proc = _phi_check(tmp_path)
    assert proc.returncode == 1 and "is a folder" in proc.stderr and "unexpected" not in proc.stderr


def test_a_non_utf8_line_is_a_finding(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_bytes(b'{"id": "1", "text": "fine"}\n{"id": "2", "text": "caf\xe9 MRN 12345678"}\n')
    proc = _phi_check(path)
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert {f["type"] for f in report["findings"] if f.get("line") == 2} == {"unreadable_line", "mrn"}


def test_nested_fields_keys_and_ids_are_checked_and_a_phi_id_is_withheld(tmp_path):
    from ehrforge.core.phi import phi_check_file

    path = tmp_path / "n.jsonl"
    recs = [{"id": "MRN 99887766", "text": "clean"}, {"id": "b", "text": "clean", "meta": {"author": ["Dr. Gregory House"]}}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    report = phi_check_file(path)
    assert report["records_with_phi"] == 2
    fields = {(f["id"], f["field"]) for f in report["findings"]}
    assert fields == {(None, "id"), ("b", "meta.author.0")}
    assert "99887766" not in repr(report) and "Gregory" not in repr(report)


def test_clean_synthetic_output_still_passes(tmp_path):
    from ehrforge.tasks.extract.task import ExtractTask

    out = tmp_path / "synth.jsonl"
    ExtractTask().synthesize(out, n=5, seed=1)
    proc = _phi_check(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["records"] == 5
