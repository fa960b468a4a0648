"""Over real HTTP on 127.0.0.1: request fields are validated, every error has one JSON shape and echoes nothing the
client sent, an unexpected failure logs only its type, and every request leaves exactly one audit line."""

from __future__ import annotations

import json
import logging
import threading

import httpx
import pytest

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.serve import ServeSettings, create_app
from ehrforge.serve.scheduler import Overloaded
from ehrforge.errors import ConfigError, DataError, ServeError
from serve_helpers import TOKEN, StandInSQLTask, live_server, sql_responder

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "Zyxwvut-Private-Name"  # stands for patient text


class TroubleTask:
    """Answers according to the question: fail with a value-bearing DataError, crash, or report overload."""

    summary = "fails on purpose"

    def ask(self, backend, question, *, patient_id=None):
        if question == "unknown patient":
            raise DataError(f"unknown patient id '{patient_id}'", f"'{patient_id}' is not among the loaded patients")
        if question == "crash":
            raise ValueError(f"bad record {SECRET} {patient_id}")  # an exception message holding patient text
        if question == "busy":
            raise Overloaded("model queue is full", 2.0)
        return {"answer": "ok", "abstained": False, "reason": None, "confidence": 1.0}


@pytest.fixture()
def server(ehr_db, tmp_path):
    settings = ServeSettings(tokens={"ward7": TOKEN}, audit_log=tmp_path / "audit.jsonl", max_body_bytes=4096,
                             default_task="sql")
    tasks = {"calc": TroubleTask(), "sql": StandInSQLTask(ehr_db)}
    app = create_app(settings, FakeBackend(respond=sql_responder), tasks)
    with live_server(app) as live:
        live.audit_path = tmp_path / "audit.jsonl"
        yield live


def _is_error_shape(response: httpx.Response) -> bool:
    body = response.json()
    return set(body) == {"error"} and set(body["error"]) == {"message", "type", "code"} and body["error"]["code"] == response.status_code


