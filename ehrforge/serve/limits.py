"""Request limits: body size (413) and a per-client token-bucket rate limit (429).

The bounded model queue (503 when full) lives in :mod:`ehrforge.serve.scheduler`.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Callable


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Pure ASGI middleware: answer 413 for bodies over ``max_bytes``.

    A declared ``Content-Length`` is checked before anything is read; a chunked body is counted as it arrives and
    cut off at the limit, so an attacker cannot make the server buffer more than ``max_bytes``.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await self._reject(send)
                    return
        seen = 0
        too_large = False
        replaced = False

        async def counting_receive() -> dict:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal replaced
            # Frameworks may turn the read error into their own 400; the client must see the real reason, 413.
            if too_large:
                if not replaced:
                    replaced = True
                    await self._reject(send)
                return
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not replaced:
                await self._reject(send)

    async def _reject(self, send: Callable) -> None:
        body = json.dumps({"error": {"message": f"request body larger than {self.max_bytes} bytes",
                                     "type": "request_too_large", "code": 413}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """Token buckets keyed by client (token name, or IP for unauthenticated attempts).

    Each bucket holds up to ``burst`` requests and refills at ``per_minute / 60`` per second. At most ``max_clients``
    buckets are kept (least recently used dropped first), so a flood of distinct clients cannot grow memory.

    >>> clock = [0.0]
    >>> rl = RateLimiter(per_minute=60, burst=2, clock=lambda: clock[0])
    >>> [rl.acquire("a")[0] for _ in range(3)]
    [True, True, False]
    >>> clock[0] = 1.0; rl.acquire("a")[0]
    True
    """

    def __init__(self, per_minute: float, burst: int, *, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last refill time)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> tuple[bool, float]:
        """Take one request from ``key``'s bucket: ``(allowed, seconds until the next one would be)``."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        retry_after = 0.0 if allowed else (1.0 - tokens) / self.rate
        return allowed, retry_after

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}
