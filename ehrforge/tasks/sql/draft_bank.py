"""The draft bank shipped for the bundled question set: one EHRSQL train question per distinct query skeleton.

A draft (``demonstrations.DemonstrationPool.draft``) is only as good as the nearest training question of the same
shape, and the shipped student learned to edit drafts drawn from the whole train split. The bundled subset's 400
train questions cover a small part of the train split's query skeletons, so on a machine without the full data --
every user's -- most drafts were missing or of the wrong shape. The bank keeps one question per skeleton (the SQL
with its string and number literals masked) and the train split's value lexicon, so the bundled set's drafts come
from every template while the file stays a small derived sample (``assets/NOTICE.md``). How much of the full
split's draft quality it recovers is measured by ``benchmarks/sql_draft_bank.py``.

Rebuild the asset from an EHRSQL version folder (deterministic: the first train question of each skeleton, in file
order)::

    python -m ehrforge.tasks.sql.draft_bank --data ../shared/data/ehrsql2024/v1.0
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

from ehrforge.tasks.sql import data as sql_data
from ehrforge.tasks.sql.demonstrations import value_lexicon

Record = dict[str, Any]
BANK_FILE = "ehrsql_draft_bank.json"

_STRING = re.compile(r"'[^']*'")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_SPACE = re.compile(r"\s+")


def query_skeleton(sql: str) -> str:
    """The query with its values masked: questions whose SQL shares a skeleton differ only in the values a draft
    puts in.

    >>> query_skeleton("SELECT COUNT(*) FROM prescriptions WHERE subject_id = 10021487 AND drug = 'aspirin'")
    "select count(*) from prescriptions where subject_id = N and drug = 'V'"
    >>> query_skeleton("select  count(*) from prescriptions where subject_id = 7 and drug = 'heparin'") == \\
    ...     query_skeleton("SELECT COUNT(*) FROM prescriptions WHERE subject_id = 10021487 AND drug = 'aspirin'")
    True
    """
    # lower-cased first, so the upper-case markers are the only capitals left
    return _SPACE.sub(" ", _NUMBER.sub("N", _STRING.sub("'V'", sql.strip().lower())))


def build_draft_bank(train: Sequence[Record], *, per_skeleton: int = 1) -> dict[str, Any]:
    """``{"values": [...], "records": [...]}``: the value lexicon of every answerable train query, and the first
    ``per_skeleton`` answerable train records of each query skeleton, in ``train``'s order.

    >>> bank = build_draft_bank([
    ...     {"id": "a", "question": "aspirin for patient 1?", "sql": "SELECT 1 FROM t WHERE drug = 'aspirin' AND id = 1"},
    ...     {"id": "b", "question": "heparin for patient 2?", "sql": "SELECT 1 FROM t WHERE drug = 'heparin' AND id = 2"},
    ...     {"id": "c", "question": "is it 2100?", "sql": "null"}])
    >>> [r["id"] for r in bank["records"]], bank["values"]
    (['a'], ['aspirin', 'heparin'])
    """
    answerable = [r for r in train if r.get("sql") and sql_data.is_answerable(r)]
    kept: dict[str, list[Record]] = {}
    for record in answerable:
        group = kept.setdefault(query_skeleton(record["sql"]), [])
        if len(group) < per_skeleton:
            group.append({"id": str(record["id"]), "question": record["question"], "sql": record["sql"]})
    return {"values": value_lexicon(r["sql"] for r in answerable),
            "records": [r for group in kept.values() for r in group]}


def with_bank(records: Sequence[Record], bank: dict[str, Any]) -> tuple[list[Record], list[str]]:
    """``records`` followed by the bank's records they do not already hold (by id), and the bank's value lexicon:
    what a ``DemonstrationPool`` is built from.

    >>> with_bank([{"id": "a", "question": "q", "sql": "s"}],
    ...           {"records": [{"id": "a", "question": "q", "sql": "s"}, {"id": "b", "question": "r", "sql": "t"}],
    ...            "values": ["aspirin"]})
    ([{'id': 'a', 'question': 'q', 'sql': 's'}, {'id': 'b', 'question': 'r', 'sql': 't'}], ['aspirin'])
    """
    known = {str(r.get("id")) for r in records}
    return list(records) + [r for r in bank["records"] if str(r["id"]) not in known], list(bank["values"])


@functools.lru_cache(maxsize=1)
def shipped_draft_bank() -> dict[str, Any]:
    """The bank in the package (``assets/ehrsql_draft_bank.json``)."""
    text = resources.files("ehrforge.tasks.sql.assets").joinpath(BANK_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys
    from pathlib import Path

    from ehrforge.core.io import atomic_write_json
    from ehrforge.errors import EhrforgeError

    ap = argparse.ArgumentParser(description="rebuild the shipped SQL draft bank from an EHRSQL version folder")
    ap.add_argument("--data", required=True, help="EHRSQL version folder (with train/data.json and train/label.json)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "assets" / BANK_FILE))
    args = ap.parse_args(argv)
    try:
        bank = build_draft_bank(sql_data.load_questions("train", args.data))
    except EhrforgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not bank["records"]:
        print(f"error: no answerable train question in {args.data} — point --data at an EHRSQL version folder",
              file=sys.stderr)
        return 1
    source = {"dataset": "EHRSQL 2024 v1.0, train split", "repository": "glee4810/ehrsql-2024",
              "commit": "5ddaaa79e6121bf22f808df34166f6f4e03f4c86", "licence": "CC BY 4.0",
              "selection": "the first answerable train question of each query skeleton (literals masked), file order",
              "rebuild": "python -m ehrforge.tasks.sql.draft_bank --data <EHRSQL v1.0 folder>"}
    try:
        atomic_write_json(args.out, {"_source": source, **bank})
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror} — pass a writable --out", file=sys.stderr)
        return 1
    print(f"{len(bank['records'])} records, {len(bank['values'])} values -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
