"""Evaluate one task with several models side by side (base vs fine-tuned vs teacher) on its own metric."""

from __future__ import annotations

import resource
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from ehrforge.core.progress import progress_bar
from ehrforge.tasks.base import Record, Task


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def evaluate(
    task: Task,
    backends: Mapping[str, Any],
    records: Sequence[Record],
    *,
    batch_size: int = 8,
) -> dict[str, dict[str, float]]:
    """``{model_name: metrics}``; each metrics dict also has ``wall_s`` and ``examples_per_s``."""
    results: dict[str, dict[str, float]] = {}
    for name, backend in backends.items():
        start = time.perf_counter()
        with progress_bar(f"eval {task.name} · {name}", len(records)) as advance:
            preds = task.predict(backend, records, batch_size=batch_size, progress=advance)
        wall = time.perf_counter() - start
        metrics = dict(task.score(records, preds))
        metrics["wall_s"] = round(wall, 2)
        metrics["examples_per_s"] = round(len(records) / wall, 3) if wall > 0 else 0.0
        results[name] = metrics
    return results


#: Short column headers so a table of many metrics fits an 80-column terminal.
SHORT_LABELS = {
    "execution_accuracy": "exec acc",
    "abstention_precision": "abst P",
    "abstention_recall": "abst R",
    "threshold": "entropy thr",
    "examples_per_s": "ex/s",
}


def metrics_table(results: Mapping[str, Mapping[str, float]], title: str = "", keys: Sequence[str] | None = None) -> Table:
    """A rich table: one row per model, one column per metric (first model's keys unless given)."""
    if keys is None:
        keys = [k for k in next(iter(results.values()), {}) if not k.startswith("n_")]
    table = Table(title=title or None)
    table.add_column("model", style="bold")
    for key in keys:
        table.add_column(SHORT_LABELS.get(key, key), justify="right")
    for name, metrics in results.items():
        row = []
        for key in keys:
            value = metrics.get(key)
            row.append("—" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value))
        table.add_row(name, *row)
    return table
