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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


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
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
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
