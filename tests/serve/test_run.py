"""`serve()`/`build_app()`: model and task loading, start-up refusals, and a real `serve()` process on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serve_helpers import TOKEN

from ehrforge.serve import ServeSettings, build_app, serve
from ehrforge.errors import DatabaseError, ServeError


def test_build_app_serves_the_real_sql_task(ehr_db):
    app = build_app("fake", str(ehr_db), settings=ServeSettings(tokens={"a": TOKEN}), tasks=["sql"])
    assert list(app.state.tasks) == ["sql"] and app.state.tasks["sql"].db == Path(ehr_db)


def test_build_app_refusals(tmp_path):
    """A database that is missing, a text file or a folder stops the server before it starts (never abstentions)."""
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    for bad in (tmp_path / "missing.sqlite", text, tmp_path):
        with pytest.raises(DatabaseError):
            build_app("fake", str(bad), settings=ServeSettings(tokens={"a": TOKEN}))


def test_no_tokens_on_a_network_address_is_refused(monkeypatch):
    monkeypatch.delenv("EHRFORGE_SERVE_TOKENS", raising=False)
    with pytest.raises(ServeError, match="refusing to listen on 0.0.0.0"):
        serve("fake", host="0.0.0.0", port=0)


def test_serve_prints_a_one_off_token_and_answers(ehr_db):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "EHRFORGE_SERVE_TOKENS"}
    code = f"from ehrforge.serve import serve; serve('fake', {str(ehr_db)!r}, port={port}, log_level='warning')"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env)
    try:
        token = None
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if m := re.search(r"#token=(\S+)", line):
                token = m.group(1)
        assert token, "serve() did not print a token"
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(url + "/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(url + "/v1/models").status_code == 401
        r = httpx.get(url + "/v1/tasks", headers={"Authorization": f"Bearer {token}"})
        assert "sql" in [t["name"] for t in r.json()["tasks"]]  # plus every other task that can answer
    finally:
        proc.terminate()
        proc.wait(timeout=20)
