"""Run guarded SQL read-only, with a time limit and a row limit, on SQLite, DuckDB or PostgreSQL.

Defence in depth: ``check_sql`` is the first layer, but the database must not rely on our parser being perfect.

* SQLite: opened with a ``file:...?mode=ro`` URI, ``PRAGMA query_only=ON``, an *authorizer* that only lets SELECT,
  table reads and allowlisted functions through (so even a statement the parser misread cannot write, attach or
  call ``load_extension``), ``SQLITE_LIMIT_ATTACHED=0`` and a 10 MB cap on any one value. The time limit is a
  progress handler; rows are fetched with ``fetchmany(max_rows + 1)`` so a huge result is never materialised.
* DuckDB (a path ending ``.duckdb``): ``read_only=True`` with external access (file readers, extensions) disabled
  and the configuration locked; the time limit interrupts the connection from a timer.
* PostgreSQL (a ``postgresql://`` URL): a ``READ ONLY`` transaction with ``statement_timeout``, always rolled back.
  psycopg (3) or psycopg2 is an optional dependency.

The SQL is always written in SQLite (the EHRSQL dialect) and transpiled by sqlglot for the other two, with SQLite's
date idioms (``datetime(x, 'start of year', '-1 year')``, ``strftime('%J', x)``) translated by ``dialects.py``:
98 % of the bundled EHRSQL valid gold queries give the same answers on all three (tests/tasks/sql/test_dialects.py).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ehrforge.errors import DatabaseError, QueryFailedError, QueryTimeoutError, SQLGuardError
from ehrforge.tasks.sql.urls import driver_url, is_database_url
from ehrforge.tasks.sql.guard import ALLOWED_FUNCTION_NAMES, GuardedSQL, check_sql

_DB_HINT = "build one with `ehrforge data --task sql --db PATH`, or pass the path to your own database"

#: Largest string or blob any one SQLite value may reach (the default is 1 GB: a memory bomb).
_MAX_VALUE_BYTES = 10_000_000
#: How many SQLite VM instructions between two time checks (cheap: a monotonic clock read).
_PROGRESS_STEPS = 2_000


@dataclass(frozen=True)
class QueryResult:
    """Rows of a query. ``truncated`` is True when more than ``max_rows`` rows existed (only ``max_rows`` kept)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False
    elapsed_s: float = 0.0
    engine: str = field(default="sqlite", compare=False)


def _target_kind(target: str | os.PathLike) -> str:
    text = os.fspath(target)
    if is_database_url(text):
        return "postgres"
    if text.lower().endswith(".duckdb"):
        return "duckdb"
    return "sqlite"


def execute_readonly(
    db: str | os.PathLike,
    sql: str | GuardedSQL,
    *,
    max_rows: int | None = 1000,
    timeout_s: float = 5.0,
    allowed: Mapping[str, Collection[str]] | None = None,
    postprocess: bool = True,
) -> QueryResult:
    """Guard ``sql`` (unless it is already a ``GuardedSQL``) and run it read-only on ``db``.

    ``db`` is a SQLite file, a ``.duckdb`` file or a ``postgresql://`` URL. At most ``max_rows`` rows come back
    (``None``: all of them). Raises ``SQLGuardError`` when
    the guard rejects the SQL, the database refuses it, or it runs longer than ``timeout_s``; ``DatabaseError``
    when the database cannot be opened.
    """
    guarded = sql if isinstance(sql, GuardedSQL) else check_sql(sql, allowed, postprocess=postprocess)
    if max_rows is not None and max_rows < 0:
        raise ValueError("max_rows must be >= 0 or None")
    if timeout_s <= 0:
        raise ValueError("timeout_s must be > 0")
    kind = _target_kind(db)
    if kind == "postgres":
        return _run_postgres(os.fspath(db), guarded, max_rows, timeout_s)
    if kind == "duckdb":
        return _run_duckdb(Path(db), guarded, max_rows, timeout_s)
    return _run_sqlite(Path(db), guarded, max_rows, timeout_s)


