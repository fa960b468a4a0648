"""SQLite SQL (the EHRSQL dialect) on DuckDB and PostgreSQL: date functions translated, and the database copied.

sqlglot transpiles most of SQLite but leaves its date idioms alone: ``datetime(x, 'start of year', '-1 year')``,
``strftime('%J', x)`` (Julian day) and ``strftime('%Y', x)`` on text timestamps. Those are 1,600 of the 931
answerable EHRSQL valid queries' function calls, so rejecting them would reject most questions. Here each becomes
the target's own expression with the same value:

* ``datetime(x, m1, m2, ...)`` -> the modifiers applied to ``CAST(x AS TIMESTAMP)`` (``start of year|month|day``
  -> ``DATE_TRUNC``, ``±N unit`` -> ``+ INTERVAL``), formatted back to SQLite's ``'YYYY-MM-DD HH:MM:SS'`` text so
  comparisons with the text timestamp columns behave as in SQLite;
* ``strftime('%J', x)`` -> seconds since the epoch / 86400 + 2440587.5; other formats -> ``TO_CHAR`` (PostgreSQL,
  format translated) or DuckDB's ``STRFTIME``;
* ``ROUND(x, n)`` on PostgreSQL -> ``ROUND(CAST(x AS NUMERIC), n)`` (PostgreSQL has no ``round(double, int)``).

:func:`copy_database` loads a SQLite database into a DuckDB file or a PostgreSQL schema with timestamps kept as
text (as in SQLite), for tests and for users who want the demo on their own server.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import sqlglot
from ehrforge.tasks.sql.urls import driver_url, is_database_url
from sqlglot import exp

_MODIFIER = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s+(year|month|day|hour|minute|second)s?\s*$", re.I)
_START_OF = re.compile(r"^\s*start of (year|month|day)\s*$", re.I)
#: SQLite strftime codes -> PostgreSQL TO_CHAR patterns (the ones EHRSQL uses, and a few more)
_PG_FORMAT = {"%Y": "YYYY", "%m": "MM", "%d": "DD", "%H": "HH24", "%M": "MI", "%S": "SS", "%j": "DDD", "%%": "%"}
_TEXT_FORMAT = "%Y-%m-%d %H:%M:%S"  # what SQLite's datetime() returns


class UntranslatableSQL(ValueError):
    """A SQLite date modifier with no translation here (the caller reports it as a failed query)."""


def _literal(node: exp.Expression) -> str:
    if not (isinstance(node, exp.Literal) and node.is_string):
        raise UntranslatableSQL("a date modifier or format that is not a string literal")
    return node.this


def _unwrap(node: exp.Expression) -> exp.Expression:
    # sqlglot wraps strftime's operand as TsOrDsToTimestamp(x); the cast below does that job in the target.
    return node.this if isinstance(node, exp.TsOrDsToTimestamp) else node


def _timestamp(value: exp.Expression, dialect: str) -> str:
    # SQLite's date functions return NULL for '' or junk text; a plain CAST would raise instead.
    sql = _unwrap(value).sql(dialect=dialect)
    if dialect == "duckdb":
        return f"TRY_CAST({sql} AS TIMESTAMP)"
    return f"CAST(NULLIF(CAST({sql} AS TEXT), '') AS TIMESTAMP)"


def _apply_modifiers(ts: str, modifiers: list[str]) -> str:
    for mod in modifiers:
        start = _START_OF.match(mod)
        if start:
            ts = f"DATE_TRUNC('{start.group(1).lower()}', {ts})"
            continue
        shift = _MODIFIER.match(mod)
        if not shift:
            raise UntranslatableSQL("an SQLite date modifier this translation does not know")
        ts = f"({ts} + INTERVAL '{shift.group(1)} {shift.group(2).lower()}')"
    return ts


def _format(ts: str, fmt: str, dialect: str) -> str:
    if fmt == "%J":
        epoch = f"EXTRACT(EPOCH FROM {ts})" if dialect == "postgres" else f"EPOCH({ts})"
        return f"({epoch} / 86400.0 + 2440587.5)"
    if dialect == "duckdb":
        return f"STRFTIME({ts}, '{fmt}')"
    pattern = re.sub(r"%.", lambda m: _PG_FORMAT.get(m.group(0), m.group(0)), fmt)
    if re.search(r"%.", pattern):
        raise UntranslatableSQL("an strftime format this translation does not know")
    return f"TO_CHAR({ts}, '{pattern}')"


def _translate(node: exp.Expression, dialect: str) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in ("datetime", "date"):
        args = node.expressions
        if not args:
            return node
        ts = _apply_modifiers(_timestamp(args[0], dialect), [_literal(a) for a in args[1:]])
        fmt = _TEXT_FORMAT if str(node.this).lower() == "datetime" else "%Y-%m-%d"
        return sqlglot.parse_one(_format(ts, fmt, dialect), read=dialect)
    if isinstance(node, exp.TimeToStr):
        fmt = _literal(node.args["format"])
        return sqlglot.parse_one(_format(_timestamp(node.this, dialect), fmt, dialect), read=dialect)
    if isinstance(node, exp.Select) and node.args.get("order") and not node.args.get("group") and _aggregates(node):
        # SQLite accepts ORDER BY a non-aggregated column on a one-row aggregate (COUNT(*) > 0 ... ORDER BY x
        # LIMIT 1) and ignores it; the others refuse it. One row has one order: drop it. (In place: the tree is
        # already a copy, and sqlglot's transform only descends into the node it gets back when it is the same.)
        node.set("order", None)
        return node
    if dialect == "postgres" and isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        node.set("this", exp.Cast(this=node.this, to=exp.DataType.build("NUMERIC")))
        return node
    return node


def _aggregates(select: exp.Select) -> bool:
    """Does this SELECT aggregate its own rows (an aggregate in its projections, not inside a subquery/window)?"""
    for projection in select.expressions:
        for agg in projection.find_all(exp.AggFunc):
            if agg.find_ancestor(exp.Select, exp.Window) is select:
                return True
    return False


def sqlite_to(tree: exp.Expression, dialect: str) -> str:
    """``tree`` (parsed as SQLite) as SQL for ``dialect`` ("duckdb" or "postgres"), date idioms translated.

    >>> t = sqlglot.parse_one("SELECT strftime('%Y', a.t) FROM a WHERE datetime(a.t, 'start of year') > '2099'", read="sqlite")
    >>> sqlite_to(t, "duckdb")
    "SELECT STRFTIME(TRY_CAST(a.t AS TIMESTAMP), '%Y') FROM a WHERE STRFTIME(DATE_TRUNC('YEAR', TRY_CAST(a.t AS TIMESTAMP)), '%Y-%m-%d %H:%M:%S') > '2099'"
    """
    if dialect not in ("duckdb", "postgres"):
        return tree.sql(dialect=dialect)
    return tree.copy().transform(lambda n: _translate(n, dialect)).sql(dialect=dialect)


# ------------------------------------------------------------------------------------------- copying a database


def _column_type(declared: str, dialect: str) -> str:
    declared = (declared or "").upper()
    if "INT" in declared:
        return "BIGINT"
    if any(t in declared for t in ("DOUBLE", "REAL", "FLOAT", "NUMERIC", "DECIMAL")):
        return "DOUBLE PRECISION" if dialect == "postgres" else "DOUBLE"
    return "TEXT"  # TIMESTAMP(0) included: SQLite stores text, and the translated SQL compares text


def copy_database(sqlite_path: str | Path, target: str | Path, *, schema: str | None = None) -> dict[str, int]:
    """Copy every table of a SQLite database into a DuckDB file (a path ending ``.duckdb``) or a PostgreSQL
    database (a ``postgresql://`` URL; ``schema`` selects or creates a schema, else ``public``). Returns rows per
    table. Existing tables of the same names are replaced."""
    src = sqlite3.connect(f"file:{Path(sqlite_path).resolve()}?mode=ro", uri=True)
    src.text_factory = lambda b: b.decode(errors="ignore")
    try:
        tables = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        columns = {t: [(c[1], c[2]) for c in src.execute(f'PRAGMA table_info("{t}")')] for t in tables}
        rows = {t: src.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}
    finally:
        src.close()
    is_pg = is_database_url(str(target))
    dialect = "postgres" if is_pg else "duckdb"
    con: Any
    if is_pg:
        import psycopg

        con = psycopg.connect(driver_url(str(target)), autocommit=False)
    else:
        import duckdb

        con = duckdb.connect(str(target))
    try:
        cur = con.cursor() if is_pg else con  # a DuckDB cursor would not see the registered frame
        prefix = ""
        if schema:
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            prefix = f'"{schema}".'
        for t in tables:
            cols = ", ".join(f'"{name}" {_column_type(decl, dialect)}' for name, decl in columns[t])
            cur.execute(f"DROP TABLE IF EXISTS {prefix}\"{t}\"")
            cur.execute(f"CREATE TABLE {prefix}\"{t}\" ({cols})")
            if rows[t] and is_pg:  # COPY: row-by-row INSERTs take minutes for the demo database
                with cur.copy(f"COPY {prefix}\"{t}\" FROM STDIN") as copy:
                    for row in rows[t]:
                        copy.write_row(row)
            elif rows[t]:  # DuckDB reads a pandas frame in one scan; executemany would take minutes
                import pandas as pd

                frame = pd.DataFrame(rows[t], columns=[name for name, _ in columns[t]], dtype=object)
                con.register("ehrforge_copy_rows", frame)
                cur.execute(f"INSERT INTO {prefix}\"{t}\" SELECT * FROM ehrforge_copy_rows")
                con.unregister("ehrforge_copy_rows")
        con.commit()
    finally:
        con.close()
    return {t: len(r) for t, r in rows.items()}
