"""The one explicit registry of tasks. Add a recipe by adding a line here."""

from __future__ import annotations

import importlib
import inspect

from ehrforge.errors import ConfigError, UnknownNameError, closest
from ehrforge.tasks.base import Task

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


def get_task(name: str, **options: object) -> Task:
    """Instantiate a registered task; an unknown name suggests the closest one.

    >>> get_task("sqll")
    Traceback (most recent call last):
    ...
    ehrforge.errors.UnknownNameError: unknown task 'sqll' — did you mean 'sql'? (known: calc, classify, eligibility, extract, fhirqa, sql)
    """
    if name not in TASKS:
        raise UnknownNameError(f"unknown task '{name}'", closest(name, task_names()))
    module, _, cls = TASKS[name].partition(":")
    factory = getattr(importlib.import_module(module), cls)
    accepted = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = [k for k in options if k not in accepted]
        if unknown:
            raise ConfigError(
                [f"task_options.{k}: the {name} task has no option '{k}'" for k in unknown],
                f"{name} options: {', '.join(accepted) or 'none'}",
            )
    return factory(**options)
