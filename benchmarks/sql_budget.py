"""The SQL generation budget: gold SQL lengths in the bundled model's tokens, EHRSQL train and valid.

    python benchmarks/sql_budget.py --data ../shared/data/ehrsql2024/v1.0

Writes benchmarks/results/sql_budget.json: percentiles per split and the share of gold SQL (+ the EOS token) that
fits the task's default ``max_new_tokens``. Tokenizer only: seconds, no lock needed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._env import device_info  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/ehrsql2024/v1.0")
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--json", default="benchmarks/results/sql_budget.json")
    args = ap.parse_args()

    import numpy as np
    from transformers import AutoTokenizer

    from ehrforge.core.io import atomic_write_json
    from ehrforge.core.models import resolve_model
    from ehrforge.tasks.sql import data as sql_data
    from ehrforge.tasks.sql.task import SQLTask

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.model))
    budget = SQLTask.default_max_new_tokens
    splits = {}
    for split in sql_data.SPLITS:
        sqls = [r["sql"] for r in sql_data.load_questions(split, args.data) if sql_data.is_answerable(r)]
        n = np.array([len(tokenizer(s, add_special_tokens=False)["input_ids"]) + 1 for s in sqls])  # + EOS
        splits[split] = {"answerable": len(n), **{f"p{q}": float(np.percentile(n, q)) for q in (50, 90, 95, 99)},
                         "max": int(n.max()), "share_within_default": round(float((n <= budget).mean()), 4),
                         "share_within_256": round(float((n <= 256).mean()), 4)}
    atomic_write_json(args.json, {"benchmark": "sql_budget", "command": " ".join(sys.argv), "device": device_info(),
                                  "model": args.model, "default_max_new_tokens": budget, "counts_include_eos": True,
                                  "splits": splits, "wall_s": round(time.perf_counter() - start, 1)})
    print(splits)


if __name__ == "__main__":
    main()
