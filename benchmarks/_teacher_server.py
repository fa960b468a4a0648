"""A teacher behind a real OpenAI-compatible endpoint on 127.0.0.1, served by ehrforge's own server.

The benchmarks label and synthesise through :class:`~ehrforge.core.backends.openai_backend.OpenAIBackend` talking
HTTP to ``build_app`` + uvicorn (in a thread, on a free port, with a bearer token), so the code a hospital runs
against its own vLLM / llama.cpp endpoint is the code that is measured. Whatever sits behind the endpoint (a local
model, or a stand-in teacher for controlled-noise experiments) is named in every table by the caller.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

KEY_ENV = "EHRFORGE_BENCH_TEACHER_KEY"


@contextmanager
def http_teacher(backend: Any, *, model_name: str = "teacher", max_new_tokens_cap: int = 512,
                 timeout_s: float = 300.0) -> Iterator[Any]:
    """Serve ``backend`` on 127.0.0.1 and yield an ``OpenAIBackend`` client for it (log-probs requested)."""
    import uvicorn

    from ehrforge.core.backends.openai_backend import OpenAIBackend
    from ehrforge.serve.run import build_app
    from ehrforge.serve.settings import ServeSettings

    token = secrets.token_hex(16)
    # A benchmark sends thousands of requests from one client: the per-token rate limit would only slow it down.
    settings = ServeSettings(model_name=model_name, tokens={"bench": token}, rate_per_minute=1e7, rate_burst=100000,
                             queue_size=256, queue_timeout_s=timeout_s, max_body_bytes=512 * 1024,
                             max_new_tokens_cap=max_new_tokens_cap, default_max_new_tokens=min(256, max_new_tokens_cap))
    app = build_app(model_name, backend=backend, settings=settings, tasks=[])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("teacher server did not start")
        time.sleep(0.02)
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = token
    try:
        yield OpenAIBackend(f"http://127.0.0.1:{sock.getsockname()[1]}/v1", model=model_name, api_key_env=KEY_ENV,
                            timeout_s=timeout_s, max_retries=2)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        if previous is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = previous
