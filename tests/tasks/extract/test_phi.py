"""The PHI check finds each identifier type, reports offsets only, and stays quiet on biomedical text."""

from __future__ import annotations

import pytest

from ehrforge.tasks.extract.phi import phi_report, scan_phi

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
    from ehrforge.tasks.extract.phi import phi_check_file

    path = tmp_path / "notes.jsonl"
    path.write_text('{"id": "1", "text": "Email me at a.b@c.org"}\n{"id": "2", "text": "Clean note."}\nnot json\n')
    report = phi_check_file(path)
    assert (report["records_with_phi"], report["by_type"], report["unreadable_lines"]) == (1, {"email": 1}, 1)
    assert "a.b@c.org" not in repr(report)
