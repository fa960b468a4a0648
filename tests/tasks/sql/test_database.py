"""The synthetic MIMIC-IV-shaped database: schema, determinism, value-awareness, atomic writes."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime
from importlib import resources
from pathlib import Path

import pytest

from ehrforge.errors import DatabaseError, DataError
from ehrforge.tasks.sql import database
from ehrforge.tasks.sql.data import gold_queries
from ehrforge.tasks.sql.database import generate_database, table_checksums
from ehrforge.tasks.sql.harvest import harvest_values, parse_demand
from ehrforge.tasks.sql.schema import postprocess_sql, schema_prompt, table_columns

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "ehrsql_sample.json"


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))["items"]


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory, sample) -> Path:
    path = tmp_path_factory.mktemp("db") / "sample.sqlite"
    generate_database(path, [item["sql"] for item in sample], seed=0, n_background_patients=20)
    return path


def _run(conn: sqlite3.Connection, sql: str, limit_s: float = 2.0) -> list | None:
    """Rows of one gold query, or None if it errors or runs past the time limit."""
    deadline = time.perf_counter() + limit_s
    conn.set_progress_handler(lambda: int(time.perf_counter() > deadline), 10_000)
    try:
        return conn.execute(postprocess_sql(sql)).fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.set_progress_handler(None, 0)


def test_every_ddl_table_exists_with_its_columns(sample_db):
    conn = sqlite3.connect(sample_db)
    expected = table_columns()
    assert len(expected) == 17
    for table, cols in expected.items():
        assert [r[1] for r in conn.execute(f"PRAGMA table_info({table})")] == cols, table
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0, table


def test_schema_prompt_lists_tables_without_row_id():
    text = schema_prompt()
    assert "patients(subject_id, gender, dob, dod)" in text.splitlines()
    assert "row_id" not in text.replace("row_id of", "")
    assert len(text.splitlines()) == 17


def test_same_seed_same_tables_other_seed_differs(tmp_path, sample):
    sql = [item["sql"] for item in sample]
    a, b, c = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "c.sqlite"
    generate_database(a, sql, seed=3, n_background_patients=10)
    generate_database(b, (q for q in sql), seed=3, n_background_patients=10)  # any iterable
    generate_database(c, sql, seed=4, n_background_patients=10)
    assert table_checksums(a) == table_checksums(b)
    assert table_checksums(a)["chartevents"] != table_checksums(c)["chartevents"]


def test_hand_picked_gold_queries_return_answers(sample_db, sample):
    conn = sqlite3.connect(f"file:{sample_db}?mode=ro", uri=True)
    empty = []
    for item in sample:
        rows = _run(conn, item["sql"])
        assert rows is not None, f"gold SQL failed to execute: {item['id']}"
        values = [v for row in rows for v in row]
        # "COUNT(*)>0" style answers must say yes (1), lists must have a non-NULL value
        if not values or all(v is None for v in values) or values == [0]:
            empty.append(item["id"])
    assert not empty, f"no answer for {empty}"


def test_values_and_times_are_plausible(sample_db, sample):
    conn = sqlite3.connect(sample_db)
    now = "2100-12-31 23:59:00"
    for table, col in (("chartevents", "charttime"), ("labevents", "charttime"), ("prescriptions", "starttime"),
                       ("admissions", "admittime"), ("cost", "chargetime")):
        assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {col} > ?", (now,)).fetchone()[0] == 0
    lo, hi = conn.execute("SELECT MIN(valuenum), MAX(valuenum) FROM chartevents JOIN d_items USING (itemid) "
                          "WHERE d_items.label = 'heart rate'").fetchone()
    assert 40 <= lo <= hi <= 200
    assert conn.execute("SELECT COUNT(*) FROM admissions WHERE dischtime < admittime").fetchone()[0] == 0
    # every cost row points at an event of its type, as in EHRSQL
    for event_type in ("diagnoses_icd", "procedures_icd", "labevents", "prescriptions"):
        orphans = conn.execute(f"SELECT COUNT(*) FROM cost WHERE event_type = ? AND event_id NOT IN "
                               f"(SELECT row_id FROM {event_type})", (event_type,)).fetchone()[0]
        assert orphans == 0, event_type
    # each named subject has exactly one open admission, and it is the latest one
    subjects = {d.subject_id for item in sample if (d := parse_demand(postprocess_sql(item["sql"]))).subject_id}
    assert subjects
    for sid in subjects:
        rows = conn.execute("SELECT dischtime FROM admissions WHERE subject_id = ? ORDER BY admittime", (sid,))
        times = [r[0] for r in rows]
        assert times.count(None) == 1 and times[-1] is None, sid


def test_harvest_reads_values_windows_and_visits():
    sql = postprocess_sql(
        "SELECT chartevents.charttime FROM chartevents WHERE chartevents.stay_id IN ( SELECT icustays.stay_id FROM "
        "icustays WHERE icustays.hadm_id IN ( SELECT admissions.hadm_id FROM admissions WHERE admissions.subject_id"
        " = 10004733 ) AND icustays.outtime IS NOT NULL ORDER BY icustays.intime ASC LIMIT 1 ) AND "
        "chartevents.itemid IN ( SELECT d_items.itemid FROM d_items WHERE d_items.label = 'heart rate' AND "
        "d_items.linksto = 'chartevents' ) AND chartevents.valuenum < 84.0 AND datetime(chartevents.charttime,"
        "'start of month') = datetime(current_time,'start of month','-0 month') AND "
        "strftime('%d',chartevents.charttime) = '25'")
    d = parse_demand(sql)
    assert d.subject_id == 10004733
    assert [(e.kind, e.value) for e in d.entities] == [("chartevents", "heart rate")]
    assert d.roles == ["first"]
    assert d.thresholds == [("<", 84.0, None)]
    assert d.windows == [(datetime(2100, 12, 25), datetime(2100, 12, 25, 23, 59, 59))]
    h = harvest_values([sql, "null", ""])
    assert h.n_queries == 1 and h.subjects == [10004733] and h.vocab["chartevents"] == ["heart rate"]


def test_bundled_subset_meets_execution_targets(tmp_path):
    subset = resources.files("ehrforge.tasks.sql.assets").joinpath("ehrsql_subset.json")
    queries = gold_queries()  # the bundled subset, as the demo builds its database
    assert queries == gold_queries(str(subset))
    data = json.loads(subset.read_text(encoding="utf-8"))
    train = [item["sql"] for item in data["train"] if item["sql"] != "null"]
    assert 300 <= len(train) <= 400
    path = tmp_path / "subset.sqlite"
    stats = generate_database(path, queries, seed=0)
    assert stats["bytes"] < 50_000_000
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    results = [_run(conn, sql) for sql in train]
    executed = sum(r is not None for r in results) / len(train)
    non_empty = sum(bool(r) for r in results) / len(train)
    assert executed >= 0.95, executed
    assert non_empty >= 0.70, non_empty


def test_failure_mid_generation_leaves_no_file(tmp_path, sample, monkeypatch):
    target = tmp_path / "db.sqlite"
    calls = {"n": 0}
    real = database._patient

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(database, "_patient", flaky)
    with pytest.raises(RuntimeError):
        generate_database(target, [item["sql"] for item in sample], n_background_patients=5)
    assert list(tmp_path.iterdir()) == []


def test_failure_while_writing_keeps_the_old_file(tmp_path, sample, monkeypatch):
    target = tmp_path / "db.sqlite"
    target.write_bytes(b"previous database")
    # a broken DDL makes SQLite fail after the temp file was created and partly written
    broken = "CREATE TABLE patients (x INT); INSERT INTO nowhere VALUES (1);"
    monkeypatch.setattr(database, "schema_ddl", lambda: broken)
    with pytest.raises(DatabaseError):
        generate_database(target, [item["sql"] for item in sample], n_background_patients=5)
    assert target.read_bytes() == b"previous database"
    assert [p.name for p in tmp_path.iterdir()] == ["db.sqlite"]


def test_bad_input_gets_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="n_background_patients"):
        generate_database(tmp_path / "x.sqlite", [], n_background_patients=-1)
    with pytest.raises(DataError, match="no train/data.json under"):
        gold_queries(str(tmp_path))
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match="record 1 of .*bad.json has no 'question'"):
        gold_queries(str(bad))
