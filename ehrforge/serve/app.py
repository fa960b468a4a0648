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

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ehrforge.core.contract import MAX_QUESTION_CHARS
from ehrforge.errors import BackendError, EhrforgeError, ServeError
from ehrforge.serve.audit import AuditLog, AuditTrail, note_audit
from ehrforge.serve.auth import TokenAuth, read_tokens
from ehrforge.serve.chat import add_chat_routes
from ehrforge.serve.limits import BodySizeLimit, RateLimiter, retry_after_header
from ehrforge.serve.scheduler import Overloaded, Scheduler
from ehrforge.serve.settings import ServeSettings
from ehrforge.tasks import DEFAULT_TASK

log = logging.getLogger("ehrforge.serve")
STATIC_DIR = Path(__file__).with_name("static")
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
@dataclass
class Server:
    """What every route of one app shares: its settings, model, tasks, limits, audit log and model queue."""

    settings: ServeSettings
    backend: Any
    tasks: dict[str, Any]
    auth: TokenAuth
    limiter: RateLimiter
    failed_auth: RateLimiter
    audit: AuditLog
    scheduler: Scheduler
    started: float = field(default_factory=time.time)

    @property
    def default_task(self) -> str | None:
        """What the page selects first: the task the server was started for, not whichever sorts first."""
        if self.settings.default_task in self.tasks:
            return self.settings.default_task
        return DEFAULT_TASK if DEFAULT_TASK in self.tasks else next(iter(self.tasks), None)

    def caller(self, request: Request) -> str:
        """The token name of an authenticated request (a FastAPI dependency); 401 or 429 otherwise."""
        name = self.auth.identify(request.headers.get("authorization"))
        if name is None:
            # Wrong tokens are limited per address so a token cannot be brute-forced at line speed.
            allowed, retry = self.failed_auth.acquire("ip:" + (request.client.host if request.client else "unknown"))
            if not allowed:
                raise HTTPException(429, "too many failed authentications; wait and retry", headers=retry_after_header(retry))
            raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
        note_audit(request.scope, who=name)
        allowed, retry = self.limiter.acquire("token:" + name)
        if not allowed:
            raise HTTPException(429, f"rate limit exceeded ({self.settings.rate_per_minute:g}/min)", headers=retry_after_header(retry))
        return name


def build_server(settings: ServeSettings, backend: Any, tasks: dict[str, Any] | None) -> Server:
    """Check what is to be served and build the shared parts (refuses with one line: no tokens, a task without ask)."""
    tasks = dict(tasks or {})
    for name, task in tasks.items():
        if not callable(getattr(task, "ask", None)):
            raise ServeError(f"task '{name}' cannot be served: it has no ask() method", "serve only tasks that implement ask()")
    tokens = read_tokens(settings.tokens_file, settings.tokens_env, settings.tokens)
    if not tokens:
        raise ServeError("no bearer tokens configured", f"pass --tokens-file, set ${settings.tokens_env}, or let `ehrforge serve` generate one")
    return Server(settings=settings, backend=backend, tasks=tasks, auth=TokenAuth(tokens),
                  limiter=RateLimiter(settings.rate_per_minute, settings.rate_burst),
                  failed_auth=RateLimiter(per_minute=30, burst=10),
                  audit=AuditLog(settings.audit_log, log_patient_text=settings.log_patient_text),
                  scheduler=Scheduler(backend, workers=settings.workers, queue_size=settings.queue_size,
                                      queue_timeout_s=settings.queue_timeout_s, max_batch=settings.max_batch))


def create_app(settings: ServeSettings, backend: Any, tasks: dict[str, Any] | None = None) -> FastAPI:
    """Build the server app. ``tasks`` maps a name to an object with ``ask(backend, question, **context) -> dict``."""
    server = build_server(settings, backend, tasks)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        server.scheduler.close()
        server.audit.close()

    # No /docs: Swagger UI loads scripts from a CDN, which a hospital network blocks and a CSP forbids.
    app = FastAPI(title="ehrforge", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.settings, app.state.scheduler, app.state.audit, app.state.tasks = settings, server.scheduler, server.audit, server.tasks
    app.state.backend = backend
    add_error_handlers(app)
    add_open_routes(app, server)
    add_chat_routes(app, server)
    add_ask_route(app, server)
    add_middleware_stack(app, server)
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error answers in one JSON shape and never echoes what was submitted."""

    # Starlette's HTTPException (unknown route 404, wrong method 405, unreadable body 400) as well as FastAPI's.
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


def add_open_routes(app: FastAPI, server: Server) -> None:
    """The routes that carry no data (liveness, the page) and the authenticated listings."""

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": server.settings.model_name, "uptime_s": round(time.time() - server.started, 1),
                "queue": server.scheduler.snapshot()}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/v1/models")
    async def list_models(who: str = Depends(server.caller)) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": server.settings.model_name, "object": "model",
                                            "created": int(server.started), "owned_by": "ehrforge"}]}

    @app.get("/v1/tasks")
    async def list_tasks(who: str = Depends(server.caller)) -> dict[str, Any]:
        return {"tasks": [{"name": n, "summary": getattr(t, "summary", ""), "endpoint": f"/v1/{n}/ask"}
                          for n, t in server.tasks.items()], "default": server.default_task}


def add_ask_route(app: FastAPI, server: Server) -> None:
    """``POST /v1/{task}/ask``: one question to one served task, answered or abstained on."""

    @app.post("/v1/{task_name}/ask")
    async def ask(task_name: str, body: AskRequest, request: Request, who: str = Depends(server.caller)) -> Any:
        note_audit(request.scope, question=body.question)
        request.scope.setdefault("state", {})["ehrforge_submitted"] = submitted_values(body)
        task = server.tasks.get(task_name)
        if task is None:
            # the name asked for is not repeated: a path segment is client text like any other
            raise HTTPException(404, f"no such task is served here; served: {', '.join(sorted(server.tasks)) or 'none'}")
        rejected = unaccepted_context(task.ask, body.context)
        if rejected:
            # name the keys, never their values
            raise HTTPException(400, f"context keys not accepted by task '{task_name}': {', '.join(rejected)}")
        t0 = time.perf_counter()
        result = await server.scheduler.call(lambda: task.ask(server.backend, body.question, **body.context))
        latency = round(1000 * (time.perf_counter() - t0), 1)
        out = jsonable_encoder({**dict(result), "task": task_name, "latency_ms": latency},
                               custom_encoder={bytes: lambda b: f"<{len(b)} bytes>"})
        note_audit(request.scope, abstained=bool(out.get("abstained")), confidence=out.get("confidence"), latency_ms=latency)
        return out


def add_middleware_stack(app: FastAPI, server: Server) -> None:
    """Error containment innermost, then CORS (off unless origins are listed), headers, body cap, audit outermost."""
    settings = server.settings
    app.add_middleware(ContainErrors)  # added first = innermost: it sees the route's exception before Starlette does
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"], allow_credentials=False)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # added last = outermost: one audit line per request with its final status, 413 and 500 included
    served_paths = {"/", "/healthz", "/v1/models", "/v1/tasks", "/v1/chat/completions"} | {f"/v1/{n}/ask" for n in server.tasks}
    app.add_middleware(AuditTrail, audit=server.audit, identify=lambda header: server.auth.identify(header),
                       endpoint_of=lambda path: endpoint_name(path, served_paths, STATIC_DIR))
