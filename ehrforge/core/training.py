"""The one training dispatch: a task's own trainer where it declares one, core LoRA SFT or GRPO otherwise.

The CLI (``ehrforge train``), the recipes and the benchmarks call :func:`train`; the task contract itself never
calls back into core. A task with :attr:`Capability.CUSTOM_TRAINING` implements ``train(records, base_model,
out_dir, settings, stage=...)`` and hands the stages it does not customise to :func:`train_core`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ehrforge.core.contract import Capability, Record, Task, UnsupportedError


def check_stage(task: Task, stage: str) -> None:
    """One line when ``stage`` is not one the task trains in."""
    if stage not in task.stages():
        raise UnsupportedError(f"the {task.name} task has no '{stage}' training stage", f"stages: {', '.join(task.stages())}")


def train(task: Task, records: Sequence[Record], base_model: str, out_dir: str | Path, settings: Any = None,
          *, stage: str = "sft") -> Path:
    """Fine-tune ``base_model`` on ``records`` into ``out_dir`` and return the trained folder."""
    check_stage(task, stage)
    if task.supports(Capability.CUSTOM_TRAINING):
        return task.train(records, base_model, out_dir, settings, stage=stage)  # type: ignore[attr-defined]
    return train_core(task, records, base_model, out_dir, settings, stage=stage)


def train_core(task: Task, records: Sequence[Record], base_model: str, out_dir: str | Path, settings: Any = None,
               *, stage: str = "sft") -> Path:
    """Core LoRA SFT, or core GRPO with the task's rewards; settings of the other stage's kind are ignored."""
    check_stage(task, stage)
    if stage == "grpo":
        from ehrforge.core.grpo import GRPOSettings, train_grpo

        return train_grpo(task, records, base_model, out_dir, settings if isinstance(settings, GRPOSettings) else None)
    from ehrforge.core.sft import SFTSettings, train_sft

    return train_sft(task, records, base_model, out_dir, settings if isinstance(settings, SFTSettings) else None)
