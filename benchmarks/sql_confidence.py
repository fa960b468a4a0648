"""Which confidence lets the SQL student answer only where it is right? Selectors tuned for RS(10) on dev, scored on test.

RS(10) costs ten points per wrong answer, so a student that is right on half the questions beats abstaining on all
of them only if its confidence picks out a subset it gets right more than 10 times in 11. This benchmark generates once
(greedy, the shipped student, the same dev/test parts as ``sql_rs.py``), keeps every generation with its token
entropies (``--runs`` folder, one subfolder per model weights + prompt + engine; a rerun reuses them, so it
resumes), and compares abstention rules on the same answers:

* ``max-entropy`` / ``mean-entropy`` - the recipe's threshold on the SQL tokens' entropy;
* ``draft-agreement`` - answer only when the student's executed result equals its draft's (the nearest training
  question's SQL with this question's values put in): two independent routes to the same rows;
* ``draft-agreement+max-entropy`` / ``+mean-entropy`` - both.

Every threshold is chosen on dev (RS(10), ties to fewer abstentions) and reported on test with its counts. Writes
``benchmarks/results/sql_confidence.json``.

    python benchmarks/sql_confidence.py --data ../shared/data/ehrsql2024/v1.0 --engine ct2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._env import device_info  # noqa: E402

from ehrforge.config import load_config  # noqa: E402
from ehrforge.core.io import atomic_write_json  # noqa: E402
from ehrforge.core.types import ABSTAIN_TOKEN, Answer, Generation  # noqa: E402
from ehrforge.tasks.sql import data as sql_data  # noqa: E402
from ehrforge.tasks.sql.abstention import apply_policy, candidate_thresholds  # noqa: E402
from ehrforge.tasks.sql.parse import uncertainty  # noqa: E402
from ehrforge.tasks.sql.score import execution_answers, penalize, reliability_scores  # noqa: E402

PENALTY = 10
ERRORS = ("error_pred", ABSTAIN_TOKEN)


def cache_key(model: str, task: Any, engine: str) -> str:
    """Where a model's generations are cached: a re-shipped ``bundled-sql`` (other weights under the same name), an
    edited prompt or another engine must never reuse the old answers. The key hashes the weights files of the
    model folder (or the spec when it is not a folder), the prompt format and the engine."""
    import hashlib

    from ehrforge.core.models import expand_alias

    digest = hashlib.sha256(f"{task.prompt_format()['hash']}|{engine}".encode())
    folder = Path(expand_alias(model))
    if folder.is_dir():
        for weights in sorted(folder.glob("*.safetensors")):
            digest.update(weights.read_bytes())
    else:
        digest.update(model.encode())
    return digest.hexdigest()[:12]


def generations(task: Any, backend: Any, records: list, path: Path, batch_size: int) -> dict[str, Generation]:
    """Greedy generations by record id, appended to ``path`` as they come (a rerun generates only what is missing)."""
    done: dict[str, Generation] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[row["id"]] = Generation(row["text"], tokens=row["tokens"], token_entropies=row["entropies"])
    todo = [r for r in records if r["id"] not in done]
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with path.open("a", encoding="utf-8") as out:
        for i in range(0, len(todo), batch_size):
            chunk = todo[i : i + batch_size]
            for record, gen in zip(chunk, backend.generate([task.prompt(r) for r in chunk], max_new_tokens=task.max_new_tokens)):
                done[record["id"]] = gen
                out.write(json.dumps({"id": record["id"], "text": gen.text, "tokens": list(gen.tokens),
                                      "entropies": list(gen.token_entropies or [])}) + "\n")
            out.flush()
            n = i + len(chunk)
            print(f"  {path.stem}: {n}/{len(todo)} generated, {(time.perf_counter() - start) / n:.1f} s/question", flush=True)
    return done


def features(task: Any, records: list, gens: dict[str, Generation]) -> list[dict[str, Any]]:
    """Per question: the policed answer (threshold lifted), its uncertainties, its draft's answer, and the score."""
    ctx = task.policy_context(threshold=None)
    pool = task.demonstration_pool()
    sql, draft_sql, rows = {}, {}, []
    for r in records:
        gen = gens[r["id"]]
        pred = apply_policy(task.parse(gen, r), ctx)
        sql[r["id"]] = pred.value if isinstance(pred, Answer) else ABSTAIN_TOKEN
        draft = pool.draft(r["question"], exclude={str(r["id"])})
        draft_sql[r["id"]] = draft or ABSTAIN_TOKEN
        rows.append({"id": r["id"], "answerable": sql_data.is_answerable(r), "policed": isinstance(pred, Answer),
                     "max_u": uncertainty(gen, "max"), "mean_u": uncertainty(gen, "mean")})
    real = task.gold_answers(records)
    pred = execution_answers(task.db, sql, "pred")
    drafted = execution_answers(task.db, draft_sql, "pred")
    scores = reliability_scores(real, pred)
    for row in rows:
        key = row["id"]
        row["agrees_with_draft"] = pred[key] not in ERRORS and pred[key] == drafted[key]
        row["score_if_answered"] = scores[key] if pred[key] != ABSTAIN_TOKEN else None
        row["unanswerable_abstain_score"] = 0 if row["answerable"] else 1
    return rows


