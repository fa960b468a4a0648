"""The FastAPI app: an OpenAI-compatible chat API, task endpoints with abstention, and a web page.

Endpoints (all under bearer-token auth except ``/healthz`` and the static page, which carry no data):

* ``GET /v1/models`` and ``POST /v1/chat/completions`` (``stream=true`` answers Server-Sent Events), so any OpenAI
  client — including ehrforge's own ``openai:`` backend — can use the served student;
* ``POST /v1/{task}/ask`` (``/v1/sql/ask`` …) for every task object given that has an ``ask(backend, question,
  **context) -> dict`` method: the answer, its evidence (SQL and result table, cited resources), a confidence, and
  ``abstained``/``reason`` when the model declines;
* ``GET /v1/tasks`` (what the page offers), ``GET /healthz`` (liveness and queue figures), ``GET /`` (the page).

Every model call goes through one bounded :class:`Scheduler` (503 when full); request bodies are capped (413);
each token has a rate limit (429); CORS is off unless origins are listed; the audit log records a digest of each
question, never its text unless the deployment opts in; errors never echo request content.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from ehrforge.core.serve.audit import AuditLog, AuditTrail, note_audit
from ehrforge.core.serve.auth import TokenAuth, read_tokens
from ehrforge.core.serve.limits import BodySizeLimit, RateLimiter, retry_after_header
from ehrforge.core.serve.scheduler import Overloaded, Scheduler
from ehrforge.core.serve.settings import ServeSettings
from ehrforge.core.types import Generation
from ehrforge.errors import BackendError, EhrforgeError, ServeError
from ehrforge.tasks import DEFAULT_TASK

log = logging.getLogger("ehrforge.serve")
STATIC_DIR = Path(__file__).with_name("static")
MAX_QUESTION_CHARS = 4000
#: the largest seed every backend accepts (torch takes unsigned 64-bit; llama.cpp and OpenAI clients signed 64-bit)
MAX_SEED = 2**63 - 1
#: context values a task may receive: plain scalars (an id, a date, a flag), never nested structures
ContextValue = str | int | float | bool | None

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"cache-control", b"no-store"),  # answers carry patient data: no browser or proxy caching
]


class SecurityHeaders:
    """Pure ASGI middleware (works with streaming responses) adding the headers above to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in SECURITY_HEADERS if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- request bodies ---------------------------------------------------------------------------------------------------
def _valid_text(value: str) -> str:
    """Text that can be sent back and logged: a lone surrogate (valid JSON, not valid UTF-8) is refused with 400
    instead of failing mid-response."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid UTF-8 text (a lone surrogate)") from None
    return value


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    #: required, as OpenAI's API requires it for these roles: a message without content is a client mistake
    content: str | list[dict[str, Any]]

    @field_validator("content")
    @classmethod
    def _utf8(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _valid_text(value)
        for part in value:
            if isinstance(part.get("text"), str):
                _valid_text(part["text"])
        return value

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        # OpenAI content parts: keep the text ones
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


#: OpenAI request fields this server cannot honour: sent with a value, they are refused (400 naming the field)
#: rather than silently ignored, since a client relying on them would misread the answer
UNSUPPORTED_CHAT_FIELDS = ("tools", "tool_choice", "functions", "function_call", "response_format")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=64)
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)  # OpenAI's range; alternatives come back empty
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None

    @model_validator(mode="after")
    def _supported(self) -> "ChatRequest":
        sent = [name for name in UNSUPPORTED_CHAT_FIELDS if getattr(self, name) not in (None, [], {}, {"type": "text"}, "none")]
        if sent:
            raise ValueError(f"not supported by this server: {', '.join(sent)}")
        return self
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stream: bool = False
    logprobs: bool = False
    n: int = Field(default=1, ge=1, le=1)
    stop: str | list[str] | None = Field(default=None, max_length=16)


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    context: dict[str, ContextValue] = Field(default_factory=dict, max_length=16)


def api_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape every endpoint answers with (OpenAI's): ``{"error": {"message", "type", "code"}}``."""
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status, headers=headers)


ERROR_KINDS = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found", 405: "method_not_allowed",
               413: "request_too_large", 422: "unprocessable", 502: "upstream_error", 429: "rate_limit_exceeded", 500: "internal_error",
               503: "server_overloaded"}


def submitted_values(body: Any) -> list[str]:
    """Every scalar a client sent, as text, so an error message can be checked for echoes of it.

    >>> submitted_values({"question": "q", "context": {"patient_id": "p-7", "n": 3, "flag": True}})
    ['q', 'p-7', '3', 'True']
    """
    if isinstance(body, BaseModel):
        body = body.model_dump()
    if isinstance(body, dict):
        return [v for item in body.values() for v in submitted_values(item)]
    if isinstance(body, (list, tuple)):
        return [v for item in body for v in submitted_values(item)]
    return [] if body is None else [str(body)]


