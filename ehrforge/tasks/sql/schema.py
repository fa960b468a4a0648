"""The MIMIC-IV (demo) schema of EHRSQL 2024: its DDL, its columns, and a compact form for prompts.

The DDL is bundled as package data (``assets/mimic_iv_schema.sql``, EHRSQL 2024, CC BY 4.0) so that a machine
without ``../shared`` can still build the synthetic database, guard SQL against unknown tables and prompt a model.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

#: "now" in the EHRSQL 2024 database (the official post-processing substitutes it for ``current_time``).
CURRENT_TIME = "2100-12-31 23:59:00"

_CREATE = re.compile(r"CREATE TABLE\s+(\w+)\s*\((.*?)\n\);", re.S | re.I)
_CONSTRAINT = ("FOREIGN", "PRIMARY", "UNIQUE", "CONSTRAINT", "CHECK")


@lru_cache(maxsize=1)
def schema_ddl() -> str:
    """The SQLite DDL (``DROP TABLE IF EXISTS`` + ``CREATE TABLE`` for the 17 tables), with its attribution header."""
    return resources.files("ehrforge.tasks.sql.assets").joinpath("mimic_iv_schema.sql").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _parsed() -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    tables = []
    for name, body in _CREATE.findall(schema_ddl()):
        cols = []
        for line in body.splitlines():
            line = line.strip().rstrip(",")
            if not line or line.split()[0].upper() in _CONSTRAINT:
                continue
            col, ctype = line.split()[0], line.split()[1]
            cols.append((col, ctype))
        tables.append((name, tuple(cols)))
    return tuple(tables)


def table_columns() -> dict[str, list[str]]:
    """``{table: [column, ...]}`` in DDL order (row_id included), parsed from the bundled DDL."""
    return {name: [c for c, _ in cols] for name, cols in _parsed()}


def column_types() -> dict[str, dict[str, str]]:
    """``{table: {column: declared SQL type}}``; the generator uses it to know which columns are numeric."""
    return {name: dict(cols) for name, cols in _parsed()}


def schema_prompt() -> str:
    """One line per table, e.g. ``patients(subject_id, gender, dob, dod)``; ``row_id`` is left out (surrogate key,
    never asked about, except as the join key of ``cost.event_id``, which the line for ``cost`` states)."""
    lines = []
    for name, cols in table_columns().items():
        shown = [c for c in cols if c != "row_id"]
        line = f"{name}({', '.join(shown)})"
        if name == "cost":
            line += "  -- event_id = row_id of the table named by event_type"
        lines.append(line)
    return "\n".join(lines)


# The official EHRSQL 2024 scorer (scoring_program/postprocessing.py, CC BY 4.0) rewrites gold and predicted SQL
# before running it; we mirror it so that our database is built for, and our scores match, the same SQL text.
_VITAL_RANGES = {
    "temperature": (35.5, 38.1),
    "sao2": (95.0, 100.0),
    "heart rate": (60.0, 100.0),
    "respiration": (12.0, 18.0),
    "systolic bp": (90.0, 120.0),
    "diastolic bp": (60.0, 90.0),
    "mean bp": (60.0, 110.0),
}


def postprocess_sql(query: str) -> str:
    """The official post-processing: one line, ``current_time`` -> ``'2100-12-31 23:59:00'``, ``<vital>_lower``/
    ``_upper`` placeholders -> the normal range, ``%y`` -> ``%Y`` and ``%j`` -> ``%J``.

    >>> postprocess_sql("SELECT 1 WHERE x <  = datetime(current_time,'-1 year')")
    "SELECT 1 WHERE x <= datetime('2100-12-31 23:59:00','-1 year')"
    """
    query = re.sub("[ ]+", " ", query.replace("\n", " ")).strip()
    query = query.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")
    if "current_time" in query:
        query = query.replace("current_time", f"'{CURRENT_TIME}'")
    lower = re.findall("[ \n]+([a-zA-Z0-9_]+_lower)", query)
    upper = re.findall("[ \n]+([a-zA-Z0-9_]+_upper)", query)
    if lower and upper:
        names = set(re.findall("([a-zA-Z0-9_]+)_lower", lower[0]) + re.findall("([a-zA-Z0-9_]+)_upper", upper[0]))
        if len(names) == 1:
            vital = names.pop().replace("_", " ")
            if vital in _VITAL_RANGES:
                lo, hi = _VITAL_RANGES[vital]
                query = query.replace(lower[0], f"{lo}").replace(upper[0], f"{hi}")
    return query.replace("%y", "%Y").replace("%j", "%J")
