"""Which ``--db`` values name a PostgreSQL server rather than a file: the one parser every part of the SQL task uses."""

from __future__ import annotations

import re

_DATABASE_URL = re.compile(r"^postgres(ql)?(\+\w+)?://")


def is_database_url(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL server (``postgresql://``, ``postgres://`` and SQLAlchemy-style
    ``postgresql+psycopg://``).

    >>> [is_database_url(x) for x in ("postgresql://h/db", "postgres://h/db", "postgresql+psycopg://h/db", "ehr.sqlite")]
    [True, True, True, False]
    """
    return isinstance(target, str) and bool(_DATABASE_URL.match(target))


def driver_url(url: str) -> str:
    """The URL as libpq takes it: a SQLAlchemy driver suffix (``postgresql+psycopg://``) dropped.

    >>> driver_url("postgresql+psycopg://u@h/db"), driver_url("postgres://u@h/db")
    ('postgresql://u@h/db', 'postgres://u@h/db')
    """
    return re.sub(r"^(postgres(?:ql)?)\+\w+://", r"\1://", url)
