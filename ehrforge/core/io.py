"""File I/O that never leaves anything half-written and never loses a record.

* ``atomic_write_*``: write to a temporary file in the same folder, then ``os.replace`` it into place.
* ``read_jsonl``: malformed lines are reported with their line number and copied to a rejects file.
* ``JsonlCheckpoint``: append-only progress file for long, resumable jobs (labelling, synthesis, prediction).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ehrforge.errors import DataError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temp file beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = check_writable(path)
    _make_parent(path, "output")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask applies).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Fail now, with one line, if ``path`` cannot be written later: it is a folder, it lies under /proc or /sys,
    the nearest existing parent is a file, or that parent is not writable. Creates nothing: call it before long work
    starts, so a bad output path fails in a second, not after an hour of labelling."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{what} {path} is a folder, not a file", "pass a file path, e.g. " + str(path / "out.jsonl"))
    parent = path.parent.resolve()
    if parent.parts[:2] in (("/", "proc"), ("/", "sys")):
        raise DataError(f"{what} {path} is under /{parent.parts[1]}, which is not for files", "pass a path in a normal folder")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise DataError(f"{what} {path}: {existing} is a file, not a folder", "pass a path in a folder")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"{what} {path}: {existing} is not writable", "pass a path you can write to")
    if path.exists() and not os.access(path, os.W_OK):
        raise DataError(f"{what} {path} is not writable", "pass a path you can write to, or fix its permissions")
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same inode where both exist (hard links, symlinks, ``./x`` and ``x``),
    else the same resolved path."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.expanduser().resolve() == b.expanduser().resolve()


def check_distinct(outputs: dict[str, str | os.PathLike | None], inputs: dict[str, str | os.PathLike | None]) -> None:
    """Refuse, before any work, an output that is one of the inputs or another output: writing it would destroy
    the input (``label filter --in x --out x``) or one output would overwrite the other.

    >>> check_distinct({"--out": "a.jsonl"}, {"--in": "./a.jsonl"})
    Traceback (most recent call last):
    ...
    ehrforge.errors.DataError: --out a.jsonl is the same file as --in: writing it would destroy that input — pass another path for --out
    """
    named = [(k, v) for k, v in outputs.items() if v is not None]
    for i, (name, path) in enumerate(named):
        for other, source in [(k, v) for k, v in inputs.items() if v is not None] + named[:i]:
            if same_file(path, source):
                what = "that input" if other in inputs else "the other output"
                raise DataError(f"{name} {path} is the same file as {other}: writing it would destroy {what}",
                                f"pass another path for {name}")


@contextlib.contextmanager
def exclusive_output(path: str | os.PathLike, what: str = "output") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a ``.<name>.lock`` file beside it) while a command writes it: a second
    run on the same output refuses with one line instead of interleaving its records with the first's (or
    "resuming" from the first's unfinished part). The lock goes with the process, even when it is killed.

    >>> import tempfile; out = Path(tempfile.mkdtemp()) / "labelled.jsonl"
    >>> with exclusive_output(out):
    ...     with exclusive_output(out):
    ...         pass
    Traceback (most recent call last):
    ...
    ehrforge.errors.DataError: output labelled.jsonl is being written by another running command — wait for it to finish, or pass another path
    """
    import fcntl

    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    _make_parent(lock, what)
    fh = open(lock, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(f"{what} {path.name} is being written by another running command",
                            "wait for it to finish, or pass another path") from None
        yield
    finally:
        fh.close()  # releases the lock; the empty lock file stays (removing it would race a waiting run)


PROVENANCE_SUFFIX = ".provenance.json"


def check_own_output(path: str | os.PathLike, provenance: dict[str, Any], *, overwrite: bool, what: str = "--out") -> None:
    """Before a resumable command appends to ``path``: an existing file must be this command's own earlier output
    (its provenance sidecar records the same ``provenance``), else refuse unless ``overwrite`` (then it starts
    afresh). Then record the provenance. A file another tool (or another task) wrote is never silently replaced.

    >>> import tempfile; out = Path(tempfile.mkdtemp()) / "notes.jsonl"; _ = out.write_text("mine\\n")
    >>> check_own_output(out, {"task": "mytask"}, overwrite=False)
    Traceback (most recent call last):
    ...
    ehrforge.errors.DataError: --out notes.jsonl exists and was not written by this command with these settings (task mytask) — pass --overwrite to replace it, or another path
    """
    path = Path(path)
    sidecar = path.parent / (path.name + PROVENANCE_SUFFIX)
    if path.exists() and path.stat().st_size > 0:
        try:
            recorded = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        if recorded != provenance:
            if not overwrite:
                label = ", ".join(f"{k} {v}" for k, v in provenance.items())
                raise DataError(f"{what} {path.name} exists and was not written by this command with these settings ({label})",
                                "pass --overwrite to replace it, or another path")
            path.unlink()
    atomic_write_json(sidecar, provenance)


def _make_parent(path: Path, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. a read-only mount: the checks above cannot see everything
        raise DataError(f"cannot create the folder for {what} {path} ({type(exc).__name__})", "choose a writable location") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> Path:
    with atomic_open(path) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    return Path(path)


@dataclass
class JsonlReadResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    rejected_lines: list[int] = field(default_factory=list)


def read_jsonl(path: str | os.PathLike, rejects: str | os.PathLike | None = None) -> JsonlReadResult:
    """Read a JSONL file of objects. Bad lines (not UTF-8, not JSON, or not an object) are skipped, their line
    numbers returned, and - when ``rejects`` is given - copied byte for byte to that file so nothing is lost."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}", "check the path, or create it first")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a JSONL file", "pass the .jsonl file itself")
    result = JsonlReadResult()
    bad_raw: list[bytes] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                obj = None  # a line that is not UTF-8 would otherwise load with silently replaced characters
            if not isinstance(obj, dict):
                result.rejected_lines.append(lineno)
                bad_raw.append(raw if raw.endswith(b"\n") else raw + b"\n")
                continue
            result.records.append(obj)
    if rejects is not None and bad_raw:
        with atomic_open(rejects, "wb") as fh:
            fh.writelines(bad_raw)
    return result


def load_json(path: str | os.PathLike, what: str = "file") -> Any:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found: {path}", "check the path")
    if path.is_dir():
        raise DataError(f"{what} is a folder: {path}", "pass the JSON file itself")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{what} is not UTF-8 text: {path}", "pass a JSON file") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{what} is not valid JSON: {path} line {exc.lineno}", "repair or regenerate the file") from None


class JsonlCheckpoint:
    """Append-only JSONL file keyed by ``id``: long jobs write each finished record immediately and skip what is
    already there when re-run. A torn last line (the process was killed mid-write) is ignored and rewritten."""

    def __init__(self, path: str | os.PathLike, key: str = "id") -> None:
        self.path = check_writable(path, "progress file")
        _make_parent(self.path, "progress file")
        self.key = key
        self.done: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            good: list[str] = []
            # a torn write can end inside a multi-byte character: decode leniently, the JSON check drops the line
            for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # torn write from an interrupted run
                if isinstance(rec, dict) and key in rec:
                    self.done[str(rec[key])] = rec
                    good.append(line)
            atomic_write_text(self.path, "".join(g + "\n" for g in good))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def __contains__(self, key: object) -> bool:
        return str(key) in self.done

    def add(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        self.done[str(record[self.key])] = record

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

