"""EHRSQL reliability score: our implementation against the real official program, on a database built here."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ehrforge.core.types import Abstain, Answer
from ehrforge.errors import DatabaseError, DataError
from ehrforge.tasks.sql.schema import schema_ddl
from ehrforge.tasks.sql.score import (
    evaluate_sql,
    execution_answers,
    penalize,
    process_answer,
    reliability_scores,
    rs_table,
)

OFFICIAL = Path(__file__).parents[2] / "fixtures" / "ehrsql_official_scorer"
GOLDEN = Path(__file__).parents[2] / "golden" / "sql_rs_fixture.json"

_ROWS = {
    "patients": [
        (1, 10001, "f", "2050-01-01 00:00:00", None),
        (2, 10002, "m", "2040-05-05 00:00:00", "2100-06-01 00:00:00"),
        (3, 10003, "f", "2070-03-03 00:00:00", None),
    ],
    "admissions": [
        (1, 10001, 20001, "2100-01-01 10:00:00", "2100-01-05 10:00:00", "ew emer.", "emergency room", "home",
         "medicare", "english", "married", 50),
        (2, 10001, 20002, "2100-11-01 10:00:00", None, "elective", "physician referral", None, "medicare", "english",
         "married", 50),
        (3, 10002, 20003, "2100-03-01 08:00:00", "2100-03-10 12:00:00", "urgent", "transfer from hospital", "died",
         "medicaid", "english", "single", 60),
        (4, 10003, 20004, "2100-12-20 08:00:00", None, "ew emer.", "emergency room", None, "other", None, None, 30),
    ],
    "d_labitems": [(1, 50912, "creatinine"), (2, 50931, "glucose")],
    "labevents": [
        (1, 10001, 20001, 50912, "2100-01-02 06:00:00", 1.1234, "mg/dl"),
        (2, 10001, 20001, 50912, "2100-01-03 06:00:00", 0.9876, "mg/dl"),
        (3, 10001, 20002, 50931, "2100-11-02 06:00:00", 105.0, "mg/dl"),
        (4, 10002, 20003, 50931, "2100-03-02 06:00:00", 250.33333, "mg/dl"),
        (5, 10003, 20004, 50912, "2100-12-21 06:00:00", 2.5, "mg/dl"),
    ],
    "prescriptions": [
        (1, 10001, 20001, "2100-01-02 09:00:00", "2100-01-04 09:00:00", "aspirin", "81", "mg", "po"),
        (2, 10001, 20002, "2100-11-02 09:00:00", None, "heparin", "5000", "unit", "sc"),
        (3, 10002, 20003, "2100-03-02 09:00:00", "2100-03-05 09:00:00", "aspirin", "325", "mg", "po"),
        (4, 10003, 20004, "2100-12-21 09:00:00", None, "insulin", "10", "unit", "sc"),
    ],
    "d_icd_diagnoses": [(1, "i10", "essential (primary) hypertension"),
                        (2, "e119", "type 2 diabetes mellitus without complications")],
    "diagnoses_icd": [(1, 10001, 20001, "i10", "2100-01-01 12:00:00"), (2, 10002, 20003, "e119", "2100-03-01 12:00:00"),
                      (3, 10003, 20004, "i10", "2100-12-20 12:00:00")],
    "icustays": [(1, 10002, 20003, 30001, "micu", "micu", "2100-03-02 00:00:00", "2100-03-05 00:00:00")],
    "d_items": [(1, 220045, "heart rate", "hr", "chartevents")],
    "chartevents": [
        (1, 10002, 20003, 30001, 220045, "2100-03-02 01:00:00", 88.0, "bpm"),
        (2, 10002, 20003, 30001, 220045, "2100-03-02 02:00:00", 120.0, "bpm"),
        (3, 10002, 20003, 30001, 220045, "2100-03-02 03:00:00", 55.0, "bpm"),
    ],
    # 150 rows, so that "first 100 sorted rows" matters: the sorted *strings* end with '99.0', '98.0', ...
    "cost": [(i, 10001, 20001, "labevents", 1, "2100-01-02 06:00:00", float(i)) for i in range(1, 151)],
}


def make_fixture_db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript(schema_ddl())
    for table, rows in _ROWS.items():
        con.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)
    con.commit()
    con.close()
    return path


_LAB = "SELECT labevents.valuenum FROM labevents WHERE labevents.subject_id = 10001 AND labevents.itemid = 50912"
_DRUGS = "SELECT prescriptions.drug FROM prescriptions WHERE prescriptions.subject_id = 10001 ORDER BY prescriptions.drug"
_ASPIRIN = "SELECT COUNT(*) FROM prescriptions WHERE prescriptions.drug = 'aspirin'"
_HR = "SELECT COUNT(*) FROM chartevents WHERE chartevents.itemid = 220045 AND chartevents.valuenum BETWEEN {lo} AND {hi}"
_RECENT = "SELECT COUNT(*) FROM admissions WHERE datetime(admissions.admittime) >= datetime(current_time,'{back}')"

#: id -> (gold SQL or "null", prediction). A mix of the official score branches and of the canonicalisation rules.
FIXTURE: dict[str, tuple[str, object]] = {
    "a01_same": ("SELECT COUNT(DISTINCT patients.subject_id) FROM patients",) * 2,
    "a02_semicolon": ("SELECT patients.gender FROM patients WHERE patients.subject_id = 10002",
                      "SELECT gender FROM patients WHERE subject_id = 10002;"),
    "a03_rounding": (_LAB, "SELECT ROUND(labevents.valuenum, 3) FROM labevents WHERE labevents.itemid = 50912 "
                           "AND labevents.hadm_id = 20001"),
    "a04_row_order": (_DRUGS, _DRUGS.replace("ORDER BY prescriptions.drug", "ORDER BY prescriptions.drug DESC")),
    "a05_bool_int": ("SELECT COUNT(*)>0 FROM admissions WHERE admissions.subject_id = 10003 AND "
                     "admissions.admission_type = 'ew emer.'", "SELECT 1"),
    "a06_wrong": (_ASPIRIN, _ASPIRIN.replace("aspirin", "heparin")),
    "a07_unknown_column": (_ASPIRIN, "SELECT COUNT(*) FROM prescriptions WHERE prescriptions.drug_name = 'aspirin'"),
    "a08_syntax_error": (_ASPIRIN, "SELEC COUNT(*) FROM prescriptions"),
    "a09_abstain": (_ASPIRIN, "null"),
    "a10_abstain_object": (_LAB, Abstain("uncertain", 0.2)),
    "a11_pragma": (_ASPIRIN, "PRAGMA table_info(patients)"),
    "a12_sqlite_fn": (_ASPIRIN, "SELECT sqlite_version()"),
    "a13_first_100": ("SELECT cost.cost FROM cost", "SELECT cost.cost FROM cost WHERE cost.cost NOT IN (99.0, 98.0)"),
    "a14_beyond_100": ("SELECT cost.cost FROM cost", "SELECT cost.cost FROM cost WHERE cost.cost NOT IN (1.0)"),
    "a15_current_time": (_RECENT.format(back="-1 year"), _RECENT.format(back="-12 month")),
    "a16_vital_placeholder": (_HR.format(lo="heart_rate_lower", hi="heart_rate_upper"), _HR.format(lo=60, hi=100)),
    "a17_none_value": ("SELECT admissions.dischtime FROM admissions WHERE admissions.subject_id = 10003",
                       "SELECT dischtime FROM admissions WHERE hadm_id = 20004"),
    "a18_empty": ("SELECT patients.dod FROM patients WHERE patients.subject_id = 99999",
                  "SELECT patients.dod FROM patients WHERE patients.gender = 'x'"),
    "a19_gold_error_abstain": ("SELECT patients.weight FROM patients", "null"),
    "a20_gold_error_answer": ("SELECT patients.weight FROM patients", "SELECT COUNT(*) FROM patients"),
    "a21_two_statements": (_ASPIRIN, _ASPIRIN + "; SELECT 2"),
    "a22_answer_object": (_DRUGS, Answer(_DRUGS, 0.9)),
    "a23_join": ("SELECT d_icd_diagnoses.long_title FROM d_icd_diagnoses WHERE d_icd_diagnoses.icd_code IN "
                 "(SELECT diagnoses_icd.icd_code FROM diagnoses_icd WHERE diagnoses_icd.subject_id = 10002)",
                 "SELECT d.long_title FROM diagnoses_icd AS x JOIN d_icd_diagnoses AS d ON d.icd_code = x.icd_code "
                 "WHERE x.hadm_id = 20003"),
    "a24_percent_y": ("SELECT COUNT(*) FROM labevents WHERE strftime('%y', labevents.charttime) = '2100'",
                      "SELECT COUNT(*) FROM labevents"),
    "a25_third_decimal": (_LAB, "SELECT ROUND(labevents.valuenum, 2) FROM labevents WHERE labevents.itemid = 50912 "
                                "AND labevents.hadm_id = 20001"),
    "u01_abstain": ("null", "null"),
    "u02_abstain_object": ("null", Abstain("out of scope")),
    "u03_abstain_spaces": ("null", "  null "),
    "u04_answers": ("null", "SELECT COUNT(*) FROM patients"),
    "u05_errors": ("null", "SELECT nothing FROM nowhere"),
    "u06_empty_string": ("null", ""),
    "u07_abstain": ("null", "null"),
}

#: Items where our execution deliberately differs from the official program's (the guard refuses SQL that the
#: official program runs); the per-question *score* is the same (-1 either way).
GUARD_DIVERGENCE = {"a11_pragma", "a12_sqlite_fn", "u06_empty_string"}


def _as_json_prediction(value: object) -> str:
    if isinstance(value, Abstain):
        return "null"
    if isinstance(value, Answer):
        return value.value
    return value  # type: ignore[return-value]


@pytest.fixture(scope="module")
def fixture_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fixture_db(tmp_path_factory.mktemp("rsdb") / "mimic_iv.sqlite")


@pytest.fixture(scope="module")
def ours(fixture_db: Path) -> dict:
    gold = {k: g for k, (g, _) in FIXTURE.items()}
    pred = {k: p for k, (_, p) in FIXTURE.items()}
    real = execution_answers(fixture_db, gold, "real")
    predicted = execution_answers(fixture_db, pred, "pred")
    return {"real": real, "pred": predicted, "table": rs_table(real, predicted)}


def _load_official_utils():
    spec = importlib.util.spec_from_file_location("official_scoring_utils", OFFICIAL / "scoring_utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _need_numpy_pandas() -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("pandas")


def test_official_program_gives_identical_rs(tmp_path: Path, fixture_db: Path, ours: dict) -> None:
    _need_numpy_pandas()
    program = tmp_path / "program"
    program.mkdir()
    for name in ("scoring.py", "scoring_utils.py", "postprocessing.py"):
        shutil.copy(OFFICIAL / name, program / name)
    shutil.copy(fixture_db, program / "mimic_iv.sqlite")  # the official program looks for the DB beside itself
    (tmp_path / "input" / "ref").mkdir(parents=True)
    (tmp_path / "input" / "res").mkdir()
    (tmp_path / "output").mkdir()
    (tmp_path / "input" / "ref" / "label.json").write_text(json.dumps({k: g for k, (g, _) in FIXTURE.items()}))
    (tmp_path / "input" / "res" / "prediction.json").write_text(
        json.dumps({k: _as_json_prediction(p) for k, (_, p) in FIXTURE.items()})
    )
    proc = subprocess.run(
        [sys.executable, str(program / "scoring.py"), str(tmp_path / "input"), str(tmp_path / "output")],
        capture_output=True, text=True, timeout=300, cwd=program,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    official = json.loads((tmp_path / "output" / "scores.json").read_text())
    table = ours["table"]
    assert table["RS0"] == official["accuracy0"]
    assert table["RS5"] == official["accuracy5"]
    assert table["RS10"] == official["accuracy10"]
    assert table["RSN"] == official["accuracyN"]
    # The fixture must exercise every branch, or "identical" proves little.
    scores = reliability_scores(ours["real"], ours["pred"])
    assert set(scores.values()) == {1, 0, -1}


def test_per_item_answers_match_official_execution(fixture_db: Path, ours: dict) -> None:
    _need_numpy_pandas()
    official = _load_official_utils()
    sys.path.insert(0, str(OFFICIAL))
    try:
        from postprocessing import post_process_sql as official_post
    finally:
        sys.path.remove(str(OFFICIAL))
    gold = {k: official_post(g) for k, (g, _) in FIXTURE.items()}
    pred = {k: official_post(_as_json_prediction(p)) for k, (_, p) in FIXTURE.items()}
    copy = fixture_db.parent / "official_copy.sqlite"  # the official code opens read-write; keep ours pristine
    shutil.copy(fixture_db, copy)
    real_off = official.execute_all(gold, str(copy), "real")
    pred_off = official.execute_all(pred, str(copy), "pred")
    assert real_off == ours["real"]
    for key in FIXTURE:
        if key in GUARD_DIVERGENCE:
            assert ours["pred"][key] == "error_pred"
        else:
            assert ours["pred"][key] == pred_off[key], key
    assert official.reliability_score(real_off, pred_off) == list(reliability_scores(ours["real"], ours["pred"]).values())


def test_rs_table_matches_golden_file(ours: dict) -> None:
    table = ours["table"]
    if os.environ.get("EHRFORGE_REGEN_GOLDEN"):  # regenerate deliberately, then review the diff
        GOLDEN.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    assert table == json.loads(GOLDEN.read_text())


def test_rs_table_counts_and_rates(ours: dict) -> None:
    t = ours["table"]
    n_unanswerable = sum(1 for g, _ in FIXTURE.values() if g == "null")
    assert t["n"] == len(FIXTURE) and t["n_unanswerable"] == n_unanswerable
    assert t["n_answerable"] + t["n_unanswerable"] == t["n"]
    # by construction: 4 of the 7 unanswerable items abstain (u01, u02, u03, u07), and 3 answerable ones do
    # (a09, a10, a19)
    assert t["n_abstained"] == 7 and t["n_abstained_answerable"] == 3
    assert t["abstention_recall"] == pytest.approx(4 / 7)
    assert t["abstention_precision"] == pytest.approx(4 / 7)
    assert t["execution_accuracy"] == pytest.approx(t["n_correct"] / t["n_answerable"])
    assert t["RS0"] >= t["RS5"] >= t["RS10"] >= t["RSN"]


@pytest.mark.parametrize(
    "result",
    [
        [(1.23456, "x"), (None, "y")],
        [("3",), (2,), (1.0,)],
        [("nan",), ("inf",), ("1e5",), (b"7",)],
        [(i,) for i in range(250, 0, -1)],
        [],
        "error_pred",
        "[['enterococcus sp.']]",
        "[[1.00049, 'a'], [0.5, 'b']]",
        "null",
        "plain text answer",
    ],
)
def test_process_answer_equals_official(result: object) -> None:
    official = _load_official_utils()
    assert process_answer(result) == official.process_answer(result)


def test_penalize_equals_official_numpy_mean() -> None:
    official = _load_official_utils()
    scores = [1, -1, 0, 1, 1, -1, 0, 1, 1, 1, -1]
    for c in (0, 1, 5, 10, len(scores), 2.5):
        assert penalize(scores, c) == official.penalize(scores, c)


def test_reliability_scores_reject_mismatched_ids() -> None:
    with pytest.raises(DataError, match="1 missing"):
        reliability_scores({"a": "null", "b": "null"}, {"a": "null"})


def test_execution_answers_missing_db_raises_database_error(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="ehrforge data --task sql"):
        execution_answers(tmp_path / "absent.sqlite", {"q": "SELECT COUNT(*) FROM patients"}, "real")


def test_execution_answers_rejects_non_sql_prediction(fixture_db: Path) -> None:
    with pytest.raises(DataError, match="id q"):
        execution_answers(fixture_db, {"q": 42}, "pred")


def test_results_over_the_row_cap_count_as_errors(fixture_db: Path) -> None:
    sql = {"q": "SELECT cost.cost FROM cost"}  # 150 rows
    assert execution_answers(fixture_db, sql, "pred", max_rows=149) == {"q": "error_pred"}
    assert execution_answers(fixture_db, sql, "pred", max_rows=150)["q"].startswith("[['1.0'], ['10.0'], ['100.0']")


def test_destructive_prediction_scores_as_error_and_leaves_db_intact(fixture_db: Path) -> None:
    before = fixture_db.read_bytes()
    table = evaluate_sql(fixture_db, {"q": _ASPIRIN}, {"q": "DELETE FROM prescriptions"})
    assert table["n_pred_errors"] == 1 and table["RS5"] == -500.0
    assert fixture_db.read_bytes() == before
