"""A deadline for a request's headers, under the ASGI app (uvicorn has none of its own).

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but waits forever for the
headers of a request that has begun: a client that connects, or sends half a request line, holds
its connection and a file descriptor indefinitely. `HeaderDeadlineProtocol` is uvicorn's
httptools protocol with one timer: armed when the connection opens and when a request begins,
cancelled when its headers are complete; when it fires, the connection is closed. (The body's
deadline is the app's: `mlops.serve.limits.read_body`.) Used when httptools is installed (the
`serve` extra); with uvicorn's h11 fallback there is no header deadline: put a reverse proxy in
front (nginx `client_header_timeout`, HAProxy `timeout http-request`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "mlops.serve.httpdeadline:HeaderDeadlineProtocol"


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose headers do not arrive in time."""

    header_seconds: float = 30.0  # set from ServeConfig.read_timeout before serving
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        """A request begins (a later one on a kept-alive connection too): its headers are due."""
        super().on_message_begin()
        if self._header_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        """Headers are in: the app's body deadline takes over."""
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_seconds, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol(seconds: float) -> str | None:
    """The uvicorn `http` setting giving a header deadline of `seconds` (None without httptools)."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return None
    HeaderDeadlineProtocol.header_seconds = seconds
    return PROTOCOL
