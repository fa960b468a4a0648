"""The one explicit registry of tasks. Add a recipe by adding a line here."""

from __future__ import annotations

import importlib
from typing import Any
from importlib.resources import files
from pathlib import Path

from ehrforge.core.models import register_shipped_model
from ehrforge.errors import UnknownNameError, closest
from ehrforge.core.contract import Capability, Task

__all__ = ["TASKS", "DEFAULT_TASK", "DEFAULT_LABEL_TASK", "Capability", "Task", "default_model", "get_task", "option_problems", "task_class", "task_names"]

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


#: trained folders shipped inside the package: alias -> (package, folder). Each task's ``default_model`` may name one.
SHIPPED_MODELS: dict[str, tuple[str, str]] = {
    # SmolLM2-135M + the SQL recipe's LoRA, trained on the whole EHRSQL 2024 train split (its NOTICE.md says how)
    "bundled-sql": ("ehrforge.tasks.sql.assets", "bundled-sql"),
}
for _alias, (_package, _folder) in SHIPPED_MODELS.items():
    register_shipped_model(_alias, lambda package=_package, folder=_folder: Path(str(files(package) / folder)))


def task_names() -> list[str]:
    return sorted(TASKS)


def tasks_with(capability: Capability) -> list[str]:
    """Registered tasks declaring ``capability`` (for hints such as "tasks with a demo: …")."""
    return [name for name in task_names() if capability in task_class(name).capabilities]


#: the task a bare ``ehrforge ask/eval/train/demo/serve`` runs, and the one ``ehrforge label`` labels for
#: (one place for the defaults)
DEFAULT_TASK = "sql"
DEFAULT_LABEL_TASK = "classify"


def default_model(names: list[str] | None = None) -> str:
    """The model ``ask``/``serve``/``demo`` use when none is named: the shipped student of the one task asked for
    (``DEFAULT_TASK`` when none is), the base model ``bundled`` for several tasks at once.

    >>> default_model(), default_model(["classify"]), default_model(["sql", "classify"])
    ('bundled-sql', 'bundled', 'bundled')
    """
    names = names or [DEFAULT_TASK]
    return task_class(names[0]).default_model if len(names) == 1 else "bundled"


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


def resolve_task(cfg: Any, **flags: object) -> Task:
    """The one way a run builds its task: the CLI, the recipes, the server and the benchmarks all call this.

    ``cfg`` is a :class:`ehrforge.config.RunConfig` (read for ``task``, ``task_options``, ``max_new_tokens`` and
    ``data.source``); ``flags`` are a verb's own options (``--db``, ``--threshold``, ``--max-new-tokens``), None when
    not given. Precedence, highest first:

    1. a verb's flag;
    2. ``task_options`` (``--set task_options.x=…`` over the YAML file's ``task_options:``);
    3. run-level settings that name a task option (``max_new_tokens``, ``data.source``; ``--set`` over YAML);
    4. a trained folder's manifest (its tuned threshold, its prompt options), folded in when the model loads
       (``Task.restore`` into ``Task.state``, beneath everything the user set: ``Task.setting``);
    5. the task's own defaults.

    A flag the task does not declare is a one-line error instead of being silently ignored.
    """
    from ehrforge.errors import ConfigError

    declared = task_class(cfg.task).Options.model_fields
    run_level = {"max_new_tokens": cfg.max_new_tokens, "source": cfg.data.source}
    options: dict[str, object] = {k: v for k, v in run_level.items() if v is not None and k in declared}
    options.update(cfg.task_options)
    problems = []
    for name, value in flags.items():
        if value is None:
            continue
        if name not in declared:
            problems.append(f"--{name.replace('_', '-')}: the {cfg.task} task has no '{name}' option")
        else:
            options[name] = value
    if problems:
        raise ConfigError(problems, f"{cfg.task} options: {', '.join(declared)}")
    return get_task(cfg.task, **options)
