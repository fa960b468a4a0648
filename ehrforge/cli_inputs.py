"""Checks on what a command was given, run before any work starts: output paths that can be written and destroy no
input, ``--context`` pairs, command-line text that is not UTF-8, and operating-system errors as one line each."""

from __future__ import annotations

import sys
from pathlib import Path

from ehrforge.errors import ConfigError


def writable(path: Path | None, what: str) -> None:
    """Check an output path before any work starts: a folder, an unwritable place or /proc fail now, not after an
    hour of labelling or evaluation."""
    from ehrforge.core.io import check_writable

    if path is not None:
        check_writable(path, what)


def not_inside_model(out: Path, model: str) -> None:
    """``train --out`` must not be the folder of the model it trains from (or inside it): saving would overwrite
    the source adapter and record the folder as its own base model."""
    source = Path(model).expanduser()
    if source.is_dir():
        src, dst = source.resolve(), out.expanduser().resolve()
        if dst == src or src in dst.parents:
            raise ConfigError([f"--out {out} is the folder of --model {model} (or inside it): training would overwrite the model it starts from"],
                              "pass a new folder for --out")


def distinct(outputs: dict[str, object], inputs: dict[str, object]) -> None:
    from ehrforge.core.io import check_distinct

    check_distinct(outputs, inputs)  # type: ignore[arg-type]


def context_pairs(pairs: list[str] | None) -> dict[str, str]:
    """``--context key=value`` pairs; ``key=@file`` reads the value from a UTF-8 file (e.g. a patient note)."""
    from ehrforge.errors import DataError

    out: dict[str, str] = {}
    for number, item in enumerate(pairs or [], start=1):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # the argument is not echoed: without '=' it is usually the value itself, i.e. patient text
            raise ConfigError([f"--context number {number} is not key=value"], "e.g. --context note=@note.txt")
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                value = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                why = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "cannot be read"
                # the file name is not echoed: note files are often named after the patient
                raise DataError(f"--context {key}: the file given {why}", "pass a readable UTF-8 text file") from None
        out[key.strip()] = value
    return out


def undecodable_argument() -> int | None:
    """The position of a command-line argument that is not valid UTF-8 (Python keeps such bytes as lone surrogates,
    which fail later, deep inside a tokenizer or a log write), or None."""
    for i, arg in enumerate(sys.argv[1:], start=1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return i
    return None


#: operating-system errors a user can fix, as one line each (the path is not printed: it may be very long, and a
#: file name can carry patient text)
OS_ERRORS = {
    "ENAMETOOLONG": "a path or file name is longer than the operating system allows — use a shorter path",
    "ENOSPC": "no space left on the device — free some space or write to another disk; nothing was half-written",
    "EROFS": "the output is on a read-only file system — write somewhere else",
    "EACCES": "permission denied — pass paths you can read and write",
    "EDQUOT": "disk quota exceeded — free some space or write to another disk",
}


def os_error_line(exc: OSError) -> str | None:
    import errno

    name = errno.errorcode.get(exc.errno or -1)
    return OS_ERRORS.get(name or "")
