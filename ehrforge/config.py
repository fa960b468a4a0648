"""Typed run configuration: a YAML file plus ``--set a.b=value`` overrides, validated up front.

All problems are reported at once (``ConfigError`` lists every bad field), before any model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ehrforge.errors import ConfigError, closest


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SFTSettings(Strict):
    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    max_seq_len: int = Field(1024, ge=32)
    seed: int = 0
    save_steps: int = Field(50, ge=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"


class AbstentionSettings(Strict):
    #: how per-token entropies become one uncertainty score
    entropy: Literal["max", "mean"] = "max"
    #: the penalty c of RS(c) the threshold is tuned for on the dev split
    target_penalty: int = Field(10, ge=0)
    #: fixed threshold; null = tune on the dev split
    threshold: float | None = None
    #: abstain when the SQL errors, violates the guard, or returns no rows
    execution_filter: bool = True


class DataSettings(Strict):
    source: str | None = None  # None: bundled subset, or ../shared when present
    train_limit: int | None = Field(None, ge=1)
    valid_limit: int | None = Field(None, ge=1)
    seed: int = 0


class RunConfig(Strict):
    task: str = "sql"
    model: str = "bundled"
    teacher: str | None = None
    output_dir: Path = Path("runs")
    db: str | None = None  # a file path or a postgresql:// URL (a Path would mangle the URL)
    data: DataSettings = DataSettings()
    sft: SFTSettings = SFTSettings()
    abstention: AbstentionSettings = AbstentionSettings()
    self_training: bool = True
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    task_options: dict[str, Any] = Field(default_factory=dict)
    #: GRPO settings (see ehrforge.core.grpo.GRPOSettings), e.g. --set grpo.num_generations=8 --set grpo.beta=0.04
    grpo: dict[str, Any] = Field(default_factory=dict)

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        from ehrforge.tasks import task_names

        if value not in task_names():
            raise ValueError(f"unknown task '{value}', {closest(value, task_names())}")
        return value


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
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
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
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "config"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown setting"
            problems.append(f"{loc}: {msg}")
        raise ConfigError(problems) from None
    if config.grpo:
        from ehrforge.core.grpo import GRPOSettings

        try:
            GRPOSettings.from_mapping(config.grpo).validate()
        except ConfigError as exc:
            problems += [f"grpo: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return config
