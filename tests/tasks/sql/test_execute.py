"""Read-only executor on real SQLite and DuckDB files (PostgreSQL when a server URL is given)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest
import sqlglot

from ehrforge.errors import DatabaseError, SQLGuardError
from ehrforge.tasks.sql.execute import QueryResult, execute_readonly
from ehrforge.tasks.sql.guard import GuardedSQL, check_sql
from ehrforge.tasks.sql.schema import schema_ddl

ALLOWED = {"patients": ["row_id", "subject_id", "gender", "dob", "dod"]}
BOMB = "SELECT SUM(a.row_id * b.row_id * c.row_id % 7) FROM patients AS a, patients AS b, patients AS c"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "ehr.sqlite"
    con = sqlite3.connect(path)
    con.executescript(schema_ddl())
    con.executemany("INSERT INTO patients VALUES (?, ?, ?, ?, ?)",
                    [(i, 10000 + i, "fm"[i % 2], f"2050-01-{1 + i % 28:02d} 00:00:00", None) for i in range(1, 1501)])
    con.commit()
    con.close()
    return path


@pytest.fixture()
def duckdb_db(tmp_path: Path) -> Path:
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "ehr.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE patients (row_id INT, subject_id INT, gender VARCHAR, dob TIMESTAMP, dod TIMESTAMP)")
    con.execute("INSERT INTO patients SELECT i, 10000 + i, CASE WHEN i % 2 = 0 THEN 'f' ELSE 'm' END, "
                "TIMESTAMP '2050-01-01' + INTERVAL (i) DAY, NULL FROM range(1, 3001) t(i)")
    con.close()
    return path


def _forged(sql: str, dialect: str = "sqlite") -> GuardedSQL:
    """Pretend the guard was bypassed: the database layer alone must still refuse."""
    return GuardedSQL(sql=sql, tree=sqlglot.exp.Literal.string("x"), tables=frozenset(), ctes=frozenset(),
                      dialect=dialect)


# ---------------------------------------------------------------------------------------------------------- SQLite


def test_sqlite_rows_columns_and_row_limit(sqlite_db: Path) -> None:
    result = execute_readonly(sqlite_db, "SELECT patients.gender, COUNT(*) AS n FROM patients GROUP BY patients.gender",
                              allowed=ALLOWED)
    assert isinstance(result, QueryResult)
    assert result.columns == ["gender", "n"] and sorted(result.rows) == [("f", 750), ("m", 750)]
    assert not result.truncated and result.elapsed_s >= 0

    limited = execute_readonly(sqlite_db, "SELECT patients.subject_id FROM patients", max_rows=10, allowed=ALLOWED)
    assert len(limited.rows) == 10 and limited.truncated
    everything = execute_readonly(sqlite_db, "SELECT patients.subject_id FROM patients", max_rows=None, allowed=ALLOWED)
    assert len(everything.rows) == 1500 and not everything.truncated
    exact = execute_readonly(sqlite_db, "SELECT patients.subject_id FROM patients LIMIT 10", max_rows=10, allowed=ALLOWED)
    assert len(exact.rows) == 10 and not exact.truncated


def test_sqlite_guard_runs_first(sqlite_db: Path) -> None:
    before = _sha(sqlite_db)
    with pytest.raises(SQLGuardError, match="only SELECT"):
        execute_readonly(sqlite_db, "DELETE FROM patients", allowed=ALLOWED)
    assert _sha(sqlite_db) == before


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM patients",
        "DROP TABLE patients",
        "UPDATE patients SET gender = 'x'",
        "CREATE TABLE pwned (x)",
        "PRAGMA query_only = OFF",
        "PRAGMA writable_schema = ON",
        "ATTACH DATABASE 'pwned.db' AS p",
        "VACUUM INTO 'pwned.db'",
        "SELECT load_extension('pwned.so')",
        "SELECT randomblob(10)",
        "SELECT * FROM sqlite_master",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c",
        "SELECT 1; DELETE FROM patients",
    ],
)
def test_sqlite_database_layer_refuses_even_without_the_guard(
    sqlite_db: Path, sql: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(sqlite_db.parent)
    before, files = _sha(sqlite_db), sorted(os.listdir(sqlite_db.parent))
    with pytest.raises(SQLGuardError):
        execute_readonly(sqlite_db, _forged(sql), timeout_s=1.0)
    assert _sha(sqlite_db) == before
    assert sorted(os.listdir(sqlite_db.parent)) == files


def test_sqlite_time_limit_aborts_a_time_bomb(sqlite_db: Path) -> None:
    start = time.monotonic()
    with pytest.raises(SQLGuardError, match="time limit of 0.3 s"):
        execute_readonly(sqlite_db, BOMB, timeout_s=0.3, allowed=ALLOWED)
    assert time.monotonic() - start < 3.0


def test_sqlite_runtime_error_is_a_guard_error_without_the_query(sqlite_db: Path) -> None:
    with pytest.raises(SQLGuardError, match="query failed in SQLite") as info:
        execute_readonly(sqlite_db, "SELECT abs(-9223372036854775807 - 1), patients.gender = 'zz9' FROM patients",
                         allowed=ALLOWED)
    assert "zz9" not in str(info.value)


def test_sqlite_missing_or_invalid_database(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="ehrforge data --task sql"):
        execute_readonly(tmp_path / "absent.sqlite", "SELECT 1", allowed=ALLOWED)
    assert not (tmp_path / "absent.sqlite").exists()  # mode=ro never creates a file
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseError, match="cannot open database junk.sqlite"):
        execute_readonly(junk, "SELECT 1", allowed=ALLOWED)


def test_sqlite_invalid_utf8_is_decoded_like_the_official_scorer(tmp_path: Path) -> None:
    path = tmp_path / "bytes.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE patients (row_id INT, subject_id INT, gender TEXT, dob TEXT, dod TEXT)")
    con.execute("INSERT INTO patients VALUES (1, 1, CAST(X'66FF' AS TEXT), NULL, NULL)")
    con.commit()
    con.close()
    assert execute_readonly(path, "SELECT patients.gender FROM patients", allowed=ALLOWED).rows == [("f",)]


def test_sqlite_accepts_a_pre_guarded_query(sqlite_db: Path) -> None:
    guarded = check_sql("SELECT COUNT(*) FROM patients", ALLOWED)
    assert execute_readonly(sqlite_db, guarded).rows == [(1500,)]


# ---------------------------------------------------------------------------------------------------------- DuckDB


def test_duckdb_runs_transpiled_sql_read_only(duckdb_db: Path) -> None:
    before = _sha(duckdb_db)
    result = execute_readonly(duckdb_db, "SELECT patients.gender, COUNT(*) FROM patients GROUP BY patients.gender "
                                         "ORDER BY patients.gender", allowed=ALLOWED)
    assert result.rows == [("f", 1500), ("m", 1500)] and result.engine == "duckdb"
    years = execute_readonly(duckdb_db, "SELECT strftime('%Y', patients.dob) AS y, COUNT(*) FROM patients "
                                        "GROUP BY y ORDER BY y", allowed=ALLOWED, max_rows=2)
    assert years.rows == [("2050", 364), ("2051", 365)] and years.truncated
    assert _sha(duckdb_db) == before


@pytest.mark.parametrize(
    "sql",
    ["CREATE TABLE pwned (a INT)", "DELETE FROM patients", "SELECT * FROM read_csv('/etc/passwd')", "INSTALL httpfs",
     "SET enable_external_access = true", "ATTACH 'pwned.duckdb' AS p", "COPY patients TO 'pwned.csv'"],
)
def test_duckdb_database_layer_refuses_even_without_the_guard(
    duckdb_db: Path, sql: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(duckdb_db.parent)
    before, files = _sha(duckdb_db), sorted(os.listdir(duckdb_db.parent))
    with pytest.raises(SQLGuardError):
        execute_readonly(duckdb_db, _forged(sql, "duckdb"))
    assert _sha(duckdb_db) == before
    assert sorted(os.listdir(duckdb_db.parent)) == files


def test_duckdb_time_limit(duckdb_db: Path) -> None:
    start = time.monotonic()
    with pytest.raises(SQLGuardError, match="time limit"):
        execute_readonly(duckdb_db, BOMB, timeout_s=0.3, allowed=ALLOWED)
    assert time.monotonic() - start < 5.0


def test_duckdb_missing_file(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    with pytest.raises(DatabaseError, match="not found"):
        execute_readonly(tmp_path / "absent.duckdb", "SELECT 1", allowed=ALLOWED)


# ------------------------------------------------------------------------------------------------------ PostgreSQL


def test_postgres_without_driver_gives_a_clear_error_and_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # None in sys.modules makes the import fail
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(DatabaseError, match="psycopg") as info:
        execute_readonly("postgresql://ehr:s3cret@localhost/mimic", "SELECT 1", allowed=ALLOWED)
    assert "s3cret" not in str(info.value)


@pytest.mark.skipif(not os.environ.get("EHRFORGE_TEST_POSTGRES_URL"), reason="set EHRFORGE_TEST_POSTGRES_URL to a "
                    "PostgreSQL database with a patients(row_id, subject_id, gender, dob, dod) table")
def test_postgres_read_only_transaction(tmp_path) -> None:
    url = os.environ["EHRFORGE_TEST_POSTGRES_URL"]
    if importlib_missing("psycopg"):
        pytest.skip("psycopg is not installed")
    import sqlite3

    from ehrforge.tasks.sql.dialects import copy_database

    # its own patients table (the test session's throw-away server starts empty)
    source = tmp_path / "p.sqlite"
    con = sqlite3.connect(source)
    con.execute("CREATE TABLE patients (row_id INTEGER, subject_id INTEGER, gender TEXT, dob TEXT, dod TEXT)")
    con.executemany("INSERT INTO patients VALUES (?, ?, 'f', '2000-01-01', NULL)", [(i, i) for i in range(200)])
    con.commit()
    con.close()
    copy_database(source, url)
    result = execute_readonly(url, "SELECT COUNT(*) FROM patients", allowed=ALLOWED)
    assert result.engine == "postgres" and len(result.rows) == 1
    with pytest.raises(SQLGuardError):
        execute_readonly(url, _forged("DELETE FROM patients", "postgres"))
    with pytest.raises(SQLGuardError, match="time limit"):
        execute_readonly(url, "SELECT COUNT(*) FROM patients AS a, patients AS b, patients AS c, patients AS d",
                         allowed=ALLOWED, timeout_s=0.5)


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def test_timeouts_and_failures_have_their_own_error_classes(tmp_path):
    """A refused query, a slow one and a failing one are told apart (all still SQLGuardError for callers)."""
    import sqlite3

    import pytest

    from ehrforge.errors import QueryFailedError, QueryTimeoutError, SQLGuardError
    from ehrforge.tasks.sql.execute import execute_readonly

    db = tmp_path / "t.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE patients (subject_id INTEGER)")
    con.executemany("INSERT INTO patients VALUES (?)", [(i,) for i in range(300)])
    con.commit()
    con.close()
    with pytest.raises(QueryTimeoutError):
        execute_readonly(db, "SELECT COUNT(*) FROM patients a, patients b, patients c, patients d", timeout_s=0.2)
    with pytest.raises(QueryFailedError):
        execute_readonly(db, "SELECT abs(-9223372036854775808) FROM patients")  # integer overflow at run time
    with pytest.raises(SQLGuardError) as refused:
        execute_readonly(db, "DELETE FROM patients")
    assert type(refused.value) is SQLGuardError