def check_database(db: str | os.PathLike) -> None:
    """Open ``db`` read-only and run a trivial query: a text file, random bytes, a directory, a missing driver or an
    unreachable server raise one ``DatabaseError`` here, at start-up."""
    if _target_kind(db) != "postgres":
        path = Path(db)
        if path.is_dir():
            raise DatabaseError(f"the database {path.name} is a directory, not a SQLite or DuckDB file", _DB_HINT)
        if not path.is_file():
            raise DatabaseError(f"database file not found: {path}", _DB_HINT)
        if path.stat().st_size == 0:
            # SQLite would open an empty file as an empty database, and every question would become an abstention
            raise DatabaseError(f"the database {path.name} is an empty file (0 bytes), not a database", _DB_HINT)
    try:
        execute_readonly(db, "SELECT 1", max_rows=1, timeout_s=10)
    except SQLGuardError:
        raise DatabaseError("the database cannot run a trivial read-only query", _DB_HINT) from None
    except OSError as exc:
        raise DatabaseError(f"cannot read the database ({exc.strerror or type(exc).__name__})", _DB_HINT) from None


def _fetch(cursor: Any, max_rows: int | None) -> tuple[list[tuple[Any, ...]], bool]:
    if max_rows is None:
        return [tuple(r) for r in cursor.fetchall()], False
    rows = [tuple(r) for r in cursor.fetchmany(max_rows + 1)]
    return rows[:max_rows], len(rows) > max_rows


def _db_error_kind(err: BaseException) -> str:
    """A short, query-free description of a driver error: its class and the message up to the first ':'
    (SQLite says "no such column: x", "near \"...\": syntax error"; we keep "no such column" and drop quotes)."""
    head = str(err).split(":", 1)[0].strip()
    if '"' in head or "'" in head or len(head) > 60:
        head = ""
    return f"{type(err).__name__}" + (f": {head}" if head else "")


# ---------------------------------------------------------------------------------------------------------- SQLite

_AUTH_ALLOWED_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ}


def _authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
    # Runs at prepare time for every action the statement would take; anything but reading is refused.
    if action in _AUTH_ALLOWED_ACTIONS:
        if action == sqlite3.SQLITE_READ and arg1 and arg1.lower().startswith("sqlite_"):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in ALLOWED_FUNCTION_NAMES:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _open_sqlite(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise DatabaseError(f"database file not found: {path}", _DB_HINT)
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
        # Same decoding as the official scorer, so invalid UTF-8 in the data never crashes a query.
        con.text_factory = lambda b: b.decode(errors="ignore")
        con.execute("PRAGMA query_only=ON")
        con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # fails here if it is not a database
    except sqlite3.Error as err:
        raise DatabaseError(f"cannot open database {path.name} ({type(err).__name__})", _DB_HINT) from None
    if hasattr(con, "setlimit"):  # Python >= 3.11
        con.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        con.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_VALUE_BYTES)
    con.set_authorizer(_authorizer)
    return con


def _run_sqlite(path: Path, guarded: GuardedSQL, max_rows: int | None, timeout_s: float) -> QueryResult:
    con = _open_sqlite(path)
    start = time.monotonic()
    deadline = start + timeout_s
    timed_out = False

    def _progress() -> int:
        nonlocal timed_out
        if time.monotonic() > deadline:
            timed_out = True
            return 1  # non-zero aborts the statement with "interrupted"
        return 0

    con.set_progress_handler(_progress, _PROGRESS_STEPS)
    try:
        cur = con.execute(guarded.to_dialect("sqlite"))
        rows, truncated = _fetch(cur, max_rows)
        columns = [d[0] for d in cur.description or ()]
    except sqlite3.Error as err:
        if timed_out:
            raise QueryTimeoutError(f"query exceeded the time limit of {timeout_s:g} s", "simplify the query") from None
        if "not authorized" in str(err):
            raise SQLGuardError("the database refused an action the query needs (read-only access)",
                                "generate a single read-only SELECT over the EHR tables") from None
        raise QueryFailedError(f"query failed in SQLite ({_db_error_kind(err)})", "check table and column names") from None
    except (OverflowError, MemoryError, ValueError) as err:
        raise QueryFailedError(f"query result could not be read ({type(err).__name__})", "simplify the query") from None
    finally:
        con.close()
    return QueryResult(columns, rows, truncated, time.monotonic() - start, "sqlite")


