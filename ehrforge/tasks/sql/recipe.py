"""The whole SQL recipe as one function: database → base model → stage-1 SFT → self-training stage 2.

Used by ``ehrforge demo`` and ``benchmarks/sql_rs.py``. Each model is evaluated on the same held-out test part of
the valid split, with its own entropy threshold tuned on a disjoint dev part. Finished training stages are reused
when the run is repeated (resume), and the result table is written atomically as JSON.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ehrforge.core.backends.transformers_backend import bf16_where_native, pick_device
from ehrforge.core.evaluate import evaluate
from ehrforge.core.loader import MANIFEST, LoadOptions, load_model, read_manifest
from ehrforge.core.models import expand_alias
from ehrforge.core.io import atomic_write_json
from ehrforge.core.memory import peak_rss_mb, release_freed_memory
from ehrforge.core.progress import console, progress_bar
from ehrforge.core.sft import train_sft
from ehrforge.core.types import ABSTAIN_TOKEN, Abstain, Answer
from ehrforge.tasks.sql import data as sql_data

if TYPE_CHECKING:  # the task imports this module (its demo); at run time we build it through the registry
    from ehrforge.config import RunConfig  # the run's settings are handed in: config sits above the tasks
    from ehrforge.tasks.sql.task import SQLTask

TABLE_KEYS = ["RS0", "RS5", "RS10", "RSN", "execution_accuracy", "execution_accuracy_no_threshold", "abstention_precision", "abstention_recall", "threshold"]


def default_db_path(source: str | None = None) -> Path:
    """The cached demo database for a question source: it is seeded with that source's values, so each source
    gets its own file."""
    import hashlib

    from ehrforge.core.models import cache_dir

    if source is None:
        return cache_dir() / "ehr_demo.sqlite"
    digest = hashlib.sha256(str(Path(source).expanduser().resolve()).encode()).hexdigest()[:10]
    return cache_dir() / f"ehr_demo_{digest}.sqlite"


def ensure_database(db: str | Path | None, source: str | None, *, rebuild: bool = False) -> Path | str:
    """Build the synthetic MIMIC-IV-shaped database from the questions' gold SQL unless it exists. A PostgreSQL URL
    or an existing file (e.g. a user's real MIMIC-IV) is returned untouched."""
    from ehrforge.errors import DataError
    from ehrforge.tasks.sql.database import built_by_ehrforge, generate_database
    from ehrforge.tasks.sql.urls import is_database_url

    if isinstance(db, str) and is_database_url(db):
        return db
    db = Path(db) if db else default_db_path(source)
    if db.exists() and not rebuild:
        return db
    if db.exists() and not built_by_ehrforge(db) and db != default_db_path(source):
        raise DataError(f"refusing to replace {db}: it is not a database ehrforge built (it may be your data)",
                        "pass a new path for --db, or move that file away first")
    queries = sql_data.gold_queries(source)
    console.print(f"building the synthetic EHR database from {len(queries)} gold queries: {db}", soft_wrap=True)
    generate_database(db, queries, seed=0)
    return db


def generation_dtype(cfg: RunConfig) -> str:
    """The precision the recipe generates in: the one its students train in (bf16 where the CPU has it natively). On
    the dev ablation bf16 generation scored within a question or two of fp32, and it ran 1.7x as fast on these long
    retrieval prompts (sql_memory_bf16.json; docs/sql.md)."""
    return bf16_where_native(cfg.sft.dtype, pick_device(cfg.sft.device))


def _load_student(spec: str, task: SQLTask, cfg: RunConfig) -> Any:
    options = LoadOptions(device=cfg.sft.device, dtype=generation_dtype(cfg), batch_size=cfg.batch_size)
    return load_model(spec, task, options)


def _evaluate_model(name: str, task: SQLTask, backend: Any, dev: list, test: list, cfg: RunConfig) -> dict[str, Any]:
    """The one evaluation path (``core.evaluate``): tune the threshold on dev, then score on test with the policy."""
    predictions = Path(cfg.output_dir) / f"predictions_{name.replace(' ', '')}.jsonl"
    metrics = evaluate(task, {name: backend}, test, dev=dev, batch_size=cfg.batch_size, predictions_out=predictions)[name]
    metrics["threshold"] = (metrics.get("tuned") or {}).get("threshold", task.setting("threshold"))
    metrics["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return metrics


def save_tuning(folder: Path, task: SQLTask, metrics: dict[str, Any]) -> None:
    """Write the threshold (and its RS curve) just tuned on dev for this model (``metrics`` from
    :func:`_evaluate_model`) into its trained folder's manifest, so ``ask`` and ``serve`` use the very policy that
    was measured."""
    import json

    path = Path(folder) / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    tuned = metrics.get("tuned") or {}
    saved, task.state = task.state, task.state.updated(threshold=metrics["threshold"], curve=tuned.get("curve"))
    manifest.update(task.manifest_extras())
    task.state = saved
    atomic_write_json(path, manifest)


def draft_copy_predictions(task: SQLTask, records: list, pool: Any = None) -> list:
    """The baseline without a language model: each question's draft (the nearest demonstration whose values line up,
    with the question's values put in) is the answer, through the same guard/execution policy; a question with no
    draft is abstained on. A student has to beat this, not only its base. ``pool``: another
    ``DemonstrationPool`` than the task's own (a benchmark comparing pools)."""
    pool = pool if pool is not None else task.demonstration_pool()
    predictions = []
    for record in records:
        draft = pool.draft(record["question"], exclude={str(record.get("id"))})
        predictions.append(task.apply_policy(Answer(draft, 1.0, {"uncertainty": 0.0})) if draft
                           else Abstain("no similar training question lines up with this one", 0.0))
    return predictions


def unanswerable_rate(records: list) -> float:
    """Share of labelled records whose gold is ``null``: the cap on how many pool questions may be pseudo-labelled
    unanswerable (EHRSQL valid: about 20 %)."""
    labelled = [r for r in records if r.get("sql")]
    return sum(not sql_data.is_answerable(r) for r in labelled) / len(labelled) if labelled else 0.0


def pseudo_label_unanswerable(task: SQLTask, backend: Any, pool: list, cfg: RunConfig, rate: float) -> tuple[list, dict[str, Any]]:
    """Self-training: among pool questions the stage-1 model abstains on (null, over its threshold, guard, failed
    or empty execution), the most uncertain ones are labelled unanswerable ("null") -- at most ``rate`` of the pool,
    non-executable answers counting as most uncertain. Without the cap a weak stage 1 labels the whole pool
    unanswerable and stage 2 learns to abstain on everything. Only these pseudo-negatives are added; we have no
    trustworthy SQL for the rest."""
    import math

    with progress_bar("stage 1: pseudo-labelling pool", len(pool)) as adv:
        raw = task.predict_raw(backend, pool, batch_size=cfg.batch_size, progress=adv)
    policed = [task.apply_policy(p) for p in raw]

    def how_uncertain(raw_pred: Any, pred: Any) -> float:
        if isinstance(pred, Abstain) and not pred.reason.startswith("uncertain"):
            return math.inf  # said null, or the SQL does not run: the strongest evidence
        u = raw_pred.evidence.get("uncertainty", 0.0) if hasattr(raw_pred, "evidence") else math.inf
        return u if math.isfinite(u) else math.inf

    cap = round(rate * len(pool))
    ranked = sorted((i for i, p in enumerate(policed) if isinstance(p, Abstain)),
                    key=lambda i: -how_uncertain(raw[i], policed[i]))[:cap]
    picked = [pool[i] for i in sorted(ranked)]
    pseudo = [{"id": f"pseudo-{r['id']}", "question": r["question"], "sql": ABSTAIN_TOKEN} for r in picked]
    stats = {"pool": len(pool), "stage1_abstained": sum(isinstance(p, Abstain) for p in policed),
             "cap_rate": round(rate, 4), "cap": cap, "pseudo_labelled": len(pseudo),
             # the pool is labelled EHRSQL valid data whose labels self-training never reads; they measure it here
             "truly_unanswerable": sum(not sql_data.is_answerable(r) for r in picked if r.get("sql")),
             "pool_unanswerable": sum(not sql_data.is_answerable(r) for r in pool if r.get("sql"))}
    return pseudo, stats


def verdict_line(rows: dict[str, dict[str, Any]], name: str = "stage 1") -> str:
    """One readable line under the demo table: what stage 1 answered, how much of it was right, where it abstained,
    and how much of the answerable part its SQL gets right with the threshold lifted, beside the base model's.

    >>> verdict_line({"abstain-all": {"RS0": 15.0}, "stage1": {"n": 20, "n_abstained": 6, "n_correct": 12,
    ...     "n_unanswerable": 3, "n_answered_unanswerable": 1, "RS0": 60.0, "execution_accuracy_no_threshold": 0.7647},
    ...     "base": {"execution_accuracy_no_threshold": 0.1765}}, "bundled-sql")
    'bundled-sql answers 14 of 20 test questions, 12 correctly; it abstains on 6, 2 of the 3 unanswerable among them; RS(0) 60.0 vs 15.0 for abstaining on everything; threshold lifted, its SQL is right for 13 of 17 answerable (base: 3)'
    """
    row = rows.get("stage1")
    if not row or "n" not in row:
        return ""
    answered = row["n"] - row["n_abstained"]
    caught = row["n_unanswerable"] - row["n_answered_unanswerable"]
    line = (f"{name} answers {answered} of {row['n']} test questions, {row['n_correct']} correctly; it abstains on "
            f"{row['n_abstained']}, {caught} of the {row['n_unanswerable']} unanswerable among them")
    if "abstain-all" in rows:
        line += f"; RS(0) {row['RS0']:.1f} vs {rows['abstain-all']['RS0']:.1f} for abstaining on everything"
    if "execution_accuracy_no_threshold" in row:
        answerable = row["n"] - row["n_unanswerable"]
        right = round(row["execution_accuracy_no_threshold"] * answerable)
        line += f"; threshold lifted, its SQL is right for {right} of {answerable} answerable"
        if "execution_accuracy_no_threshold" in rows.get("base", {}):
            line += f" (base: {round(rows['base']['execution_accuracy_no_threshold'] * answerable)})"
    return line


def run_sql_recipe(cfg: RunConfig, *, stages: int = 2, include_base: bool = True,
                   part_limits: tuple[int | None, int | None, int | None] | None = None,
                   tune_shipped: bool = False, task: SQLTask | None = None) -> dict[str, Any]:
    """Run the recipe and return ``{"rows": {model: metrics}, ...}``; also written to ``<output_dir>/sql_results.json``.
    ``part_limits`` caps dev / test / pool separately (default: ``data.valid_limit`` for each). ``tune_shipped``
    tunes a trained folder's threshold on dev here instead of using its manifest's (a benchmark that gives every row
    its own dev tuning, or a generation engine other than the one the threshold was tuned with)."""
    out = Path(cfg.output_dir)
    if task is None:  # built by the one precedence (ehrforge.tasks.resolve_task), as the CLI builds it
        from ehrforge.tasks import resolve_task

        task = resolve_task(cfg)  # type: ignore[assignment]
    # the database: the user's (built there when it does not exist yet) or the cached demo one, held in the task's
    # tuned state; the options stay what the user asked for
    db = ensure_database(task.setting("db"), task.source)
    task.state = task.state.updated(db=str(db))
    train = task.load("train", limit=cfg.data.train_limit, seed=cfg.data.seed)
    dev, test, pool = sql_data.split_three(task.load("valid", seed=cfg.data.seed), seed=cfg.data.seed)
    limits = part_limits or (cfg.data.valid_limit,) * 3
    dev, test, pool = (sql_data.subsample(part, limit, cfg.data.seed) for part, limit in zip((dev, test, pool), limits))
    rows: dict[str, dict[str, Any]] = {}
    rows["abstain-all"] = task.score(test, [Abstain("abstain-all baseline")] * len(test)) | {"threshold": None}
    if task.setting("k") or task.setting("draft"):  # there is a demonstration pool to copy from
        rows["draft-copy"] = task.score(test, draft_copy_predictions(task, test)) | {"threshold": None, "model": "none"}
    sft_cfg = cfg.sft
    # A trained SQL folder given as the model (the shipped `bundled-sql` by default in `ehrforge demo`) is stage 1
    # as it is, with the threshold tuned when it was made; its base model is the base row.
    shipped = read_manifest(cfg.model)
    given = shipped is not None and shipped.get("task") == task.name
    base_spec = shipped["base_model"] if given else cfg.model

    if include_base:
        base = _load_student(base_spec, task, cfg)
        rows["base"] = _evaluate_model("base", task, base, dev, test, cfg)
        del base
        release_freed_memory()

    stage1_dir = Path(expand_alias(cfg.model)) if given else out / "stage1"
    start = time.perf_counter()
    if not given and not (stage1_dir / MANIFEST).exists():
        train_sft(task, train, cfg.model, stage1_dir, sft_cfg)
    train1_s = time.perf_counter() - start
    stage1 = _load_student(str(stage1_dir), task, cfg)
    from_manifest = given and not tune_shipped and (shipped.get("tuned") or {}).get("threshold") is not None
    tune_dev = None if from_manifest else dev
    rows["stage1"] = _evaluate_model("stage 1", task, stage1, tune_dev, test, cfg) | (
        {"model": cfg.model, "threshold_from": "its manifest" if from_manifest else "dev"} if given else {"train_s": round(train1_s, 1)})
    if not given:
        save_tuning(stage1_dir, task, rows["stage1"])

    if stages >= 2 and task.options.self_training:
        task.state = task.state.updated(threshold=rows["stage1"]["threshold"])  # stage 1 pseudo-labels with its own threshold
        pseudo, pseudo_stats = pseudo_label_unanswerable(task, stage1, pool, cfg, unanswerable_rate(dev))
        del stage1
        release_freed_memory()
        stage2_dir = out / "stage2"
        start = time.perf_counter()
        if not (stage2_dir / MANIFEST).exists():
            # a short pass on top of stage 1 (its adapter is merged first), not a second run from the base
            train_sft(task, train + pseudo, str(stage1_dir), stage2_dir, sft_cfg)
        train2_s = time.perf_counter() - start
        stage2 = _load_student(str(stage2_dir), task, cfg)
        # stage 2 keeps stage 1's threshold where stage 1 was not tuned here (its manifest carries it)
        rows["stage2"] = _evaluate_model("stage 2", task, stage2, dev if tune_dev is not None else None, test, cfg) | {
            "train_s": round(train2_s, 1), "pseudo_labelled": len(pseudo), "self_training": pseudo_stats}
        save_tuning(stage2_dir, task, rows["stage2"])
        del stage2
    result = {
        "rows": rows,
        "verdict": verdict_line(rows, "bundled-sql" if given and cfg.model == "bundled-sql" else "stage 1"),
        "table_keys": TABLE_KEYS,
        "sizes": {"train": len(train), "dev": len(dev), "test": len(test), "pool": len(pool),
                  "test_unanswerable": sum(not sql_data.is_answerable(r) for r in test)},
        "config": cfg.model_dump(mode="json"),
        "sft": sft_cfg.model_dump(),
        "generation_dtype": generation_dtype(cfg),
        "db": str(db),
    }
    atomic_write_json(out / "sql_results.json", result)
    return result

