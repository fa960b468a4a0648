"""Connection limits below the app: one client cannot hold the server's connections open.

uvicorn closes idle keep-alive connections, but a connection that never finishes its request headers stays open, and
uvicorn's own concurrency limit then answers *everyone* with a plain-text 503. The protocol here (h11, uvicorn's
default) adds two limits per connection, before any request reaches the app:

* a **header timeout**: a connection whose first request headers are not complete within ``header_timeout_s`` is
  closed;
* a **per-client cap**: more than ``per_client`` open connections from one address are refused at once with a JSON
  503 (the error shape of every other answer), so other clients keep their share of the global limit.
"""

from __future__ import annotations

import collections
import json
import logging
from typing import Any

log = logging.getLogger("ehrforge.serve")

_REFUSAL_BODY = json.dumps({"error": {"message": "too many open connections from this client; close some and retry",
                                      "type": "server_overloaded", "code": 503}}).encode()
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
           b"retry-after: 5\r\ncontent-length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY)


def guarded_h11_protocol(header_timeout_s: float, per_client: int) -> type:
    """uvicorn's h11 protocol class with the two limits above (one class per server: it holds the counts)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    open_by_client: collections.Counter[str] = collections.Counter()

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._ehrforge_client = self.client[0] if self.client else "unknown"
            self._ehrforge_timer = None
            open_by_client[self._ehrforge_client] += 1
            if open_by_client[self._ehrforge_client] > per_client:
                log.warning("refused a connection: over %d open from one client", per_client)
                transport.write(REFUSAL)
                transport.close()
                return
            self._ehrforge_timer = self.loop.call_later(header_timeout_s, self._ehrforge_headers_late)

        def _ehrforge_headers_late(self) -> None:
            if self.cycle is None:  # no complete request head yet
                log.warning("closed a connection that sent no complete request headers in %g s", header_timeout_s)
                self.transport.close()

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
