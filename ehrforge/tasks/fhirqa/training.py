"""Fine-tuning for fhirqa: one LoRA per subtask, or sequentially (task 1, then task 2 on top of it).

Task 1 trains relevance classification: one ``yes``/``no`` example per (question, candidate resource) pair
(:func:`relevance.relevance_pairs`). Sequential fine-tuning follows the paper's setup: the model first learns to
select relevant resources, then the
task-1 adapter is merged and a second LoRA learns to answer. ``core.sft.train_sft`` does the stacking (an adapter
folder as ``base_model`` is merged before the new LoRA), so the final folder loads with
``load_backend("transformers:<out>/answer")`` and carries both stages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ehrforge.core.contract import Record


def train_subtask(
    subtask: str,
    records: Sequence[Record],
    base_model: str,
    out_dir: str | os.PathLike,
    cfg: Any = None,
    *,
    resume: bool = True,
    task_options: dict[str, Any] | None = None,
) -> Path:
    """LoRA SFT of ``base_model`` on one subtask (``select`` or ``answer``) of ``records``."""
    from ehrforge.core.sft import train_sft
    from ehrforge.tasks import get_task  # the task module imports this one: build the task through the registry

    task = get_task("fhirqa", subtask=subtask, **(task_options or {}))
    if subtask == "select":
        # task 1 is relevance classification: one yes/no example per (question, candidate resource)
        from ehrforge.tasks.fhirqa.relevance import relevance_pairs

        records = relevance_pairs(records)
    return train_sft(task, records, base_model, out_dir, cfg, resume=resume)


def train_sequential(
    records: Sequence[Record],
    base_model: str,
    out_dir: str | os.PathLike,
    cfg: Any = None,
    *,
    resume: bool = True,
    task_options: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Train ``<out>/select`` on task 1, then ``<out>/answer`` on task 2 starting from it. With ``resume`` a
    finished stage (its adapter saved) is reused, so an interruption in stage 2 does not repeat stage 1; pass
    ``resume=False`` or delete the folder to retrain."""
    out = Path(out_dir)
    stages = {"select": out / "select", "answer": out / "answer"}
    base = base_model
    for subtask, folder in stages.items():
        if not (resume and (folder / "adapter_config.json").exists()):
            train_subtask(subtask, records, base, folder, cfg, resume=resume, task_options=task_options)
        base = str(folder)
    return stages
