"""uvicorn's HTTP protocols with a deadline for request headers.

uvicorn times out an idle keep-alive connection only after a response; a client that
connects and then sends nothing, or sends headers a few bytes at a time and never
finishes them, holds its connection (and a file descriptor of the worker) for as
long as it likes. Here every request's headers must be complete within
``ASSAY_SERVICE_HEADER_TIMEOUT`` seconds (default 5) of the connection opening or of
the request's first byte; else the connection is closed. A body is then guarded by
the body timeout (``ratelimit.BodyLimitMiddleware``, 408), and an idle keep-alive
connection by uvicorn's ``timeout_keep_alive`` (``ASSAY_SERVICE_IDLE_TIMEOUT``).

``assay serve`` passes these classes to uvicorn by import string (``http=``), so
each worker process builds them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional in uvicorn; then only h11 is offered
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

log = logging.getLogger("assay.service.protocol")

_timeout: float | None = None


def header_timeout() -> float:
    global _timeout
    if _timeout is None:
        from .settings import Settings

        _timeout = Settings.from_env().header_timeout
    return _timeout


class _HeaderDeadline:
    """Arms a timer when a connection opens and when a request starts; the request's
    headers being complete disarms it; when it fires, the connection is closed."""

    _header_timer: asyncio.TimerHandle | None = None
    dropped = 0  # connections closed for slow headers, in this worker

    def _arm_header_deadline(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(header_timeout(), self._headers_too_slow)  # type: ignore[attr-defined]

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        transport = self.transport  # type: ignore[attr-defined]
        if not transport.is_closing():
            type(self).dropped += 1
            log.info("closed a connection whose request headers took over %g s", header_timeout())
            transport.close()


if HttpToolsProtocol is not None:
    class HeaderDeadlineHttpTools(_HeaderDeadline, HttpToolsProtocol):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm_header_deadline()

        def on_headers_complete(self) -> None:
            self._disarm_header_deadline()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)


class HeaderDeadlineH11(_HeaderDeadline, H11Protocol):
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # h11 stays IDLE on the client's side until a request's headers are complete.
        if self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()
        else:
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)


def protocol_class() -> str:
    """The import string of the protocol ``assay serve`` hands to uvicorn."""
    if HttpToolsProtocol is not None and os.environ.get("ASSAY_SERVICE_HTTP", "") != "h11":
        return "assay.service.protocol:HeaderDeadlineHttpTools"
    return "assay.service.protocol:HeaderDeadlineH11"
