"""The one evaluation path: several models side by side (base vs fine-tuned vs teacher) on a task's own metric.

``ehrforge eval`` and every recipe script call :func:`evaluate`. Per model it (1) tunes the task's decision
threshold on a dev split when the task can and a dev split is given, (2) predicts the test records, (3) scores them,
and (4) optionally appends one line per record to a predictions JSONL (id, answer or abstention with its reason and
confidence, gold where known). The task is only reached through its plug-in interface.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ehrforge.core.progress import progress_bar
from ehrforge.core.types import Abstain, Prediction

if TYPE_CHECKING:
    from ehrforge.core.contract import Record, Task


def prediction_row(model: str, record: Record, pred: Prediction, gold: Any) -> dict[str, Any]:
    """One line of ``--predictions-out``.

    >>> from ehrforge.core.types import Answer
    >>> prediction_row("base", {"id": "q1"}, Answer("SELECT 1", 0.9), "SELECT 1")
    {'model': 'base', 'id': 'q1', 'abstained': False, 'prediction': 'SELECT 1', 'reason': None, 'confidence': 0.9, 'gold': 'SELECT 1'}
    """
    abstained = isinstance(pred, Abstain)
    return {
        "model": model,
        "id": str(record.get("id")),
        "abstained": abstained,
        "prediction": None if abstained else pred.value,
        "reason": pred.reason if abstained else None,
        "confidence": round(float(pred.confidence), 4),
        "gold": gold,
    }


def evaluate(
    task: Task,
    backends: Mapping[str, Any],
    records: Sequence[Record],
    *,
    dev: Sequence[Record] | None = None,
    batch_size: int = 8,
    predictions_out: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """``{model_name: metrics}``; each metrics dict also has ``wall_s``, ``examples_per_s`` and, where a threshold
    was tuned on ``dev``, what was chosen (``tuned``)."""
    from ehrforge.core.io import atomic_open
    from ehrforge.core.contract import Capability

    results: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for name, backend in backends.items():
        start = time.perf_counter()
        saved = task.state
        tuning = task.tune(backend, dev, batch_size=batch_size, label=name) if dev and task.supports(Capability.TUNE) else None
        if tuning is not None:
            task.state = tuning.state
        with progress_bar(f"eval {task.name} · {name}", len(records)) as advance:
            preds = task.predict(backend, records, batch_size=batch_size, progress=advance)
        wall = time.perf_counter() - start
        metrics: dict[str, Any] = dict(task.score(records, preds))
        if tuning is not None:
            metrics["tuned"] = dict(tuning.report)
        metrics["wall_s"] = round(wall, 2)
        metrics["examples_per_s"] = round(len(records) / wall, 3) if wall > 0 else 0.0
        results[name] = metrics
        rows += [prediction_row(name, r, p, task.gold(r)) for r, p in zip(records, preds)]
        task.state = saved  # the next model starts from the same tuned state (its own tuning, not this one's)
    if predictions_out is not None:
        with atomic_open(Path(predictions_out), "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    return results