def rs(rows: list[dict[str, Any]], answer: list[bool], c: int) -> float:
    """RS(c) when the student answers the questions flagged in ``answer`` (where the policy let it) and abstains on
    the rest."""
    per = []
    for row, ok in zip(rows, answer):
        if ok and row["score_if_answered"] is not None:
            per.append(row["score_if_answered"])
        else:
            per.append(row["unanswerable_abstain_score"])
    return 100 * penalize(per, c)  # percent, as sql_rs.json reports RS


SELECTORS = {
    "none (threshold lifted)": (None, False),
    "max-entropy": ("max_u", False),
    "mean-entropy": ("mean_u", False),
    "draft-agreement": (None, True),
    "draft-agreement+max-entropy": ("max_u", True),
    "draft-agreement+mean-entropy": ("mean_u", True),
}


def decide(rows: list[dict[str, Any]], feature: str | None, agree: bool, threshold: float | None) -> list[bool]:
    return [r["policed"] and (not agree or r["agrees_with_draft"])
            and (feature is None or threshold is None or r[feature] <= threshold) for r in rows]


def counts(rows: list[dict[str, Any]], answer: list[bool]) -> dict[str, Any]:
    answered = [r for r, ok in zip(rows, answer) if ok and r["score_if_answered"] is not None]
    right = sum(r["score_if_answered"] == 1 for r in answered)
    return {"answered": len(answered), "right": right, "wrong": len(answered) - right,
            "answered_unanswerable": sum(not r["answerable"] for r in answered),
            "precision": round(right / len(answered), 3) if answered else None,
            "RS0": round(rs(rows, answer, 0), 2), "RS10": round(rs(rows, answer, PENALTY), 2)}


def tune(dev: list[dict[str, Any]], feature: str | None, agree: bool) -> tuple[float | None, float]:
    """The threshold maximising dev RS(10); ties keep the one that abstains least (the highest)."""
    if feature is None:
        return None, rs(dev, decide(dev, None, agree, None), PENALTY)
    pool = [r[feature] for r, ok in zip(dev, decide(dev, None, agree, None)) if ok]
    best: tuple[float | None, float] = (None, rs(dev, decide(dev, feature, agree, None), PENALTY))
    for t in sorted((t for t in candidate_thresholds(pool) if t is not None), reverse=True):
        score = rs(dev, decide(dev, feature, agree, t), PENALTY)
        if score > best[1]:
            best = (t, score)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="EHRSQL version folder (default: bundled subset)")
    ap.add_argument("--model", default="bundled-sql")
    ap.add_argument("--dev-limit", type=int, default=300)
    ap.add_argument("--test-limit", type=int, default=300, help="300 = the test questions of sql_rs.json")
    ap.add_argument("--engine", choices=["transformers", "ct2"], default=None)
    ap.add_argument("--runs", default="runs/sql-confidence", help="generation cache (resume)")
    ap.add_argument("--json", default="benchmarks/results/sql_confidence.json")
    args = ap.parse_args()
    if args.engine:
        os.environ["EHRFORGE_ENGINE"] = args.engine
    from ehrforge.core.loader import LoadOptions, load_model
    from ehrforge.tasks import resolve_task
    from ehrforge.tasks.sql.recipe import ensure_database, generation_dtype

    cfg = load_config(overrides=[f"data.source={args.data}"] if args.data else [], task="sql", model=args.model)
    task = resolve_task(cfg)
    task.state = task.state.updated(db=str(ensure_database(task.setting("db"), task.source)))
    dev, test, _ = sql_data.split_three(task.load("valid", seed=cfg.data.seed), seed=cfg.data.seed)
    dev, test = sql_data.subsample(dev, args.dev_limit, cfg.data.seed), sql_data.subsample(test, args.test_limit, cfg.data.seed)
    start = time.perf_counter()
    backend = load_model(args.model, task, LoadOptions(device=cfg.sft.device, dtype=generation_dtype(cfg), batch_size=cfg.batch_size))
    cache = Path(args.runs) / cache_key(args.model, task, os.environ.get("EHRFORGE_ENGINE", "transformers"))
    parts = {name: features(task, recs, generations(task, backend, recs, cache / f"{name}.jsonl", cfg.batch_size))
             for name, recs in (("dev", dev), ("test", test))}
    table = {}
    for name, (feature, agree) in SELECTORS.items():
        threshold, dev_rs = tune(parts["dev"], feature, agree)
        table[name] = {"threshold": threshold, "dev_RS10": round(dev_rs, 2),
                       "dev": counts(parts["dev"], decide(parts["dev"], feature, agree, threshold)),
                       "test": counts(parts["test"], decide(parts["test"], feature, agree, threshold))}
    abstain_all = {p: round(rs(rows, [False] * len(rows), PENALTY), 2) for p, rows in parts.items()}
    report = {
        "benchmark": "sql_confidence",
        "command": " ".join(["python", *sys.argv]),
        "model": args.model,
        "engine": os.environ.get("EHRFORGE_ENGINE", "transformers"),
        "device": device_info(),
        "sizes": {p: {"n": len(rows), "unanswerable": sum(not r["answerable"] for r in rows)} for p, rows in parts.items()},
        "abstain_all_RS10": abstain_all,
        "selectors": table,
        "wall_s": round(time.perf_counter() - start, 1),
        "note": "one greedy generation per question; selectors differ only in which answers they keep",
    }
    atomic_write_json(args.json, report)
    print(json.dumps({"abstain_all_RS10": abstain_all, **{k: v["test"] for k, v in table.items()}}, indent=1))


if __name__ == "__main__":
    main()
