"""How good are the drafts the bundled question set gets? Draft-copy execution accuracy by demonstration pool.

    python benchmarks/sql_draft_bank.py --data ../shared/data/ehrsql2024/v1.0

The shipped SQL student learned to edit a draft: the nearest train question's SQL with the new question's values
put in (``DemonstrationPool.draft``). Its training drafts came from the whole EHRSQL train split (5,124 questions);
a user's machine has only the bundled subset (400). This measures, with no model at all (the draft is the answer,
through the same guard and execution policy), what each pool gives:

* ``full_dev``: the first ``--dev-limit`` questions of the dev third of the full EHRSQL valid split (the learning
  curve's dev part, larger), on the database built from the full question set; pools: the bundled 400 alone, the
  400 with the train split's value lexicon, the 400 plus the shipped draft bank (what ``SQLTask`` uses when no
  ``data.source`` is set), banks of 2 and 3 questions per skeleton (built here, not shipped), the whole train split.
* ``bundled_valid``: the bundled subset's own valid questions (the demo's dev and test questions) on the bundled
  database, with the pool the package had before the bank and the one it has now.

Results: ``benchmarks/results/sql_draft_bank.json``. Valid questions are never in a pool (the bank is train-only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._env import device_info  # noqa: E402

from ehrforge.core.io import atomic_write_json  # noqa: E402

RESULTS = Path("benchmarks/results/sql_draft_bank.json")
KEYS = ("execution_accuracy_no_threshold", "n", "n_answerable", "n_correct", "n_wrong", "n_abstained")


def task_for(source: str | None):
    from ehrforge.config import load_config
    from ehrforge.tasks import resolve_task
    from ehrforge.tasks.sql.recipe import ensure_database

    overrides = [f"data.source={source}"] if source else []
    return resolve_task(load_config(task="sql", overrides=overrides), db=str(ensure_database(None, source)))


def score_pool(task, records: list, name: str, pool_records: list, values: list) -> dict:
    from ehrforge.tasks.sql.demonstrations import DemonstrationPool
    from ehrforge.tasks.sql.recipe import draft_copy_predictions

    t0 = time.perf_counter()
    pool = DemonstrationPool(pool_records, method=task.setting("retrieval"), mask_values=task.setting("mask_values"),
                             values=values)
    metrics = task.score(records, draft_copy_predictions(task, records, pool))
    row = {"pool": name, "pool_records": len([r for r in pool_records if r.get("sql")]), "extra_values": len(values),
           **{k: metrics[k] for k in KEYS}, "wall_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="EHRSQL version folder")
    ap.add_argument("--dev-limit", type=int, default=300)
    args = ap.parse_args()

    from ehrforge.tasks.sql import data as sql_data
    from ehrforge.tasks.sql.demonstrations import value_lexicon
    from ehrforge.tasks.sql.draft_bank import build_draft_bank, shipped_draft_bank, with_bank

    start = time.perf_counter()
    bundled_train = sql_data.load_questions("train")
    shipped = shipped_draft_bank()

    full = task_for(args.data)
    train = full.load("train")
    dev = sql_data.subsample(sql_data.split_three(full.load("valid"))[0], args.dev_limit, 0)
    lexicon = value_lexicon(r["sql"] for r in train if r.get("sql") and sql_data.is_answerable(r))
    pools = [("bundled-400", bundled_train, []), ("bundled-400 + train lexicon", bundled_train, lexicon),
             ("bundled-400 + shipped bank (1 per skeleton)", *with_bank(bundled_train, shipped))]
    for m in (2, 3):
        pools.append((f"bundled-400 + bank of {m} per skeleton", *with_bank(bundled_train, build_draft_bank(train, per_skeleton=m))))
    pools.append(("full train split", train, []))
    full_rows = [score_pool(full, dev, *pool) for pool in pools]

    bundled = task_for(None)
    valid = bundled.load("valid")
    bundled_rows = [score_pool(bundled, valid, "bundled-400 (before the bank)", bundled_train, []),
                    score_pool(bundled, valid, "bundled-400 + shipped bank (SQLTask default)",
                               *with_bank(bundled_train, shipped))]
    assert len(bundled.demonstration_pool().retriever) == bundled_rows[1]["pool_records"]  # the package's own pool

    atomic_write_json(RESULTS, {
        "benchmark": "sql_draft_bank",
        "command": "python benchmarks/sql_draft_bank.py --data ../shared/data/ehrsql2024/v1.0"
                   + (f" --dev-limit {args.dev_limit}" if args.dev_limit != 300 else ""),
        "device": device_info(),
        "model": "none (draft-copy: the draft is the answer)",
        "shipped_bank": {"records": len(shipped["records"]), "values": len(shipped["values"]),
                         "bytes": Path("ehrforge/tasks/sql/assets/ehrsql_draft_bank.json").stat().st_size},
        "full_dev": {"questions": "dev third of EHRSQL v1.0 valid, first %d (subsample seed 0)" % len(dev),
                     "rows": full_rows},
        "bundled_valid": {"questions": "the bundled subset's valid split (%d)" % len(valid), "rows": bundled_rows},
        "wall_s": round(time.perf_counter() - start, 1),
    })
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
