"""``ehrforge serve``: load the model and tasks, then run the app under uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ehrforge.serve.auth import generate_token, read_tokens
from ehrforge.serve.settings import ServeSettings, is_loopback
from ehrforge.errors import EhrforgeError, ServeError

log = logging.getLogger("ehrforge.serve")


def load_serving_tasks(db: str | None, names: list[str] | None = None, options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Task objects to serve, each checked at start-up (a task with a resource, such as a database, opens it now).

    With ``names=None`` every registered task that can be built is served; one that cannot is skipped with a log
    line, unless ``db`` was given and the task reads it (a bad ``--db`` must stop the server from starting). Names
    given explicitly must all load.
    """
    from ehrforge.config import load_config
    from ehrforge.tasks import Capability, resolve_task, task_class, task_names

    options = options or {}
    wanted = names if names is not None else task_names()
    served: dict[str, Any] = {}
    for name in wanted:
        reads_db = "db" in task_class(name).Options.model_fields
        try:
            # the one precedence (ehrforge.tasks.resolve_task): --db over the task's options
            task = resolve_task(load_config(task=name, task_options=dict(options.get(name, {}))), db=db if reads_db else None)
            if task.supports(Capability.RESOURCES):
                task.check_ready()
        except (ImportError, EhrforgeError) as exc:
            if names is not None or (reads_db and db is not None):
                if isinstance(exc, EhrforgeError):
                    raise
                raise ServeError(f"cannot load task '{name}' for serving: {type(exc).__name__}", "check the task options") from None
            log.info("not serving task %s (%s)", name, type(exc).__name__)
            continue
        served[name] = task
    return served


def build_app(model: str, db: str | None = None, *, settings: ServeSettings | None = None, backend: Any = None,
              tasks: list[str] | None = None, task_options: dict[str, dict[str, Any]] | None = None) -> Any:
    """Everything ``serve`` does except listening: returns the FastAPI app (used by tests and benchmarks too).
    A folder written by ``ehrforge train`` is served for the task it was trained for (unless ``tasks`` says)."""
    from ehrforge.core.loader import load_model, trained_task
    from ehrforge.serve.app import create_app

    settings = settings or ServeSettings()
    trained = trained_task(model) if backend is None else None
    if tasks is None and trained is not None:
        tasks = [trained]
    served = load_serving_tasks(db, tasks, task_options)
    backend = backend if backend is not None else load_model(model, served.get(trained) if trained else None)
    return create_app(settings, backend, served)


def serve(model: str, db: str | None = None, host: str = "127.0.0.1", port: int = 8000, tokens_file: str | None = None, *,
          audit_log: str | None = None, cors_origins: list[str] | tuple[str, ...] = (), log_patient_text: bool = False,
          workers: int = ServeSettings.workers, queue_size: int = ServeSettings.queue_size,
          rate_per_minute: float = ServeSettings.rate_per_minute, max_body_bytes: int = ServeSettings.max_body_bytes,
          tasks: list[str] | None = None, model_name: str | None = None, log_level: str = "info",
          trusted_proxies: list[str] | tuple[str, ...] = ()) -> None:
    """Serve ``model`` (any backend spec) with the task endpoints, the web page and the OpenAI-compatible API.

    Without configured tokens (file or ``$EHRFORGE_SERVE_TOKENS``) a one-off token is generated and printed, which is
    allowed on loopback only: a server reachable from the network must have deliberately issued tokens.
    """
    import uvicorn
    from rich.console import Console

    from ehrforge.core.loader import trained_task

    console = Console(stderr=True)
    generated: dict[str, str] = {}
    settings_kwargs: dict[str, Any] = dict(
        host=host, port=port, tokens_file=tokens_file, audit_log=audit_log, cors_origins=list(cors_origins),
        log_patient_text=log_patient_text, workers=workers, queue_size=queue_size, rate_per_minute=rate_per_minute,
        max_body_bytes=max_body_bytes, trusted_proxies=list(trusted_proxies), model_name=model_name or Path(model.split(":")[-1].rstrip("/")).name or "ehrforge",
        # the page opens on the first task asked for, or the one a trained folder was made for
        default_task=tasks[0] if tasks else trained_task(model),
    )
    probe = ServeSettings(**settings_kwargs)  # validates everything before the (slow) model load
    check_port_free(host, port)  # and the port, before anything is loaded or announced
    if not read_tokens(probe.tokens_file, probe.tokens_env):
        if not is_loopback(host):
            raise ServeError(f"refusing to listen on {host} without issued tokens",
                             "pass --tokens-file (one name:token per line) or set $EHRFORGE_SERVE_TOKENS")
        generated = {"local": generate_token()}
    if not is_loopback(host):
        console.print(f"[yellow]warning:[/] listening on {host} over plain HTTP; put a TLS reverse proxy in front of it")
    settings = ServeSettings(**settings_kwargs, tokens=generated)
    with console.status("loading model and tasks…"):
        app = build_app(model, db, settings=settings, tasks=tasks)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    console.print(f"serving [bold]{settings.model_name}[/] at {url}  tasks: {', '.join(sorted(app.state.tasks)) or 'none'}")
    if generated:
        # The fragment (#token=…) never reaches the server or its access log; the page reads it and keeps it in the tab.
        console.print(f"one-off token (this run only): {generated['local']}")
        console.print(f"open {url}#token={generated['local']}")
    uvicorn.run(app, host=host, port=port, log_level=log_level, **uvicorn_options(settings, audit=app.state.audit))


def uvicorn_options(settings: ServeSettings, audit: Any = None) -> dict[str, Any]:
    """How uvicorn runs the app (also used by the live-server tests, so they test these very options). ``audit``
    (the app's ``AuditLog``) gets one line per connection refused or timed out below the app.

    >>> uvicorn_options(ServeSettings())["proxy_headers"], uvicorn_options(ServeSettings(trusted_proxies=["10.0.0.5"]))["forwarded_allow_ips"]
    (False, '10.0.0.5')
    """
    # proxy_headers off unless proxies are named: uvicorn would otherwise believe X-Forwarded-For from loopback, and
    # a local client rotating that header could dodge the failed-token lock-out and forge audit addresses.
    from ehrforge.serve.connections import guarded_h11_protocol

    def refused(client: str, reason: str, status: int) -> None:
        audit.record(who=None, endpoint="(connection)", status=status, client=client, refused=reason)

    protocol = guarded_h11_protocol(settings.header_timeout_s, settings.connections_per_client, settings.max_connections,
                                    on_refusal=refused if audit is not None else None)
    # uvicorn's own limit_concurrency is off: it answers plain text and writes no audit line; the protocol's cap
    # (max_connections) does both
    return {"http": protocol, "limit_concurrency": None, "timeout_keep_alive": max(1, int(settings.header_timeout_s)),
            # no access log: it prints raw paths and query strings (client text); the audit log records requests
            "access_log": False, "server_header": False, "proxy_headers": bool(settings.trusted_proxies),
            "forwarded_allow_ips": ",".join(settings.trusted_proxies) or None, "h11_max_incomplete_event_size": 16 * 1024}


def check_port_free(host: str, port: int) -> None:
    """One line when the address is taken, instead of uvicorn's multi-line error and exit 3."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__})",
                             "pass another --port, or stop the program that uses it") from None
