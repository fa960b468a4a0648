"""Connection limits below the app: one client cannot hold the server's connections open.

uvicorn closes idle keep-alive connections, but a connection that never finishes its request headers stays open, and
uvicorn's own concurrency limit would then answer *everyone* with a plain-text 503. The protocol here (h11, uvicorn's
default) enforces three limits per connection, before any request reaches the app, and uvicorn's own limit is off:

* a **header timeout**: a connection whose first request headers are not complete within ``header_timeout_s`` is
  closed;
* a **per-client cap**: more than ``per_client`` open connections from one address are refused at once;
* a **global cap**: more than ``max_connections`` open connections in all are refused at once.

A refusal is a JSON 503 (the error shape of every other answer), and each refusal or timeout is reported to
``on_refusal(client, reason, status)`` — the server writes it to the audit log, which the app's own middleware never
sees for a connection that sent no request.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ehrforge.serve")



def refusal(message: str) -> bytes:
    """A whole HTTP/1.1 503 response with the JSON error body every endpoint uses."""
    body = json.dumps({"error": {"message": message, "type": "server_overloaded", "code": 503}}).encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"retry-after: 5\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


REFUSALS = {"connections_per_client": refusal("too many open connections from this client; close some and retry"),
            "max_connections": refusal("the server has too many open connections; retry shortly")}


def guarded_h11_protocol(header_timeout_s: float, per_client: int, max_connections: int | None = None,
                         on_refusal: Callable[[str, str, int], None] | None = None) -> type:
    """uvicorn's h11 protocol class with the limits above (one class per server: it holds the counts)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    open_by_client: collections.Counter[str] = collections.Counter()

    def report(client: str, reason: str, status: int) -> None:
        if on_refusal is not None:
            try:
                on_refusal(client, reason, status)
            except Exception:  # noqa: BLE001 - an audit failure must not take the event loop down
                log.error("could not record a refused connection (%s)", reason)

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._ehrforge_client = self.client[0] if self.client else "unknown"
            self._ehrforge_timer = None
            open_by_client[self._ehrforge_client] += 1
            reason = None
            if open_by_client[self._ehrforge_client] > per_client:
                reason = "connections_per_client"
            elif max_connections is not None and sum(open_by_client.values()) > max_connections:
                reason = "max_connections"
            if reason is not None:
                log.warning("refused a connection: over the %s limit", reason)
                transport.write(REFUSALS[reason])
                transport.close()
                report(self._ehrforge_client, reason, 503)
                return
            self._ehrforge_timer = self.loop.call_later(header_timeout_s, self._ehrforge_headers_late)

        def _ehrforge_headers_late(self) -> None:
            if self.cycle is None:  # no complete request head yet
                log.warning("closed a connection that sent no complete request headers in %g s", header_timeout_s)
                self.transport.close()
                report(self._ehrforge_client, "header_timeout", 408)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and self._ehrforge_timer is not None:
                self._ehrforge_timer.cancel()
                self._ehrforge_timer = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._ehrforge_timer is not None:
                self._ehrforge_timer.cancel()
            open_by_client[self._ehrforge_client] -= 1
            if open_by_client[self._ehrforge_client] <= 0:
                del open_by_client[self._ehrforge_client]
            super().connection_lost(exc)

    return GuardedH11Protocol
