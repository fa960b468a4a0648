"""The server over real HTTP: auth, OpenAI-compatible chat (tiny real model), task endpoints, limits, audit, CORS."""

from __future__ import annotations

import concurrent.futures
import json
import stat
import threading
import time

import httpx
import pytest

from ehrforge.core.backends.capabilities import BackendCapability

from ehrforge.core.backends.fake import FakeBackend
from ehrforge.serve import ServeSettings, create_app
from ehrforge.errors import ConfigError, ServeError
from serve_helpers import OTHER_TOKEN, TOKEN, StandInSQLTask, live_server, sql_responder

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings(**kw) -> ServeSettings:
    kw.setdefault("tokens", {"ward7": TOKEN, "ward8": OTHER_TOKEN})
    return ServeSettings(**kw)


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_dir):
    from ehrforge.core.backends.transformers_backend import TransformersBackend

    return TransformersBackend(tiny_model_dir, device="cpu")


@pytest.fixture()
def sql_server(ehr_db, tmp_path):
    app = create_app(settings(audit_log=tmp_path / "audit.jsonl"), FakeBackend(respond=sql_responder), {"sql": StandInSQLTask(ehr_db)})
    with live_server(app) as server:
        yield server


# -- auth ---------------------------------------------------------------------------------------------------------------
def test_health_is_open_but_api_needs_a_valid_token(sql_server):
    with httpx.Client(base_url=sql_server.url) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        missing = c.get("/v1/models")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["type"] == "authentication_error"
        assert c.get("/v1/models", headers={"Authorization": "Bearer not-the-token-at-all"}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        assert c.post("/v1/sql/ask", json={"question": "how many patients"}).status_code == 401
        ok = c.get("/v1/models", headers=AUTH)
        assert ok.status_code == 200 and ok.json()["data"][0]["id"] == "ehrforge"


def test_tokens_from_file_and_env(tmp_path, monkeypatch):
    f = tmp_path / "tokens.txt"
    f.write_text("# ward tokens\nward7:" + TOKEN + "\n\n" + OTHER_TOKEN + "\n")
    monkeypatch.setenv("EHRFORGE_SERVE_TOKENS", "nightshift:env-token-0123456789abcdef")
    app = create_app(ServeSettings(tokens_file=f), FakeBackend(), {})
    with live_server(app) as server, httpx.Client(base_url=server.url) as c:
        for token in (TOKEN, OTHER_TOKEN, "env-token-0123456789abcdef"):
            assert c.get("/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_no_tokens_or_weak_tokens_refuse_to_start(tmp_path, monkeypatch):
    monkeypatch.delenv("EHRFORGE_SERVE_TOKENS", raising=False)
    with pytest.raises(ServeError, match="no bearer tokens"):
        create_app(ServeSettings(), FakeBackend(), {})
    with pytest.raises(ServeError, match="too short"):
        create_app(ServeSettings(tokens={"x": "short"}), FakeBackend(), {})


def test_settings_list_every_problem_at_once(tmp_path):
    with pytest.raises(ConfigError) as err:
        ServeSettings(port=70000, workers=0, cors_origins=["*"], tokens_file=tmp_path / "missing.txt")
    text = str(err.value)
    for needle in ("port", "workers", "cors_origins", "tokens_file"):
        assert needle in text


# -- OpenAI-compatible chat on the tiny real model ------------------------------------------------------------------
def test_chat_completions_on_real_tiny_model(tiny_backend):
    app = create_app(settings(), tiny_backend, {})
    body = {"model": "ehrforge", "messages": [{"role": "user", "content": "SELECT COUNT"}], "max_tokens": 8, "logprobs": True}
    with live_server(app) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as c:
        r = c.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        data = r.json()
        choice = data["choices"][0]
        assert data["object"] == "chat.completion" and choice["message"]["role"] == "assistant"
        assert 1 <= data["usage"]["completion_tokens"] <= 8 and data["usage"]["prompt_tokens"] > 0
        lps = [t["logprob"] for t in choice["logprobs"]["content"]]
        assert len(lps) == data["usage"]["completion_tokens"] and all(lp <= 0 for lp in lps)
        assert 0 < data["ehrforge"]["confidence"] <= 1
        # greedy decoding is deterministic; a streamed answer is the same text
        assert c.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"] == choice["message"]["content"]
        with c.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
        streamed = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
        assert streamed.strip() == choice["message"]["content"]
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
        # unknown model names and unsupported n are refused clearly
        assert c.post("/v1/chat/completions", json={**body, "model": "gpt-4"}).status_code == 404
        assert c.post("/v1/chat/completions", json={**body, "n": 3}).status_code == 400


def test_ehrforge_openai_backend_talks_to_the_server(tiny_backend, monkeypatch):
    """The served student is usable as a teacher/backend by ehrforge itself (OpenAI protocol round trip)."""
    from ehrforge.core.backends.openai_backend import OpenAIBackend

    app = create_app(settings(), tiny_backend, {})
    monkeypatch.setenv("EHRFORGE_API_KEY", TOKEN)
    with live_server(app) as server:
        remote = OpenAIBackend(server.url, model="ehrforge", max_retries=0)
        msgs = [[{"role": "user", "content": "how many patients"}]]
        got = remote.generate(msgs, max_new_tokens=6)[0]
        local = tiny_backend.generate(msgs, max_new_tokens=6)[0]
        assert got.text == local.text
        assert got.token_logprobs == pytest.approx(local.token_logprobs, abs=1e-4)


# -- task endpoints -------------------------------------------------------------------------------------------------
def test_sql_ask_answers_and_abstains(sql_server):
    with httpx.Client(base_url=sql_server.url, headers=AUTH) as c:
        tasks = c.get("/v1/tasks").json()["tasks"]
        assert tasks == [{"name": "sql", "summary": "questions about the test EHR", "endpoint": "/v1/sql/ask"}]
        ans = c.post("/v1/sql/ask", json={"question": "How many patients are there?"}).json()
        assert ans["abstained"] is False and ans["answer"]["rows"] == [[3]] and ans["answer"]["columns"] == ["n"]
        assert ans["task"] == "sql" and 0 < ans["confidence"] <= 1
        no = c.post("/v1/sql/ask", json={"question": "Summarise her mood", "context": {"patient_id": "1"}}).json()
        assert no["abstained"] is True and no["answer"] is None and no["reason"] == "model abstained"
        missing = c.post("/v1/fhirqa/ask", json={"question": "x"})
        assert missing.status_code == 404 and "served: sql" in missing.json()["error"]["message"]
        bad_ctx = c.post("/v1/sql/ask", json={"question": "how many", "context": {"sql": "DROP TABLE patients"}})
        assert bad_ctx.status_code == 400 and "sql" in bad_ctx.json()["error"]["message"]


def test_validation_errors_never_echo_the_question(sql_server):
    secret = "Mrs Jane Doe HIV status " * 300  # over the 4000-character limit
    with httpx.Client(base_url=sql_server.url, headers=AUTH) as c:
        r = c.post("/v1/sql/ask", json={"question": secret})
        assert r.status_code == 400
        assert "question" in r.json()["error"]["message"] and "Jane" not in r.text
        assert c.post("/v1/sql/ask", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400


def test_audit_log_records_digest_not_text(ehr_db, tmp_path):
    import hashlib

    for opt_in in (False, True):
        log = tmp_path / f"audit-{opt_in}.jsonl"
        app = create_app(settings(audit_log=log, log_patient_text=opt_in), FakeBackend(respond=sql_responder),
                         {"sql": StandInSQLTask(ehr_db)})
        question = "How many patients named Jane Doe?"
        with live_server(app) as server, httpx.Client(base_url=server.url) as c:
            c.post("/v1/sql/ask", json={"question": question}, headers=AUTH)
            c.post("/v1/sql/ask", json={"question": question}, headers={"Authorization": "Bearer wrong-token-xxxxxxxxxx"})
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        ok = [e for e in entries if e["status"] == 200][0]
        denied = [e for e in entries if e["status"] == 401][0]
        assert ok["who"] == "ward7" and ok["endpoint"] == "/v1/sql/ask" and ok["abstained"] is False
        assert ok["question_sha256"] == hashlib.sha256(question.encode()).hexdigest()
        assert denied["who"] == "anonymous" and "question_sha256" not in denied
        assert ("Jane" in log.read_text()) is opt_in
        assert TOKEN not in log.read_text()
        assert stat.S_IMODE(log.stat().st_mode) == 0o600


# -- limits ---------------------------------------------------------------------------------------------------------
def test_request_size_limit_413(sql_server):
    big = {"question": "how many", "context": {"pad": "x" * 70_000}}
    with httpx.Client(base_url=sql_server.url, headers=AUTH) as c:
        assert c.post("/v1/sql/ask", json=big).status_code == 413

        def chunks():  # no Content-Length: the limit must count streamed bytes
            for _ in range(20):
                yield b"x" * 8192

        assert c.post("/v1/sql/ask", content=chunks(), headers={"Content-Type": "application/json"}).status_code == 413
        assert c.get("/healthz").status_code == 200


def test_rate_limit_429_per_token(ehr_db):
    app = create_app(settings(rate_per_minute=6, rate_burst=3), FakeBackend(respond=sql_responder), {"sql": StandInSQLTask(ehr_db)})
    with live_server(app) as server, httpx.Client(base_url=server.url) as c:
        codes = [c.get("/v1/models", headers=AUTH).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = c.get("/v1/models", headers=AUTH)
        assert int(r.headers["retry-after"]) >= 1
        # another token has its own bucket
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {OTHER_TOKEN}"}).status_code == 200


def test_bounded_queue_answers_503_and_stays_up():
    release = threading.Event()

    def slow(messages):
        release.wait(10)
        return "ok"

    app = create_app(settings(workers=1, queue_size=2, max_batch=1, rate_burst=100), FakeBackend(respond=slow), {})
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    with live_server(app) as server:
        def one(_):
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
                return c.post("/v1/chat/completions", json=body).status_code

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(one, i) for i in range(12)]
            deadline = time.monotonic() + 20
            while sum(f.done() for f in futures) < 9 and time.monotonic() < deadline:
                time.sleep(0.05)  # 1 running + 2 waiting; the other 9 are refused at once
            release.set()
            codes = sorted(f.result() for f in futures)
        assert codes.count(200) == 3 and codes.count(503) == 9
        with httpx.Client(base_url=server.url) as c:
            health = c.get("/healthz").json()["queue"]
        assert health["rejected_full"] == 9 and health["served"] == 3 and health["waiting"] == 0


def test_waiting_chat_requests_are_batched():
    release = threading.Event()
    batches: list[int] = []

    class SlowBatchBackend(FakeBackend):
        def generate(self, batch, **kw):
            batches.append(len(batch))
            release.wait(10)
            return super().generate(batch, **kw)

    app = create_app(settings(workers=1, queue_size=16, max_batch=8, rate_burst=100), SlowBatchBackend(respond=lambda m: m[-1]["content"]), {})
    with live_server(app) as server:
        def one(i):
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as c:
                r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 4})
                return r.json()["choices"][0]["message"]["content"]

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(one, i) for i in range(6)]
            time.sleep(1.0)  # the first request holds the worker; the other five queue up
            release.set()
            answers = [f.result() for f in futures]
    assert answers == [f"q{i}" for i in range(6)]  # each client gets its own answer back
    assert max(batches) > 1 and sum(batches) == 6 and len(batches) < 6  # fewer model calls than requests


