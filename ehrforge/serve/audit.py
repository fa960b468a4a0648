"""Audit log: who asked, when, which endpoint, and a sha256 of what they asked — one JSON object per line.

The question text is written only when ``log_patient_text=True`` (an explicit opt-in for a deployment whose audit
store is itself cleared for patient data). The digest lets an auditor check whether a *given* question was asked
without the log revealing questions; short questions can be guessed by hashing candidates, so keep the log file
as private as the database (the server creates it with mode 0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ehrforge.errors import ServeError


def question_digest(text: str) -> str:
    """sha256 hex digest of the question's UTF-8 bytes.

    >>> question_digest("abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditLog:
    """Append-only JSONL audit trail; safe to call from the event loop and worker threads."""

    def __init__(self, path: str | os.PathLike | None, *, log_patient_text: bool = False) -> None:
        self.path = Path(path) if path else None
        self.log_patient_text = log_patient_text
        self._lock = threading.Lock()
        self._fh = None
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                raise ServeError(f"cannot open the audit log {self.path} ({type(exc).__name__})",
                                 "pass --audit-log a writable file path") from None
            self._fh = os.fdopen(fd, "a", encoding="utf-8")

    def record(self, *, who: str | None, endpoint: str, status: int, question: str | None = None,
               client: str | None = None, **fields: Any) -> dict[str, Any] | None:
        """Write one entry (and return it). ``fields`` must never carry patient text: counts, flags, scores only."""
        if self._fh is None:
            return None
        entry: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "who": who or "anonymous",
            "client": client,
            "endpoint": endpoint,
            "status": status,
        }
        if question is not None:
            entry["question_sha256"] = question_digest(question)
            entry["question_chars"] = len(question)
            if self.log_patient_text:
                entry["question"] = question
        entry.update(fields)
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()  # an audit entry that is lost on a crash is no audit entry
        return entry

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


#: key in the ASGI scope's ``state`` where handlers leave what the audit line should carry
_AUDIT_KEY = "ehrforge_audit"
#: open endpoints whose successful requests carry no data and are not audited (a health check every few seconds
#: would bury the entries that matter); their failures are audited like any other request
_OPEN_PATHS = ("/healthz", "/", "/favicon.ico")


def note_audit(scope: dict[str, Any], **fields: Any) -> None:
    """Add fields (``who``, ``question``, counts, flags - never patient text) to the current request's audit line."""
    scope.setdefault("state", {}).setdefault(_AUDIT_KEY, {}).update(fields)


class AuditTrail:
    """Pure ASGI middleware, outermost: exactly one audit entry per request, written when the request ends, with the
    status the client actually got - 200, 400, 401, 404, 405, 413, 422, 429, 500 or 503 alike.

    Handlers add details with :func:`note_audit`; ``identify`` names the caller from the Authorization header when
    no handler did (a request refused before authentication, e.g. 413 or a malformed body).
    """

    def __init__(self, app: Any, audit: AuditLog, identify: Any, endpoint_of: Any = None) -> None:
        self.app = app
        self.audit = audit
        self.identify = identify
        #: path -> what the log calls it (``create_app`` passes one that names unknown routes by a placeholder)
        self.endpoint_of = endpoint_of or (lambda path: path)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.audit.path is None:
            await self.app(scope, receive, send)
            return
        note_audit(scope)  # make sure the dict exists before any handler copies the state
        status = 500  # if nothing is sent at all, the client saw a failed request
        written = False
        t0 = time.perf_counter()

        def write() -> None:
            nonlocal written
            if written:
                return
            written = True
            path = scope.get("path", "")
            if status < 400 and (path in _OPEN_PATHS or path.startswith("/static/")):
                return
            fields = dict(scope.get("state", {}).get(_AUDIT_KEY, {}))
            who = fields.pop("who", None)
            if who is None:
                raw = dict(scope.get("headers") or []).get(b"authorization")
                who = self.identify(raw.decode("latin-1")) if raw else None
            question = fields.pop("question", None)
            fields.setdefault("latency_ms", round(1000 * (time.perf_counter() - t0), 1))
            client = scope.get("client")
            # a stream that failed after its 200 header: the outcome is the in-band error's status
            outcome = fields.pop("stream_status", None)
            if outcome is not None:
                fields["http_status"] = status
            self.audit.record(who=who, endpoint=self.endpoint_of(path), status=outcome or status, question=question,
                              client=client[0] if client else None, method=scope.get("method"), **fields)

        async def audited_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                write()  # before the last byte leaves: a client that has its answer has its audit line
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        finally:
            write()  # no response completed (client gone, or a failure before the body)
