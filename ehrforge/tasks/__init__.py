"""The one explicit registry of tasks. Add a recipe by adding a line here."""

from __future__ import annotations

import importlib

from ehrforge.errors import UnknownNameError, closest
from ehrforge.tasks.base import Capability, Task

__all__ = ["TASKS", "DEFAULT_TASK", "DEFAULT_LABEL_TASK", "Capability", "Task", "get_task", "option_problems", "task_class", "task_names"]

#: name -> "module:Class" (imported lazily so `ehrforge --help` stays fast)
TASKS: dict[str, str] = {
    "sql": "ehrforge.tasks.sql.task:SQLTask",
    "fhirqa": "ehrforge.tasks.fhirqa.task:FHIRQATask",
    "classify": "ehrforge.tasks.classify.task:ClassifyTask",
    "extract": "ehrforge.tasks.extract.task:ExtractTask",
    "calc": "ehrforge.tasks.calc.task:CalcTask",
    # the second verifiable-reward task of the calc recipe: patient–trial eligibility on synthetic criteria
    "eligibility": "ehrforge.tasks.calc.eligibility:EligibilityTask",
}


def task_names() -> list[str]:
    return sorted(TASKS)


def tasks_with(capability: Capability) -> list[str]:
    """Registered tasks declaring ``capability`` (for hints such as "tasks with a demo: …")."""
    return [name for name in task_names() if capability in task_class(name).capabilities]


#: the task a bare ``ehrforge ask/eval/train/demo/serve`` runs, and the one ``ehrforge label`` labels for
#: (one place for the defaults)
DEFAULT_TASK = "sql"
DEFAULT_LABEL_TASK = "classify"


def task_class(name: str) -> type[Task]:
    """The registered class (imported on first use); an unknown name suggests the closest one."""
    if name not in TASKS:
        raise UnknownNameError(f"unknown task '{name}'", closest(name, task_names()))
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def option_problems(name: str, options: dict[str, object]) -> list[str]:
    """Problems with ``task_options`` for a task, without building it (config validation lists them with the rest)."""
    from pydantic import ValidationError

    from ehrforge.core.settings import problems_of

    try:
        task_class(name).Options.model_validate(options)
    except ValidationError as exc:
        return problems_of(exc, "task_options.")
    return []


def get_task(name: str, **options: object) -> Task:
    """Instantiate a registered task with typed options; an unknown name suggests the closest one.

    >>> get_task("sqll")
    Traceback (most recent call last):
    ...
    ehrforge.errors.UnknownNameError: unknown task 'sqll' — did you mean 'sql'? (known: calc, classify, eligibility, extract, fhirqa, sql)
    """
    return task_class(name)(**options)