def test_huge_seed_and_other_out_of_range_fields_are_400_not_500(server):
    with httpx.Client(base_url=server.url, headers=AUTH) as c:
        for extra in ({"seed": 10**30}, {"seed": -1}, {"temperature": float("inf")}, {"max_tokens": 10**12}):
            body = {"messages": [{"role": "user", "content": SECRET}], **extra}
            r = c.post("/v1/chat/completions", content=json.dumps(body), headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and _is_error_shape(r), (extra, r.text)
            assert next(iter(extra)) in r.json()["error"]["message"]
            assert SECRET not in r.text and str(next(iter(extra.values()))) not in r.text
        nested = c.post("/v1/calc/ask", json={"question": "q", "context": {"patient_id": {"nested": SECRET}}})
        assert nested.status_code == 400 and SECRET not in nested.text


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_unexpected_failure_is_a_500_that_logs_only_the_exception_type(server):
    # uvicorn's loggers do not propagate to the root logger (where caplog listens): listen on them directly
    handler, names = _Records(), ("", "uvicorn", "uvicorn.error", "ehrforge")
    for name in names:
        logging.getLogger(name).addHandler(handler)
    try:
        with httpx.Client(base_url=server.url, headers=AUTH) as c:
            r = c.post("/v1/calc/ask", json={"question": "crash", "context": {"patient_id": "p-4711"}})
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(handler)
    assert r.status_code == 500 and _is_error_shape(r) and "reference" in r.json()["error"]["message"]
    logged = "\n".join(rec.getMessage() for rec in handler.records)
    assert "ValueError" in logged
    assert SECRET not in logged and "p-4711" not in logged and "Exception in ASGI application" not in logged
    assert not any(rec.exc_info for rec in handler.records)  # no traceback attached to any log record


def test_422_names_the_problem_without_echoing_the_patient_id(server):
    with httpx.Client(base_url=server.url, headers=AUTH) as c:
        r = c.post("/v1/calc/ask", json={"question": "unknown patient", "context": {"patient_id": "p-4711"}})
    assert r.status_code == 422 and _is_error_shape(r)
    assert "p-4711" not in r.text and "DataError" in r.text


def test_every_error_has_one_shape(server):
    with httpx.Client(base_url=server.url, headers=AUTH) as c:
        cases = {
            "405": c.get("/v1/chat/completions"),
            "405 ask": c.put("/v1/sql/ask", json={"question": "q"}),
            "404 route": c.get("/v1/nothing-here"),
            "404 task": c.post("/v1/nope/ask", json={"question": "q"}),
            "non-utf8": c.post("/v1/sql/ask", content=b'{"question": "caf\xe9"}', headers={"Content-Type": "application/json"}),
            "not json": c.post("/v1/sql/ask", content=b"{not json", headers={"Content-Type": "application/json"}),
            "validation": c.post("/v1/sql/ask", json={"question": ""}),
            "413": c.post("/v1/sql/ask", json={"question": "x" * 5000}),
            "401": c.get("/v1/models", headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"}),
            "422": c.post("/v1/calc/ask", json={"question": "unknown patient"}),
            "503": c.post("/v1/calc/ask", json={"question": "busy"}),
        }
    for name, r in cases.items():
        assert r.status_code >= 400 and _is_error_shape(r), (name, r.status_code, r.text)
        assert "detail" not in r.json(), name
    assert cases["405"].status_code == 405 and cases["non-utf8"].status_code == 400
    assert "caf" not in cases["non-utf8"].text


def test_every_request_gets_exactly_one_audit_line_with_its_status(server):
    with httpx.Client(base_url=server.url) as c:
        sent = [
            (c.post("/v1/sql/ask", json={"question": "how many patients"}, headers=AUTH), 200),
            (c.post("/v1/sql/ask", json={"question": ""}, headers=AUTH), 400),
            (c.get("/v1/models"), 401),
            (c.post("/v1/nope/ask", json={"question": "q"}, headers=AUTH), 404),
            (c.get("/v1/chat/completions", headers=AUTH), 405),
            (c.post("/v1/sql/ask", json={"question": "x" * 5000}, headers=AUTH), 413),
            (c.post("/v1/calc/ask", json={"question": "unknown patient", "context": {"patient_id": "p-4711"}}, headers=AUTH), 422),
            (c.post("/v1/calc/ask", json={"question": "crash"}, headers=AUTH), 500),
            (c.post("/v1/calc/ask", json={"question": "busy"}, headers=AUTH), 503),
        ]
        assert c.get("/healthz").status_code == 200  # open, data-free, successful: not audited
    assert [r.status_code for r, _ in sent] == [want for _, want in sent]
    entries = [json.loads(line) for line in server.audit_path.read_text().splitlines()]
    assert [e["status"] for e in entries] == [want for _, want in sent]
    by_status = {e["status"]: e for e in entries}
    assert by_status[401]["who"] == "anonymous" and by_status[413]["who"] == "ward7" and by_status[200]["who"] == "ward7"
    assert by_status[500]["error"] == "ValueError" and by_status[422]["error"] == "DataError"
    assert by_status[200]["abstained"] is False and "question_sha256" in by_status[200]
    text = server.audit_path.read_text()
    assert "p-4711" not in text and SECRET not in text and "how many" not in text and TOKEN not in text


def test_page_task_list_defaults_to_the_task_the_server_was_started_for(server):
    with httpx.Client(base_url=server.url, headers=AUTH) as c:
        listed = c.get("/v1/tasks").json()
    assert [t["name"] for t in listed["tasks"]] == ["calc", "sql"] and listed["default"] == "sql"
    page_js = httpx.get(server.url + "/static/app.js").text
    assert "tasks.default" in page_js


def test_tokens_file_with_only_comments_is_an_error(tmp_path, monkeypatch):
    monkeypatch.delenv("EHRFORGE_SERVE_TOKENS", raising=False)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# ward tokens go here\n\n   # none yet\n")
    with pytest.raises(ServeError, match="holds no tokens"):
        create_app(ServeSettings(tokens_file=tokens), FakeBackend(), {})
    from ehrforge.serve import serve

    with pytest.raises(ServeError, match="holds no tokens"):  # and serve() does not fall back to a one-off token
        serve("fake", port=0, tokens_file=str(tokens))


def test_unwritable_audit_log_is_refused_before_start(tmp_path):
    with pytest.raises(ConfigError, match="audit_log cannot be created"):
        ServeSettings(tokens={"a": TOKEN}, audit_log="/proc/nope/a.jsonl")
    with pytest.raises(ConfigError, match="folder"):
        ServeSettings(tokens={"a": TOKEN}, audit_log=tmp_path)


def test_concurrent_requests_each_get_their_own_audit_line(server):
    def one(i):
        with httpx.Client(base_url=server.url, headers=AUTH) as c:
            return c.post("/v1/sql/ask", json={"question": f"how many patients {i}"}).status_code

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = [json.loads(line) for line in server.audit_path.read_text().splitlines()]
    assert len(entries) == 8 and len({e["question_sha256"] for e in entries}) == 8


def test_a_stream_that_fails_after_its_header_is_audited_as_failed(tmp_path):
    """Issue 33 item 10: the 200 header was sent, the generation then failed; the audit line says 500."""
    import json

    import httpx

    from ehrforge.core.backends.fake import FakeBackend
    from ehrforge.serve import ServeSettings, create_app
    from serve_helpers import TOKEN, live_server

    def broken(messages):
        raise RuntimeError("backend died")

    log = tmp_path / "audit.jsonl"
    app = create_app(ServeSettings(tokens={"t": TOKEN}, audit_log=log), FakeBackend(respond=broken), {})
    with live_server(app) as server, httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "stream": True})
        assert r.status_code == 200 and '"code": 500' in r.text
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["status"] == 500 and last["http_status"] == 200 and last["error"] == "RuntimeError"
