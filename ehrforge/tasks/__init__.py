"""The one explicit registry of tasks. Add a recipe by adding a line here."""

from __future__ import annotations

import importlib

from ehrforge.errors import UnknownNameError, closest
from ehrforge.tasks.base import Task

#: name -> "module:Class" (imported lazily so `ehrforge --help` stays fast)
TASKS: dict[str, str] = {
    "sql": "ehrforge.tasks.sql.task:SQLTask",
    "fhirqa": "ehrforge.tasks.fhirqa.task:FHIRQATask",
    "classify": "ehrforge.tasks.classify.task:ClassifyTask",
    "extract": "ehrforge.tasks.extract.task:ExtractTask",
    "calc": "ehrforge.tasks.calc.task:CalcTask",
}


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str, **options: object) -> Task:
    """Instantiate a registered task; an unknown name suggests the closest one.

    >>> get_task("sqll")
    Traceback (most recent call last):
    ...
    ehrforge.errors.UnknownNameError: unknown task 'sqll' — did you mean 'sql'? (known: calc, classify, extract, fhirqa, sql)
    """
    if name not in TASKS:
        raise UnknownNameError(f"unknown task '{name}'", closest(name, task_names()))
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
