"""One error hierarchy for everything a user can get wrong.

Every error carries a short statement of *what* is wrong and a *hint* saying how to fix it. The CLI prints
``error: <what> — <hint>`` on one line and exits 1, without a traceback. Messages must never contain patient text
(questions, notes, record contents): name the file, line, field or id instead.
"""

from __future__ import annotations


class EhrforgeError(Exception):
    """Base class: a problem the user can fix. ``hint`` says how."""

    def __init__(self, message: str, hint: str = "", **context: object) -> None:
        self.message = message
        self.hint = hint
        self.context = context
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.context.items())
        text = self.message + (f" ({where})" if where else "")
        return f"{text} — {self.hint}" if self.hint else text


class ConfigError(EhrforgeError):
    """The configuration (YAML file or CLI overrides) is invalid. Lists every problem at once."""

    def __init__(self, problems: list[str], hint: str = "fix the listed fields and run again") -> None:
        self.problems = problems
        super().__init__("invalid configuration: " + "; ".join(problems), hint)


class UnknownNameError(EhrforgeError):
    """An unknown task/backend/verifier name; suggests the closest known one."""


class DataError(EhrforgeError):
    """Input data is missing or malformed (file, line and reason; never the record's text)."""


class ModelError(EhrforgeError):
    """A model cannot be found or loaded."""


class BackendError(EhrforgeError):
    """A model backend (local or HTTP) failed to produce an answer."""


class DatabaseError(EhrforgeError):
    """The EHR database is missing or cannot be opened."""


class SQLGuardError(EhrforgeError):
    """Generated SQL was rejected by the guard (not one read-only SELECT over known tables). The two subclasses are
    the other ways a query ends without rows, so ``except SQLGuardError`` still catches every refused query."""


class QueryTimeoutError(SQLGuardError):
    """A guarded query ran past its time limit and was interrupted."""


class QueryFailedError(SQLGuardError):
    """A guarded query was accepted but the database failed to run it (unknown column, type error, ...)."""


class ServeError(EhrforgeError):
    """The server cannot start as configured."""


def closest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """Return a ' did you mean X?' suffix for an unknown name, or a list of the known names."""
    import difflib

    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    if match:
        return f"did you mean '{match[0]}'? (known: {', '.join(known)})"
    return f"known: {', '.join(known)}"
