"""How well each way of finding demonstrations finds a training question of the same *shape* (no model involved).

For every answerable question of the dev part of EHRSQL valid (``split_three``; test is never looked at), the
retrieved train questions are compared with the gold query by ``tasks.sql.draft_bank.query_skeleton`` (the SQL with its literals
and numbers blanked, whitespace and case folded). Reported per method: ``shape_at_1`` (the nearest demonstration has
the gold shape), ``shape_at_3`` (one of the three does), ``copy_execution_accuracy`` (the nearest demonstration's
SQL executed as the answer, the scorer's metric), ``draft_execution_accuracy`` (the draft, i.e. the first of the
three whose values line up with the question's, adapted to them; the nearest SQL where none does; ``drafted``: the
share of questions that got a draft), and ``shape_in_train`` (the ceiling: a same-shape query exists
anywhere in train). Writes ``benchmarks/results/sql_retrieval.json``.

    python benchmarks/sql_retrieval.py --data ../shared/data/ehrsql2024/v1.0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._env import device_info  # noqa: E402

from ehrforge.tasks.sql.draft_bank import query_skeleton  # noqa: E402

#: (retrieval method, mask values) per arm, in the order of the table in docs/sql.md
ARMS = {"bm25": ("bm25", False), "bm25 masked": ("bm25", True), "minilm": ("minilm", False), "minilm masked": ("minilm", True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/ehrsql2024/v1.0")
    ap.add_argument("--json", default="benchmarks/results/sql_retrieval.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from ehrforge.core.io import atomic_write_json
    from ehrforge.core.types import Answer
    from ehrforge.tasks.sql import data as sql_data
    from ehrforge.tasks.sql.demonstrations import DemonstrationPool
    from ehrforge.tasks.sql.recipe import ensure_database
    from ehrforge.tasks.sql.task import SQLTask

    db = ensure_database(None, args.data)
    task = SQLTask(db=str(db), source=args.data, threshold=None)
    dev = sql_data.split_three(task.load("valid"))[0]
    train = task.load("train")
    answerable = [i for i, r in enumerate(dev) if sql_data.is_answerable(r)]
    train_shapes = {query_skeleton(r["sql"]) for r in train if r.get("sql")}
    report = {"benchmark": "sql_retrieval", "command": " ".join(sys.argv), "device": device_info(),
              "split": "dev part of EHRSQL v1.0 valid (split_three), never test",
              "sizes": {"dev": len(dev), "dev_answerable": len(answerable), "train": len(train)},
              "shape_in_train": round(sum(query_skeleton(dev[i]["sql"]) in train_shapes for i in answerable) / len(answerable), 4),
              "arms": {}}
    for name, (method, mask) in ARMS.items():
        start = time.perf_counter()
        pool = DemonstrationPool(train, method=method, mask_values=mask)
        demos = pool.retriever.nearest_many([r["question"] for r in dev], 3, exclude=[{r["id"]} for r in dev])
        seconds = time.perf_counter() - start
        drafts = [next((a for d in ds if (a := pool.shape.adapt(d["question"], d["sql"], r["question"])) is not None), None)
                  for r, ds in zip(dev, demos)]
        drafted = [task.apply_policy(Answer(a or ds[0]["sql"], 1.0)) for a, ds in zip(drafts, demos)]
        gold = {i: query_skeleton(dev[i]["sql"]) for i in answerable}
        preds = [task.apply_policy(Answer(d[0]["sql"], 1.0)) for d in demos]
        report["arms"][name] = {
            "method": method, "mask_values": mask,
            "shape_at_1": round(sum(query_skeleton(demos[i][0]["sql"]) == gold[i] for i in answerable) / len(answerable), 4),
            "shape_at_3": round(sum(any(query_skeleton(d["sql"]) == gold[i] for d in demos[i]) for i in answerable) / len(answerable), 4),
            "copy_execution_accuracy": round(task.score(dev, preds)["execution_accuracy"], 4),
            "draft_execution_accuracy": round(task.score(dev, drafted)["execution_accuracy"], 4),
            "drafted": round(sum(a is not None for a in drafts) / len(dev), 4),
            "index_and_query_s": round(seconds, 1),
        }
        print(name, report["arms"][name], flush=True)
    atomic_write_json(Path(args.json), report)


if __name__ == "__main__":
    main()
