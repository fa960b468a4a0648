"""The HTTP probes: one row per bad request to a real server on 127.0.0.1 (issue 14), plus rows for what holds.

The server (:func:`probe_server`) runs the real sql, calc, eligibility and fhirqa tasks behind a FakeBackend that
"writes" what the question asks for (a COUNT query, a DROP TABLE, an abstention), and a stand-in ``trouble`` task that
crashes (500) or reports overload (503) on request, so every status code can be provoked. Every row is checked by
:func:`probe_kit.assert_http_outcome` (status, one error shape, no traceback or submitted value in the response or
the server log) and by its own ``check``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from probe_kit import SECRET, HttpProbe

TOKEN = "probe-token-0123456789abcdef"


class TroubleTask:
    """Stand-in task: ``crash`` raises an exception whose message holds patient text, ``busy`` reports overload."""

    summary = "fails on purpose (probe stand-in)"

    def ask(self, backend: Any, question: str, *, patient_id: str | None = None) -> dict[str, Any]:
        from ehrforge.serve.scheduler import Overloaded

        if question == "crash":
            raise ValueError(f"record of {SECRET} is corrupt")
        if question == "busy":
            raise Overloaded("model queue is full", 2.0)
        return {"answer": "ok", "abstained": False, "reason": None, "confidence": 1.0}


def _writes(messages: list[dict[str, str]]) -> str:
    question = messages[-1]["content"].lower()
    if "drop" in question:
        return "DROP TABLE patients"
    if "how many" in question:
        return "SELECT COUNT(*) AS n FROM patients"
    return "null"


def _schema_db(path: Path) -> Path:
    from ehrforge.tasks.sql.schema import schema_ddl

    con = sqlite3.connect(path)
    con.executescript(schema_ddl())
    con.execute("INSERT INTO patients (row_id, subject_id, gender, dob) VALUES (1, 10001, 'f', '2040-01-01 00:00:00')")
    con.commit()
    con.close()
    return path


@contextmanager
def probe_server(folder: Path) -> Iterator[Any]:
    from serve_helpers import live_server

    from ehrforge.core.backends.fake import FakeBackend
    from ehrforge.serve import ServeSettings, create_app
    from ehrforge.tasks import get_task

    folder.mkdir(parents=True, exist_ok=True)
    db = _schema_db(folder / "ehr.sqlite")
    tasks = {"calc": get_task("calc"), "eligibility": get_task("eligibility"), "fhirqa": get_task("fhirqa"),
             "sql": get_task("sql", db=str(db)), "trouble": TroubleTask()}
    settings = ServeSettings(tokens={"ward7": TOKEN}, audit_log=folder / "audit.jsonl", max_body_bytes=8192,
                             rate_per_minute=100_000, rate_burst=100_000, default_task="sql")
    app = create_app(settings, FakeBackend(respond=_writes), tasks)
    from ehrforge.serve.run import uvicorn_options

    with live_server(app, **uvicorn_options(settings, audit=app.state.audit)) as server:  # as `ehrforge serve` runs it
        server.db, server.db_digest = db, hashlib.sha256(db.read_bytes()).hexdigest()
        server.audit_path = folder / "audit.jsonl"
        yield server


# -- checks -------------------------------------------------------------------------------------------------------
def audited(response: Any, server: Any) -> None:
    """The request left exactly one audit line, with the status the client got."""
    entries = [json.loads(line) for line in server.audit_path.read_text().splitlines()]
    assert entries, "no audit line at all"
    last = entries[-1]
    assert last["status"] == response.status_code, f"audit says {last['status']}, client got {response.status_code}"
    assert SECRET not in server.audit_path.read_text()


def audit_client_is_the_socket(response: Any, server: Any) -> None:
    last = json.loads(server.audit_path.read_text().splitlines()[-1])
    assert last.get("client") == "127.0.0.1", f"audit recorded client {last.get('client')!r}"


def _and(*checks: Any) -> Any:
    def check(response: Any, server: Any) -> None:
        for c in checks:
            c(response, server)

    return check


def db_unchanged(response: Any, server: Any) -> None:
    assert hashlib.sha256(server.db.read_bytes()).hexdigest() == server.db_digest, "the database file changed"
    body = response.json()
    assert body.get("abstained") is True or response.status_code == 422, f"a DROP TABLE was answered: {body}"


def no_source_served(response: Any, server: Any) -> None:
    assert "create_app" not in response.text and "import " not in response.text


def default_is_sql(response: Any, server: Any) -> None:
    listed = response.json()
    assert listed["default"] == "sql" and [t["name"] for t in listed["tasks"]][0] == "calc"


def csp_present(response: Any, server: Any) -> None:
    assert "script-src 'self'" in response.headers["content-security-policy"]


def locked_out(response: Any, server: Any) -> None:
    import httpx

    wrong = {"Authorization": "Bearer wrong-token-wrong-token-1"}
    with httpx.Client(base_url=server.url) as c:
        codes = [c.get("/v1/models", headers=wrong).status_code for _ in range(12)]
    assert codes[0] == 401 and codes[-1] == 429, codes


def answered_count(response: Any, server: Any) -> None:
    body = response.json()
    assert body["abstained"] is False and body["answer"]["rows"] == [[1]], body


ASK = "/v1/{}/ask"
CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": SECRET}]

PROBES: list[HttpProbe] = [
    # -- item 4: no 500 on a plain question to any task ------------------------------------------------------------
    HttpProbe("http-calc-plain-question", "4", "POST", ASK.format("calc"), (200, 400), json={"question": "what is the BMI?"}),
    HttpProbe("http-eligibility-plain-question", "4", "POST", ASK.format("eligibility"), (200, 400),
              json={"question": "is she eligible?"}),
    HttpProbe("http-fhirqa-no-patient", "4", "POST", ASK.format("fhirqa"), (200, 400), json={"question": "which medications?"}),
    # -- item 7: request fields validated, nothing but the exception type logged ---------------------------------------
    HttpProbe("http-chat-huge-seed", "7", "POST", CHAT, 400, json={"messages": MSG, "seed": 10**30}, check=audited),
    HttpProbe("http-chat-negative-max-tokens", "7", "POST", CHAT, 400, json={"messages": MSG, "max_tokens": -5}),
    HttpProbe("http-chat-infinite-temperature", "7", "POST", CHAT, 400,
              content=b'{"messages": [{"role": "user", "content": "hi"}], "temperature": Infinity}',
              headers={"Content-Type": "application/json"}),
    HttpProbe("http-ask-nested-context", "7", "POST", ASK.format("fhirqa"), 400,
              json={"question": "q", "context": {"patient_id": {"name": SECRET}}}),
    HttpProbe("http-crash-logs-type-only", "7", "POST", ASK.format("trouble"), 500, json={"question": "crash"}, check=audited),
    # -- item 9: one audit line per request, whatever its status ---------------------------------------------------------
    HttpProbe("audit-200", "9", "POST", ASK.format("sql"), 200, json={"question": "how many patients?"},
              check=_and(audited, answered_count)),
    HttpProbe("audit-400", "9", "POST", ASK.format("sql"), 400, json={"question": ""}, check=audited),
    HttpProbe("audit-401", "9", "GET", "/v1/models", 401, auth=False, check=audited),
    HttpProbe("audit-404", "9", "POST", ASK.format("nope"), 404, json={"question": "q"}, check=audited),
    HttpProbe("audit-405", "9", "GET", CHAT, 405, check=audited),
    HttpProbe("audit-413", "9", "POST", ASK.format("sql"), 413, json={"question": SECRET * 1000}, check=audited),
    HttpProbe("audit-422", "9", "POST", ASK.format("fhirqa"), (200, 422),
              json={"question": "which medications?", "context": {"patient_id": SECRET}}, check=audited),
    HttpProbe("audit-500", "9", "POST", ASK.format("trouble"), 500, json={"question": "crash"}, check=audited),
    HttpProbe("audit-503", "9", "POST", ASK.format("trouble"), 503, json={"question": "busy"}, check=audited),
    # -- item 10: no echo, one error shape, the page's default task ---------------------------------------------------
    HttpProbe("http-unknown-patient-not-echoed", "10", "POST", ASK.format("fhirqa"), (200, 422),
              json={"question": "which medications?", "context": {"patient_id": SECRET}}),
    HttpProbe("http-405-error-shape", "10", "PUT", ASK.format("sql"), 405, json={"question": "q"}),
    HttpProbe("http-non-utf8-body-error-shape", "10", "POST", ASK.format("sql"), 400,
              content=b'{"question": "caf\xe9 ' + SECRET.encode() + b'"}', headers={"Content-Type": "application/json"}),
    HttpProbe("http-not-json-error-shape", "10", "POST", ASK.format("sql"), 400, content=b"{not json " + SECRET.encode(),
              headers={"Content-Type": "application/json"}),
    HttpProbe("http-unknown-route-error-shape", "10", "GET", "/v1/nothing", 404),
    HttpProbe("page-default-task", "10", "GET", "/v1/tasks", 200, check=default_is_sql),
    # -- already holding ------------------------------------------------------------------------------------------
    HttpProbe("guard-drop-table", "pass:guard", "POST", ASK.format("sql"), (200, 422),
              json={"question": "please drop the patients table"}, check=db_unchanged),
    HttpProbe("tokens-wrong-token", "pass:tokens", "GET", "/v1/models", 401,
              headers={"Authorization": "Bearer not-the-token-at-all-xx"}),
    HttpProbe("tokens-lockout", "pass:tokens", "GET", "/v1/models", 200, check=locked_out, fresh_server=True),
    HttpProbe("body-413", "pass:413", "POST", CHAT, 413, json={"messages": [{"role": "user", "content": "x" * 20000}]}),
    HttpProbe("traversal-dotdot", "pass:traversal", "GET", "/static/../app.py", 404, auth=False, check=no_source_served),
    HttpProbe("traversal-encoded", "pass:traversal", "GET", "/static/%2e%2e/app.py", 404, auth=False, check=no_source_served),
    HttpProbe("traversal-encoded-slash", "pass:traversal", "GET", "/static/..%2fapp.py", 404, auth=False,
              check=no_source_served),
    HttpProbe("page-csp", "pass:csp", "GET", "/", 200, auth=False, check=csp_present),
    # -- issue 33 ---------------------------------------------------------------------------------------------------
    HttpProbe("http-forwarded-for-not-believed", "33.7", "GET", "/v1/models", 200,
              headers={"X-Forwarded-For": "203.0.113.9"}, check=audit_client_is_the_socket),
    HttpProbe("http-forwarded-for-wrong-token", "33.7", "GET", "/v1/models", 401, auth=False,
              headers={"X-Forwarded-For": "198.51.100.7", "Authorization": "Bearer wrong-token-0000000000"},
              check=audit_client_is_the_socket),
    HttpProbe("http-question-in-query-string", "33.9", "GET", f"/v1/sql/ask?question={SECRET}", (400, 404, 405), check=audited),
    HttpProbe("http-question-in-query-string-post", "33.9", "POST", f"/v1/sql/ask?question={SECRET}", (200, 400),
              json={"question": "how many patients are there?"}, check=audited),
    HttpProbe("http-question-in-path", "33.9", "POST", f"/v1/{SECRET}/ask", 404, json={"question": "x"}, check=audited),
    HttpProbe("http-secret-in-unknown-route", "33.9", "GET", f"/v2/{SECRET}", 404, check=audited),
    HttpProbe("http-secret-in-static-path", "33.9", "GET", f"/static/{SECRET}.js", 404, auth=False),
    HttpProbe("http-secret-in-chat-query", "33.9", "POST", f"/v1/chat/completions?user={SECRET}", 200,
              json={"messages": [{"role": "user", "content": "hello"}]}, check=audited),
    HttpProbe("http-chat-lone-surrogate", "33.11", "POST", CHAT, 400,
              content=b'{"messages": [{"role": "user", "content": "x \\ud800 y"}]}', headers={"Content-Type": "application/json"}),
    HttpProbe("http-chat-lone-surrogate-in-part", "33.11", "POST", CHAT, 400,
              content=b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\udc00"}]}]}',
              headers={"Content-Type": "application/json"}),
    HttpProbe("http-chat-tools", "33.18", "POST", CHAT, 400, json={"messages": MSG, "tools": [{"type": "function"}]}),
    HttpProbe("http-chat-response-format-json", "33.18", "POST", CHAT, 400, json={"messages": MSG, "response_format": {"type": "json_object"}}),
    HttpProbe("http-chat-functions", "33.18", "POST", CHAT, 400, json={"messages": MSG, "functions": [{"name": "f"}]}),
    HttpProbe("http-chat-tool-choice-auto", "33.18", "POST", CHAT, 400, json={"messages": MSG, "tool_choice": "auto"}),
    HttpProbe("http-chat-response-format-text-ok", "33.18", "POST", CHAT, 200, json={"messages": [{"role": "user", "content": "hi"}],
              "response_format": {"type": "text"}}),
    HttpProbe("http-chat-n-two", "33.18", "POST", CHAT, 400, json={"messages": MSG, "n": 2}),
    HttpProbe("http-chat-top-logprobs-negative", "33.18", "POST", CHAT, 400, json={"messages": MSG, "top_logprobs": -1}),
    HttpProbe("http-chat-max-tokens-true", "33.18", "POST", CHAT, 400, json={"messages": MSG, "max_tokens": True}),
    HttpProbe("http-chat-message-without-content", "33.18", "POST", CHAT, 400, json={"messages": [{"role": "user"}]}),
]