def without_echo(text: str, values: list[str], fallback: str) -> str:
    """``text`` unless it repeats something the client sent (a patient id, part of a question): then ``fallback``.

    Task errors are written for the command line, where naming the user's own argument helps; over HTTP the same
    message would copy patient identifiers into responses, proxies and browser history.

    >>> without_echo("unknown patient id 'p-7'", ["p-7"], "unknown patient id")
    'unknown patient id'
    >>> without_echo("no such calculator", ["p-7"], "x")
    'no such calculator'
    """
    return fallback if any(v and v.strip() and v in text for v in values) else text


class ContainErrors:
    """Pure ASGI middleware, innermost: an unexpected exception becomes a 500 in the one error shape and a log line
    holding only the exception type and a reference. (Starlette's own handler for ``Exception`` re-raises after
    answering, so the server would log the full traceback - and with it any patient text in local variables.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the point is that nothing escapes with a traceback
            ref = uuid.uuid4().hex[:12]
            log.error("request %s to %s failed: %s", ref, scope.get("path", "?"), type(exc).__name__)
            note_audit(scope, error=type(exc).__name__, reference=ref)
            if not started:
                response = api_error(500, f"internal error (reference {ref}); see the server log", "internal_error")
                await response(scope, receive, send)


def apply_stop(text: str, stop: str | list[str] | None) -> tuple[str, bool]:
    """Cut ``text`` at the first stop sequence.

    >>> apply_stop("SELECT 1; DROP", [";"])
    ('SELECT 1', True)
    """
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def generation_confidence(gen: Generation) -> float | None:
    """Geometric-mean token probability in [0, 1] (None when the backend gives no log-probs)."""
    lp = gen.mean_logprob()
    return None if lp is None else round(math.exp(lp), 4)


def unaccepted_context(ask: Any, context: dict[str, Any]) -> list[str]:
    """Context keys that ``ask`` would not accept as keyword arguments.

    >>> def ask(backend, question, *, patient_id=None): ...
    >>> unaccepted_context(ask, {"patient_id": "p1", "question": "x", "note": "y"})
    ['note', 'question']
    """
    import inspect

    params = inspect.signature(ask).parameters
    reserved = {"backend", "question"}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return sorted(k for k in context if k in reserved)
    accepted = {n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - reserved
    return sorted(k for k in context if k not in accepted)


def endpoint_name(path: str, served: set[str], static_dir: Path) -> str:
    """How a request's path goes into the audit log: a served endpoint or shipped static file as is, anything
    else as ``<unknown route>`` (a path is client text: ``/v1/<a question>/ask`` must not reach the log).

    >>> endpoint_name("/v1/sql/ask", {"/v1/sql/ask"}, Path("/nonexistent")), endpoint_name("/v1/John Smith/ask", {"/v1/sql/ask"}, Path("/x"))
    ('/v1/sql/ask', '<unknown route>')
    """
    if path in served:
        return path
    if path.startswith("/static/") and (static_dir / path.removeprefix("/static/")).is_file() and ".." not in path:
        return path
    return "<unknown route>"


# -- the app ----------------------------------------------------------------------------------------------------------
def create_app(settings: ServeSettings, backend: Any, tasks: dict[str, Any] | None = None) -> FastAPI:
    """Build the server app. ``tasks`` maps a name to an object with ``ask(backend, question, **context) -> dict``."""
    tasks = {name: t for name, t in (tasks or {}).items()}
    for name, task in tasks.items():
        if not callable(getattr(task, "ask", None)):
            raise ServeError(f"task '{name}' cannot be served: it has no ask() method", "serve only tasks that implement ask()")
    tokens = read_tokens(settings.tokens_file, settings.tokens_env, settings.tokens)
    if not tokens:
        raise ServeError("no bearer tokens configured", f"pass --tokens-file, set ${settings.tokens_env}, or let `ehrforge serve` generate one")
    auth = TokenAuth(tokens)
    limiter = RateLimiter(settings.rate_per_minute, settings.rate_burst)
    # Wrong tokens are limited per address so a token cannot be brute-forced at line speed.
    failed_auth = RateLimiter(per_minute=30, burst=10)
    audit = AuditLog(settings.audit_log, log_patient_text=settings.log_patient_text)
    scheduler = Scheduler(backend, workers=settings.workers, queue_size=settings.queue_size,
                          queue_timeout_s=settings.queue_timeout_s, max_batch=settings.max_batch)
    started = time.time()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        scheduler.close()
        audit.close()

    # No /docs: Swagger UI loads scripts from a CDN, which a hospital network blocks and a CSP forbids.
    app = FastAPI(title="ehrforge", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings, app.state.scheduler, app.state.audit, app.state.tasks = settings, scheduler, audit, tasks
    app.state.backend = backend

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def caller(request: Request) -> str:
        name = auth.identify(request.headers.get("authorization"))
        if name is None:
            allowed, retry = failed_auth.acquire("ip:" + client_of(request))
            if not allowed:
                raise HTTPException(429, "too many failed authentications; wait and retry", headers=retry_after_header(retry))
            raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
        note_audit(request.scope, who=name)
        allowed, retry = limiter.acquire("token:" + name)
        if not allowed:
            raise HTTPException(429, f"rate limit exceeded ({settings.rate_per_minute:g}/min)", headers=retry_after_header(retry))
        return name

    # Starlette's HTTPException (unknown route 404, wrong method 405, unreadable body 400) as well as FastAPI's:
    # every error answers in the same shape.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 405:
            message = f"method {request.method} not allowed on {request.url.path}"
        elif exc.status_code == 400 and "parsing the body" in message:
            message = "invalid request: the body is not UTF-8 JSON"
        return api_error(exc.status_code, message, ERROR_KINDS.get(exc.status_code, "invalid_request_error"), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name the fields and the rule, never echo the submitted values (they may be patient text).
        problems = ["/".join(str(p) for p in e.get("loc", ()) if p != "body") + ": " + str(e.get("msg", "invalid"))
                    for e in exc.errors()]
        return api_error(400, "invalid request: " + "; ".join(problems), "invalid_request_error")

    @app.exception_handler(Overloaded)
    async def overloaded(request: Request, exc: Overloaded) -> JSONResponse:
        return api_error(503, exc.reason, "server_overloaded", retry_after_header(exc.retry_after_s))

    @app.exception_handler(EhrforgeError)
    async def known_error(request: Request, exc: EhrforgeError) -> JSONResponse:
        # The message names what is wrong; when it repeats a submitted value (an unknown patient id) it is cut back
        # to the error's kind, and a hint that repeats one is dropped.
        values = request.scope.get("state", {}).get("ehrforge_submitted", [])
        message = without_echo(exc.message, values, f"the request cannot be answered ({type(exc).__name__})")
        hint = without_echo(exc.hint, values, "")
        note_audit(request.scope, error=type(exc).__name__)
        # A backend that cannot be reached (a teacher endpoint down) is the upstream's failure, not the request's
        status = 502 if isinstance(exc, BackendError) else 422
        return api_error(status, f"{message} — {hint}" if hint else message, type(exc).__name__)

    # -- open endpoints -------------------------------------------------------------------------------------------
    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": settings.model_name, "uptime_s": round(time.time() - started, 1),
                "queue": scheduler.snapshot()}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # -- authenticated endpoints ----------------------------------------------------------------------------------
    @app.get("/v1/models")
    async def list_models(who: str = Depends(caller)) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": settings.model_name, "object": "model", "created": int(started),
                                            "owned_by": "ehrforge"}]}

    # What the page selects first: the task the server was started for, not whichever sorts first alphabetically.
    default_task = settings.default_task if settings.default_task in tasks else (DEFAULT_TASK if DEFAULT_TASK in tasks else next(iter(tasks), None))

    @app.get("/v1/tasks")
    async def list_tasks(who: str = Depends(caller)) -> dict[str, Any]:
        return {"tasks": [{"name": n, "summary": getattr(t, "summary", ""), "endpoint": f"/v1/{n}/ask"} for n, t in tasks.items()],
                "default": default_task}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request, who: str = Depends(caller)) -> Any:
        if body.model not in (None, "", "default", settings.model_name):
            raise HTTPException(404, f"model not served here; this server serves '{settings.model_name}'")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
        max_new = min(body.max_completion_tokens or body.max_tokens or settings.default_max_new_tokens, settings.max_new_tokens_cap)
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        t0 = time.perf_counter()
        completion_id = "chatcmpl-" + uuid.uuid4().hex
        note_audit(request.scope, question=last_user)
        if body.stream:
            note_audit(request.scope, stream=True)
            return StreamingResponse(_sse_chat(completion_id, messages, max_new, body, request.scope), media_type="text/event-stream",
                                     headers={"X-Accel-Buffering": "no"})
        gen = await scheduler.generate(messages, max_new_tokens=max_new, temperature=body.temperature, seed=body.seed)
        text, stopped = apply_stop(gen.text, body.stop)
        finish = "stop" if stopped else gen.finish_reason
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                                  "logprobs": None}
        if body.logprobs and gen.token_logprobs is not None:
            choice["logprobs"] = {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                                              for t, lp in zip(gen.tokens, gen.token_logprobs)]}
        note_audit(request.scope, completion_tokens=gen.completion_tokens, latency_ms=round(1000 * (time.perf_counter() - t0), 1))
        return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": settings.model_name,
                "choices": [choice],
                "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                          "total_tokens": gen.prompt_tokens + gen.completion_tokens},
                "ehrforge": {"confidence": generation_confidence(gen)}}

    async def _sse_chat(completion_id: str, messages: list[dict[str, str]], max_new: int, body: ChatRequest,
                        scope: dict) -> AsyncIterator[str]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            return "data: " + json.dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                          "model": settings.model_name,
                                          "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"

        yield chunk({"role": "assistant", "content": ""})
        try:
            finish = "stop"
            async for piece, finish_reason in _pieces(messages, max_new, body):
                if piece:
                    yield chunk({"content": piece})
                if finish_reason:
                    finish = finish_reason
            yield chunk({}, finish)
        except Overloaded as exc:
            # the 200 header is already sent: the audit line records the status the client got in-band
            note_audit(scope, error="Overloaded", stream_status=503)
            yield "data: " + json.dumps({"error": {"message": exc.reason, "type": "server_overloaded", "code": 503}}) + "\n\n"
        except Exception as exc:  # noqa: BLE001 - headers are sent; the error must travel in-band
            log.error("stream %s failed: %s", completion_id, type(exc).__name__)
            note_audit(scope, error=type(exc).__name__, stream_status=500)
            yield "data: " + json.dumps({"error": {"message": "generation failed", "type": "internal_error", "code": 500}}) + "\n\n"
        yield "data: [DONE]\n\n"

    async def _pieces(messages: list[dict[str, str]], max_new: int, body: ChatRequest) -> AsyncIterator[tuple[str, str | None]]:
        """Text pieces as the backend produces them (true streaming when it has ``generate_stream``)."""
        stream_fn = getattr(backend, "generate_stream", None)
        if stream_fn is None:
            gen = await scheduler.generate(messages, max_new_tokens=max_new, temperature=body.temperature, seed=body.seed)
            text, stopped = apply_stop(gen.text, body.stop)
            # No incremental API: send the finished text token by token so clients parse it the same way.
            pieces = gen.tokens if "".join(gen.tokens).strip() == gen.text and not stopped else [text]
            for piece in pieces:
                yield piece, None
            yield "", "stop" if stopped else gen.finish_reason
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()
        done = object()

        def produce() -> None:
            try:
                for piece in stream_fn(messages, max_new_tokens=max_new, temperature=body.temperature, seed=body.seed):
                    if cancelled.is_set():
                        break  # the client left: stop spending model time on it
                    loop.call_soon_threadsafe(queue.put_nowait, piece)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, done)

        job = asyncio.ensure_future(scheduler.call(produce))
        emitted = ""
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    job.result()  # raises Overloaded or the backend's error
                    continue
                piece = getter.result()
                if piece is done:
                    break
                emitted += piece
                cut, stopped = apply_stop(emitted, body.stop)
                if stopped:
                    yield cut[len(emitted) - len(piece):], "stop"
                    return
                yield piece, None
            await job
            yield "", "stop"
        finally:
            cancelled.set()

    @app.post("/v1/{task_name}/ask")
    async def ask(task_name: str, body: AskRequest, request: Request, who: str = Depends(caller)) -> Any:
        note_audit(request.scope, question=body.question)
        request.scope.setdefault("state", {})["ehrforge_submitted"] = submitted_values(body)
        task = tasks.get(task_name)
        if task is None:
            # the name asked for is not repeated: a path segment is client text like any other
            raise HTTPException(404, f"no such task is served here; served: {', '.join(sorted(tasks)) or 'none'}")
        rejected = unaccepted_context(task.ask, body.context)
        if rejected:
            # name the keys, never their values
            raise HTTPException(400, f"context keys not accepted by task '{task_name}': {', '.join(rejected)}")
        t0 = time.perf_counter()
        result = await scheduler.call(lambda: task.ask(backend, body.question, **body.context))
        latency = round(1000 * (time.perf_counter() - t0), 1)
        out = jsonable_encoder({**dict(result), "task": task_name, "latency_ms": latency},
                               custom_encoder={bytes: lambda b: f"<{len(b)} bytes>"})
        note_audit(request.scope, abstained=bool(out.get("abstained")), confidence=out.get("confidence"), latency_ms=latency)
        return out

    app.add_middleware(ContainErrors)  # added first = innermost: it sees the route's exception before Starlette does
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], allow_credentials=False)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # added last = outermost: one audit line per request with its final status, 413 and 500 included
    served_paths = {"/", "/healthz", "/v1/models", "/v1/tasks", "/v1/chat/completions"} | {f"/v1/{n}/ask" for n in tasks}
    app.add_middleware(AuditTrail, audit=audit, identify=lambda header: auth.identify(header),
                       endpoint_of=lambda path: endpoint_name(path, served_paths, STATIC_DIR))
    return app
