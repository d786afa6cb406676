"""A header-read timeout for the HTTP server, which neither BentoML nor uvicorn has.

uvicorn times out idle keep-alive connections only after a first answer: a connection that
opens and then sends its headers a byte at a time (or never) stays open for good, and 200 of
them stayed open in the attack pass. ASGI middleware cannot help (the app is called only once
the headers are complete), so this subclasses uvicorn's httptools protocol: a timer starts
when a connection opens or a request begins and stops when its headers are complete; if it
fires, the client gets a 408 and the connection is closed. uvicorn's own 400 for unparseable
HTTP gets the documented JSON body too.

BentoML builds ``uvicorn.Config(http="auto")`` in each worker *after* importing the service
module, so :func:`install` points uvicorn's ``"auto"`` protocol at this class from there.
Both are internals of uvicorn and BentoML: tests/serving/test_pins.py pins the versions this
was written for and the hooks it relies on, and test_http.py checks the timeout live.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shiprisk.serving.errors import error_body

PROTOCOL_PATH = "shiprisk.serving.protocol:HeaderTimeoutProtocol"
STATUS_TEXT = {400: b"Bad Request", 408: b"Request Timeout"}


def raw_response(status: int) -> bytes:
    """A complete HTTP/1.1 answer with the documented error body, closing the connection."""
    body = json.dumps(error_body(status)).encode()
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, STATUS_TEXT[status], len(body))
    )
    return head + body


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose headers are late (408)."""

    header_timeout: float = 10.0
    """Seconds; set by :func:`install` from ``SHIPRISK_HEADER_TIMEOUT_S``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self.transport.write(raw_response(400))
        self.transport.close()

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._expire)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expire(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.write(raw_response(408))
            self.transport.close()


def install(header_timeout: float) -> None:
    """Make ``uvicorn.Config(http="auto")`` (what BentoML's worker builds) use this class."""
    import uvicorn.config

    HeaderTimeoutProtocol.header_timeout = header_timeout
    uvicorn.config.HTTP_PROTOCOLS["auto"] = PROTOCOL_PATH
