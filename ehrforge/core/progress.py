"""Rich progress bars for long jobs, and a transformers callback that drives one during training."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

#: Progress and status go to stderr so stdout stays clean for results (tables, JSON).
console = Console(stderr=True)


def progress_enabled() -> bool:
    return os.environ.get("EHRFORGE_PROGRESS", "1") != "0"


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(n)`` function for a bar showing done/total, elapsed and remaining time."""
    if not progress_enabled():
        yield lambda n=1: None
        return
    if not console.is_terminal:
        # Logs (CI, nohup): a plain line at every 10 % instead of a live bar that would only render at the end.
        state = {"done": 0, "shown": -1, "start": time.monotonic()}

        def advance(n: int = 1) -> None:
            state["done"] += n
            step = int(10 * state["done"] / total) if total else state["done"]
            if step != state["shown"]:
                state["shown"] = step
                console.print(f"{description}: {state['done']}/{total or '?'} ({time.monotonic() - state['start']:.0f} s)", soft_wrap=True)

        yield advance
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console) as bar:
        task_id = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task_id, n)


def training_progress_callback(description: str) -> Any:
    """A ``TrainerCallback`` that shows a rich bar over optimisation steps and the latest loss/reward."""
    from transformers import TrainerCallback

    class _RichCallback(TrainerCallback):
        def __init__(self) -> None:
            self._progress: Progress | None = None
            self._task: Any = None

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self._start = time.monotonic()
            self._shown = -1
            self._last: dict[str, float] = {}
            if not progress_enabled() or not console.is_terminal:
                return
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=console,
            )
            self._progress.start()
            self._task = self._progress.add_task(description, total=state.max_steps, completed=state.global_step, info="")

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._progress is not None:
                self._progress.update(self._task, completed=state.global_step)
            elif progress_enabled() and state.max_steps:
                # Not a terminal (CI, nohup): a plain line at every 10 % of the steps.
                decile = int(10 * state.global_step / state.max_steps)
                if decile != self._shown:
                    self._shown = decile
                    info = " ".join(f"{k}={v:.3f}" for k, v in self._last.items())
                    console.print(f"{description}: step {state.global_step}/{state.max_steps} ({time.monotonic() - self._start:.0f} s) {info}", soft_wrap=True)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs:
                self._last = {k: float(logs[k]) for k in ("loss", "reward", "kl") if isinstance(logs.get(k), (int, float))}
            if self._progress is not None and self._last:
                self._progress.update(self._task, info=" ".join(f"{k}={v:.3f}" for k, v in self._last.items()))

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

    return _RichCallback()
