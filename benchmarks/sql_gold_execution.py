"""How many EHRSQL 2024 gold queries run, and return something, on the synthetic database?

Builds the synthetic MIMIC-IV-shaped database from the gold SQL of EHRSQL v1.0 train (+ valid), runs every gold
query (after the official post-processing) with a per-query time limit, and writes
``benchmarks/results/sql_gold_execution.json``:

* ``execute_ok``: share of queries that run without error within the time limit;
* ``non_empty``: share returning at least one row;
* ``informative``: share returning at least one row that is not all NULL and not a lone 0 (a stricter figure:
  ``COUNT(*)`` always returns a row);
* failure examples per SQL "shape" (ids only, never question text), build time and database size.

Usage::

    python benchmarks/sql_gold_execution.py [--data ../shared/data/ehrsql2024/v1.0] [--timeout 2.0] [--seed 0]
        [--build-splits train valid] [--eval-splits train valid] [--blind] [--out FILE.json]

Held-out check (does the DB answer questions it was not built from?):
``--build-splits train --eval-splits valid --out benchmarks/results/sql_gold_execution_heldout.json``.
Value-blind baseline: ``--blind --out benchmarks/results/sql_gold_execution_blind.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ehrforge.core.io import atomic_write_json  # noqa: E402
from ehrforge.tasks.sql.database import generate_database  # noqa: E402
from ehrforge.tasks.sql.schema import postprocess_sql  # noqa: E402


def shape(sql: str) -> str:
    """A coarse template key: the SQL with literals and numbers blanked out, first 120 characters."""
    s = re.sub(r"'(?:[^']|'')*'", "?", sql)
    s = re.sub(r"\b\d+(?:\.\d+)?\b", "N", s)
    return s[:120]


def run_query(conn: sqlite3.Connection, sql: str, timeout: float) -> tuple[str, list]:
    deadline = time.perf_counter() + timeout
    conn.set_progress_handler(lambda: 1 if time.perf_counter() > deadline else 0, 10_000)
    try:
        return "ok", conn.execute(sql).fetchmany(100)
    except sqlite3.OperationalError as exc:
        return ("timeout" if "interrupted" in str(exc) else "error"), []
    except sqlite3.Error:
        return "error", []
    finally:
        conn.set_progress_handler(None, 0)


def informative(rows: list) -> bool:
    if not rows:
        return False
    values = [v for row in rows for v in row]
    if all(v is None for v in values):
        return False
    return not (len(values) == 1 and values[0] in (0, 0.0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ehrsql2024" / "v1.0"))
    ap.add_argument("--build-splits", nargs="+", default=["train", "valid"], help="splits whose gold SQL builds the DB")
    ap.add_argument("--eval-splits", nargs="+", default=["train", "valid"], help="splits whose gold SQL is run")
    ap.add_argument("--blind", action="store_true",
                    help="baseline: build the DB from no queries (vocabulary and filler only), i.e. value-blind")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-query time limit in seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "sql_gold_execution.json"))
    ap.add_argument("--db", default=None, help="keep the built database here (default: a temp file)")
    args = ap.parse_args()

    data = Path(args.data)
    items: dict[str, list[tuple[str, str]]] = {}
    for split in dict.fromkeys(args.build_splits + args.eval_splits):
        labels = json.loads((data / split / "label.json").read_text(encoding="utf-8"))
        items[split] = [(qid, sql) for qid, sql in labels.items() if sql != "null"]
    all_sql = [] if args.blind else [sql for split in args.build_splits for _, sql in items[split]]

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "ehrsql_synthetic.sqlite"
        t0 = time.perf_counter()
        stats = generate_database(db, all_sql, seed=args.seed)
        build_s = time.perf_counter() - t0
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        result: dict = {
            "command": "python benchmarks/sql_gold_execution.py " + " ".join(sys.argv[1:]),
            "data": str(data), "db_built_from": [] if args.blind else args.build_splits, "seed": args.seed,
            "timeout_s": args.timeout,
            "build_seconds": round(build_s, 2), "db_bytes": stats["bytes"], "db_rows": stats["rows"],
            "patients": {k: stats[k] for k in ("named_subjects", "scenario_patients", "background_patients")},
            "splits": {},
        }
        for split in args.eval_splits:
            pairs = items[split]
            counts: Counter = Counter()
            failures: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
            t1 = time.perf_counter()
            for qid, raw in pairs:
                sql = postprocess_sql(raw)
                status, rows = run_query(conn, sql, args.timeout)
                counts[status] += 1
                if status != "ok":
                    failures[status][shape(sql)].append(qid)
                    continue
                counts["non_empty"] += bool(rows)
                counts["informative"] += informative(rows)
                if not rows:
                    failures["empty"][shape(sql)].append(qid)
            n = len(pairs)
            result["splits"][split] = {
                "n": n,
                "execute_ok": round(100 * counts["ok"] / n, 2),
                "non_empty": round(100 * counts["non_empty"] / n, 2),
                "informative": round(100 * counts["informative"] / n, 2),
                "errors": counts["error"], "timeouts": counts["timeout"],
                "query_seconds": round(time.perf_counter() - t1, 2),
                # the most frequent failing shapes, with up to 5 example ids each
                "failures": {kind: [{"shape": k, "count": len(v), "ids": v[:5]}
                                    for k, v in sorted(shapes.items(), key=lambda kv: -len(kv[1]))[:15]]
                             for kind, shapes in failures.items()},
            }
        conn.close()
    atomic_write_json(args.out, result)
    for split, r in result["splits"].items():
        print(f"{split}: n={r['n']} execute_ok={r['execute_ok']}% non_empty={r['non_empty']}% "
              f"informative={r['informative']}% errors={r['errors']} timeouts={r['timeouts']}")
    print(f"build {result['build_seconds']} s, db {result['db_bytes'] / 1e6:.1f} MB -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
