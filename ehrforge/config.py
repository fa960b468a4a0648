"""Typed run configuration: a YAML file plus ``--set a.b=value`` overrides, validated up front.

All problems are reported at once (``ConfigError`` lists every bad field), before any model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from ehrforge.core.grpo import GRPOSettings
from ehrforge.core.settings import Settings, problems_of
from ehrforge.core.sft import SFTSettings
from ehrforge.errors import ConfigError, closest
from ehrforge.tasks import DEFAULT_TASK, option_problems, task_class, task_names


class DataSettings(Settings):
    source: str | None = None  # None: the task's bundled data, or ../shared when present
    train_limit: int | None = Field(None, ge=1)
    valid_limit: int | None = Field(None, ge=1)
    seed: int = 0


class RunConfig(Settings):
    task: str = DEFAULT_TASK
    model: str = "bundled"
    teacher: str | None = None
    output_dir: Path = Path("runs")
    data: DataSettings = DataSettings()
    sft: SFTSettings = SFTSettings()
    #: e.g. --set grpo.num_generations=8 --set grpo.beta=0.04
    grpo: GRPOSettings = GRPOSettings()
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    #: validated against the task's own ``Options`` model (``ehrforge.tasks.<task>``)
    task_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in task_names():
            raise ValueError(f"unknown task '{value}', {closest(value, task_names())}")
        return value


class _DuplicateKey(Exception):
    def __init__(self, key: str, line: int) -> None:
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201 - PyYAML's signature
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKey(str(key), key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _coerce(text: str) -> Any:
    """``--set`` values are YAML scalars: 3, 0.5, true, null, [a, b] all parse naturally."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> list[str]:
    """Apply ``a.b=value`` overrides in place; returns problems (malformed overrides) instead of raising."""
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            problems.append(f"override '{item}' is not key=value")
            continue
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"override '{key}': '{part}' is not a section")
                break
        else:
            node[parts[-1]] = _coerce(value)
    return problems


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **fields: Any) -> RunConfig:
    """Read YAML (optional), apply explicit fields then ``--set`` overrides, validate everything at once."""
    data: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError([f"config file not found: {path}"], "check the --config path")
        if not path.is_file():
            raise ConfigError([f"config {path} is not a file"], "pass a YAML file to --config")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigError([f"config {path} is not UTF-8 text"], "pass a YAML file to --config") from None
        except OSError as exc:
            raise ConfigError([f"config {path} cannot be read ({exc.strerror})"], "check the file's permissions") from None
        try:
            loaded = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        except _DuplicateKey as exc:
            raise ConfigError([f"{path}: setting '{exc.key}' appears twice (line {exc.line})"], "keep one of them") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError([f"{path} is not valid YAML{where}"], "fix the YAML syntax (indentation, colons, quotes)") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([f"{path} must be a mapping of settings, not a {type(loaded).__name__}"])
        data = loaded
    data.update({k: v for k, v in fields.items() if v is not None})
    problems += apply_overrides(data, overrides or [])
    task = data.get("task", DEFAULT_TASK)
    if isinstance(task, str) and task in task_names() and isinstance(data.get("sft", {}), dict):
        # the recipe's own SFT settings fill only what the file and --set left unsaid
        data["sft"] = {**task_class(task).sft_defaults, **data.get("sft", {})}
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        problems += problems_of(exc)
        config = None
    if isinstance(task, str) and task in task_names() and isinstance(data.get("task_options", {}), dict):
        problems += option_problems(task, data.get("task_options", {}))
    if problems or config is None:
        raise ConfigError(problems)
    return config
