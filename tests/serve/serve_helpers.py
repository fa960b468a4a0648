"""A real uvicorn server on 127.0.0.1 (free port, own thread) and a small stand-in question-answering task.

Imported by the serve tests as ``serve_helpers`` (pytest puts this folder on sys.path; tests/ is not a package).
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TOKEN = "test-token-0123456789abcdef"
OTHER_TOKEN = "other-token-0123456789abcdef"


class LiveServer:
    def __init__(self, app: Any, **uvicorn_options: Any) -> None:
        import uvicorn

        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


@contextmanager
def live_server(app: Any, **uvicorn_options: Any) -> Iterator[LiveServer]:
    with LiveServer(app, **uvicorn_options) as server:
        yield server


def make_ehr_db(path: Path) -> Path:
    """A small real SQLite EHR: patients and admissions."""
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE patients (subject_id INTEGER PRIMARY KEY, gender TEXT, anchor_age INTEGER);
        CREATE TABLE admissions (hadm_id INTEGER PRIMARY KEY, subject_id INTEGER, admittime TEXT);
        INSERT INTO patients VALUES (1, 'F', 67), (2, 'M', 54), (3, 'F', 81);
        INSERT INTO admissions VALUES (10, 1, '2100-01-02'), (11, 1, '2100-03-04'), (12, 3, '2101-05-06');
        """
    )
    con.commit()
    con.close()
    return path


class StandInSQLTask:
    """Shaped like the SQL task's ``ask``: the model writes SQL (or ``null``), which runs read-only on SQLite.

    Only for endpoint tests; the real task (guard, abstention policy) is tested by its own suite.
    """

    summary = "questions about the test EHR"

    def __init__(self, db: Path) -> None:
        self.db = Path(db)

    def ask(self, backend: Any, question: str, *, patient_id: str | None = None) -> dict[str, Any]:
        gen = backend.generate([[{"role": "user", "content": question}]], max_new_tokens=64)[0]
        confidence = round(gen.sequence_prob() or 0.0, 4)
        if gen.text.strip() == "null":
            return {"question_id": "q", "answer": None, "abstained": True, "reason": "model abstained", "confidence": confidence}
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            cur = con.execute(gen.text)
            rows = cur.fetchmany(100)
            columns = [d[0] for d in cur.description or []]
        except sqlite3.Error:
            return {"question_id": "q", "answer": None, "abstained": True, "reason": "SQL error", "confidence": confidence}
        finally:
            con.close()
        return {"question_id": "q", "answer": {"sql": gen.text, "columns": columns, "rows": rows, "truncated": False},
                "abstained": False, "reason": None, "confidence": confidence}


def sql_responder(messages: list[dict[str, str]]) -> str:
    """FakeBackend rule: questions mentioning 'how many' get a COUNT query; anything else abstains."""
    q = messages[-1]["content"].lower()
    if "how many" in q:
        return "SELECT COUNT(*) AS n FROM patients"
    return "null"