# -- browser-facing safety --------------------------------------------------------------------------------------------
def test_cors_off_by_default_and_opt_in(ehr_db):
    origin = {"Origin": "https://intranet.example-hospital.org"}
    for origins, expect in (([], None), (["https://intranet.example-hospital.org"], "https://intranet.example-hospital.org")):
        app = create_app(settings(cors_origins=origins), FakeBackend(), {})
        with live_server(app) as server, httpx.Client(base_url=server.url) as c:
            r = c.get("/v1/models", headers={**AUTH, **origin})
            assert r.headers.get("access-control-allow-origin") == expect
            evil = c.get("/v1/models", headers={**AUTH, "Origin": "https://evil.example"})
            assert evil.headers.get("access-control-allow-origin") is None


def test_page_is_served_with_strict_headers(sql_server):
    with httpx.Client(base_url=sql_server.url) as c:
        page = c.get("/")
        assert page.status_code == 200 and "ehrforge" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        assert c.get("/static/app.js").status_code == 200
        assert c.get("/docs").status_code == 404  # Swagger UI would load scripts from a CDN
        assert c.get("/static/../app.py").status_code == 404


def test_stream_uses_the_backends_incremental_api_and_stop_sequences():
    class StreamingFake(FakeBackend):
        capabilities = FakeBackend.capabilities | {BackendCapability.STREAM}

        def generate_stream(self, messages, *, max_new_tokens, temperature, seed):
            yield from ["SELECT", " 1", ";", " DROP TABLE x"]

    app = create_app(settings(), StreamingFake(), {})
    body = {"messages": [{"role": "user", "content": "q"}], "stream": True, "stop": [";"]}
    with live_server(app) as server, httpx.Client(base_url=server.url, headers=AUTH) as c:
        with c.stream("POST", "/v1/chat/completions", json=body) as s:
            events = [line[6:] for line in s.iter_lines() if line.startswith("data: ")]
    chunks = [json.loads(e) for e in events[:-1]]
    assert events[-1] == "[DONE]"
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == "SELECT 1"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
