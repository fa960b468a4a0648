"""Typed settings, declared once and validated up front with every problem listed at once.

Every settings block in ehrforge (the run configuration, SFT, GRPO, each task's ``Options``) is a :class:`Settings`
model: unknown keys are errors, CLI strings such as ``"8"`` or ``"0.5"`` are coerced to the declared type, and
:func:`build` turns pydantic's validation errors into one :class:`~ehrforge.errors.ConfigError` naming each field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ehrforge.errors import ConfigError

S = TypeVar("S", bound="Settings")


class Settings(BaseModel):
    """A block of typed settings: unknown keys are rejected, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def problems_of(exc: ValidationError, prefix: str = "") -> list[str]:
    """One ``field: what is wrong`` line per pydantic error (never the offending value: it may be patient text).

    >>> from pydantic import Field
    >>> class Demo(Settings):
    ...     n: int = Field(1, ge=1)
    >>> try:
    ...     Demo(n=0, m=2)
    ... except ValidationError as exc:
    ...     print(problems_of(exc, "demo."))
    ['demo.n: Input should be greater than or equal to 1', 'demo.m: unknown setting']
    """
    out = []
    for err in exc.errors():
        loc = prefix + ".".join(str(p) for p in err["loc"]) if err["loc"] else prefix.rstrip(".") or "config"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting"
        out.append(f"{loc}: {msg}")
    return out


def build(cls: type[S], values: Mapping[str, Any] | None = None, *, prefix: str = "", hint: str | None = None) -> S:
    """``cls(**values)``, or a ConfigError that lists every bad field at once.

    >>> from pydantic import Field
    >>> class Demo(Settings):
    ...     n: int = Field(1, ge=1)
    >>> build(Demo, {"n": "3"}).n
    3
    """
    try:
        return cls.model_validate(dict(values or {}))
    except ValidationError as exc:
        problems = problems_of(exc, prefix)
        raise ConfigError(problems, *([hint] if hint else [])) from None


def finite(value: float | None, name: str = "value") -> float | None:
    """Validator body for thresholds: NaN or infinity would silently switch a safety decision off (or on)."""
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return value