# ---------------------------------------------------------------------------------------------------------- DuckDB


def _run_duckdb(path: Path, guarded: GuardedSQL, max_rows: int | None, timeout_s: float) -> QueryResult:
    import duckdb

    if not path.is_file():
        raise DatabaseError(f"database file not found: {path}", _DB_HINT)
    config = {
        # No file readers (read_csv, COPY), no extension (auto)loading, and no way to switch that back on.
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "lock_configuration": True,
    }
    try:
        con = duckdb.connect(str(path), read_only=True, config=config)
    except duckdb.Error as err:
        raise DatabaseError(f"cannot open DuckDB database {path.name} ({type(err).__name__})", _DB_HINT) from None
    sql = guarded.to_dialect("duckdb")
    start = time.monotonic()
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        cur = con.execute(sql)
        rows, truncated = _fetch(cur, max_rows)
        columns = [d[0] for d in cur.description or ()]
    except duckdb.Error as err:
        if isinstance(err, duckdb.InterruptException) or time.monotonic() - start >= timeout_s:
            raise QueryTimeoutError(f"query exceeded the time limit of {timeout_s:g} s", "simplify the query") from None
        raise QueryFailedError(f"query failed in DuckDB ({type(err).__name__})",
                            "check the SQL; SQLite-only date modifiers do not translate to DuckDB") from None
    finally:
        timer.cancel()
        con.close()
    return QueryResult(columns, rows, truncated, time.monotonic() - start, "duckdb")


# ------------------------------------------------------------------------------------------------------ PostgreSQL


def _postgres_driver() -> Any:
    try:
        import psycopg

        return psycopg
    except ImportError:
        pass
    try:
        import psycopg2

        return psycopg2
    except ImportError:
        raise DatabaseError(
            "PostgreSQL needs the psycopg driver, which is not installed", "pip install 'psycopg[binary]'"
        ) from None


def _run_postgres(url: str, guarded: GuardedSQL, max_rows: int | None, timeout_s: float) -> QueryResult:
    driver = _postgres_driver()
    # Never put the URL in a message: it usually carries a password.
    try:
        con = driver.connect(driver_url(url), connect_timeout=max(1, int(timeout_s)))
    except driver.Error as err:
        raise DatabaseError(f"cannot connect to PostgreSQL ({type(err).__name__})",
                            "check the postgresql:// URL, the server and your credentials") from None
    sql = guarded.to_dialect("postgres")
    start = time.monotonic()
    try:
        cur = con.cursor()
        # Both drivers open a transaction implicitly; it is made read-only before anything else runs in it.
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
        cur.execute(sql)
        rows, truncated = _fetch(cur, max_rows)
        columns = [d[0] for d in cur.description or ()]
    except driver.Error as err:
        code = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
        if code == "57014":  # query_canceled: the statement_timeout fired
            raise QueryTimeoutError(f"query exceeded the time limit of {timeout_s:g} s", "simplify the query") from None
        raise QueryFailedError(f"query failed in PostgreSQL ({type(err).__name__})",
                            "check the SQL; SQLite-only date modifiers do not translate to PostgreSQL") from None
    finally:
        try:
            con.rollback()
        finally:
            con.close()
    return QueryResult(columns, rows, truncated, time.monotonic() - start, "postgres")
