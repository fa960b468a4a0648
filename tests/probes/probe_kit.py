"""How a probe runs and what every probe asserts, whatever its row says.

A probe is one bad input, sent the way a user or client would send it:

* :class:`CliProbe` - an ``ehrforge ...`` command line, run in-process through the real entry point
  (:func:`ehrforge.cli.main`, so the one-line error handling is what is tested) or, with ``subprocess=True``, as a
  real ``python -m ehrforge`` process (for commands that must *not* start, such as ``serve`` with bad options);
* :class:`HttpProbe` - a request to a real uvicorn server on 127.0.0.1.

Every probe asserts its expected exit code or HTTP status, and that no traceback, no submitted value (``secrets``)
and no half-written output file appear. Imported by the probe tests as ``probe_kit`` (its folder is put on
sys.path by conftest.py; tests/ is not a package).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

#: text that stands for patient data; probes put it into inputs and assert it never comes back
SECRET = "Zyxwvut-Private-Name"
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "  raise ")


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    files: dict[str, bytes | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class CliProbe:
    id: str
    item: str  # issue item, e.g. "1" or "8" or "pass:guard" for behaviour that already holds
    args: list[str]
    exit_code: int = 1
    #: files to create in the probe's folder first: name -> bytes, str, or a callable(folder) that writes them
    setup: dict[str, Any] | Callable[[Path], None] = field(default_factory=dict)
    secrets: tuple[str, ...] = (SECRET,)
    #: output paths (relative to the probe's folder) that must not exist afterwards
    no_files: tuple[str, ...] = ()
    #: extra check on the outcome (runs after the common ones); return None or raise AssertionError
    check: Callable[[Outcome, Path], None] | None = None
    #: a failing exit must come with one ``error:`` line (False where exit 1 is a verdict, e.g. PHI found)
    error_line: bool = True
    subprocess: bool = False
    timeout_s: float = 120.0
    slow: bool = False
    #: the item whose fix is still to land; the probe is an expected failure (strict) until it does
    xfail: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class HttpProbe:
    id: str
    item: str
    method: str
    path: str
    status: int | tuple[int, ...]
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: bool = True
    secrets: tuple[str, ...] = (SECRET,)
    #: extra check: (response, server) -> None
    check: Callable[[Any, Any], None] | None = None
    xfail: str | None = None
    slow: bool = False
    #: run against a server of its own (e.g. the failed-login lockout, which would lock out every later probe)
    fresh_server: bool = False


def marks(probe: CliProbe | HttpProbe) -> list[Any]:
    out = []
    if probe.slow:
        out.append(pytest.mark.slow)
    if probe.xfail:
        out.append(pytest.mark.xfail(strict=True, reason=f"issue 14 item {probe.xfail}: fix not landed yet"))
    return out


def params(probes: list[Any]) -> list[Any]:
    return [pytest.param(p, id=p.id, marks=marks(p)) for p in probes]


# -- running ----------------------------------------------------------------------------------------------------------
def _prepare(probe: CliProbe, folder: Path) -> None:
    if callable(probe.setup):
        probe.setup(folder)
        return
    for name, content in probe.setup.items():
        path = folder / name
        if content is None:  # a folder
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


@contextlib.contextmanager
def _chdir(folder: Path):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _in_process(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """``ehrforge ARGS`` through the real entry point, in this process (fast: no interpreter and torch start-up)."""
    from ehrforge.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_env = sys.argv, {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    sys.argv = ["ehrforge", *args]
    code = 0
    # the CLI's own error path may log; route library logs to the captured stderr like a terminal would show them
    handler = logging.StreamHandler(err)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException as exc:  # noqa: BLE001 - an escaping exception is exactly what a probe reports
                import traceback

                err.write("Traceback (most recent call last)\n" + "".join(traceback.format_exception(exc)))
                code = -1
    finally:
        logging.getLogger().removeHandler(handler)
        sys.argv = saved_argv
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out.getvalue(), err.getvalue()


def _subprocess(args: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str, str]:
    full_env = {**os.environ, "EHRFORGE_PROGRESS": "0", **env}
    full_env.pop("EHRFORGE_DEBUG", None)
    try:
        proc = subprocess.run([sys.executable, "-m", "ehrforge", *args], capture_output=True, text=True,
                              timeout=timeout_s, env=full_env)
    except subprocess.TimeoutExpired as exc:
        # a command that should have refused to start is still running (e.g. serve listening despite a bad option)
        return 124, (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), \
            (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    return proc.returncode, proc.stdout, proc.stderr


def run_cli_probe(probe: CliProbe, folder: Path) -> Outcome:
    folder.mkdir(parents=True, exist_ok=True)
    _prepare(probe, folder)
    env = {"EHRFORGE_PROGRESS": "0", "COLUMNS": "100", **probe.env}
    t0 = time.monotonic()
    with _chdir(folder):
        if probe.subprocess:
            code, out, err = _subprocess(probe.args, env, probe.timeout_s)
        else:
            code, out, err = _in_process(probe.args, env)
    outcome = Outcome(code, out, err, extra={"wall_s": round(time.monotonic() - t0, 2)})
    for name in probe.no_files:
        path = folder / name
        outcome.files[name] = path.read_bytes() if path.is_file() else None
    return outcome


# -- what every probe asserts -----------------------------------------------------------------------------------------
def assert_no_leak(text: str, secrets: tuple[str, ...], where: str) -> None:
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"traceback in {where}:\n{text[-2000:]}"
    for secret in secrets:
        assert secret not in text, f"submitted value {secret!r} echoed in {where}"


def assert_cli_outcome(probe: CliProbe, outcome: Outcome, folder: Path) -> None:
    both = outcome.stdout + outcome.stderr
    assert outcome.code == probe.exit_code, (
        f"exit {outcome.code}, expected {probe.exit_code}\nstdout: {outcome.stdout[-1500:]}\nstderr: {outcome.stderr[-1500:]}")
    assert_no_leak(both, probe.secrets, "the output")
    if probe.exit_code == 1 and probe.error_line:
        lines = [ln for ln in outcome.stderr.splitlines() if ln.strip()]
        assert lines and lines[-1].startswith("error:"), f"no one-line error on stderr: {outcome.stderr[-1500:]}"
        assert "unexpected" not in lines[-1], f"an unexpected error instead of a clear line: {lines[-1]}"
    for name, content in outcome.files.items():
        assert content is None, f"{name} was written although the command failed or had nothing to write"
    leftovers = [p.name for p in folder.rglob(".*.tmp")]
    assert not leftovers or probe.exit_code == 0, f"half-written files left behind: {leftovers}"
    if probe.check is not None:
        probe.check(outcome, folder)


# -- HTTP -------------------------------------------------------------------------------------------------------------
class LogCapture(logging.Handler):
    """Everything the server logs while a probe runs (uvicorn's loggers do not propagate to the root)."""

    NAMES = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "ehrforge")

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            import traceback

            text += "\nTraceback (most recent call last)\n" + "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(text)

    def __enter__(self) -> LogCapture:
        for name in self.NAMES:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.NAMES:
            logging.getLogger(name).removeHandler(self)


def run_http_probe(probe: HttpProbe, server: Any, token: str) -> tuple[Any, str]:
    import httpx

    headers = dict(probe.headers)
    if probe.auth and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {token}"
    with LogCapture() as logs, httpx.Client(base_url=server.url, timeout=60) as client:
        kwargs: dict[str, Any] = {"headers": headers}
        if probe.json is not None:
            kwargs["json"] = probe.json
        if probe.content is not None:
            kwargs["content"] = probe.content
        response = client.request(probe.method, probe.path, **kwargs)
        time.sleep(0.05)  # let the server thread finish logging the request
    return response, "\n".join(logs.lines)


def assert_http_outcome(probe: HttpProbe, response: Any, server_log: str, server: Any) -> None:
    allowed = probe.status if isinstance(probe.status, tuple) else (probe.status,)
    assert response.status_code in allowed, f"HTTP {response.status_code}, expected {probe.status}: {response.text[:800]}"
    assert_no_leak(response.text, probe.secrets, "the response")
    assert_no_leak(server_log, probe.secrets, "the server log")
    if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"]), f"error shape: {body}"
    if probe.check is not None:
        probe.check(response, server)
