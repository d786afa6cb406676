"""Overload: a fast 503 beyond a fixed number of requests per worker, and a 504 deadline.

At concurrency 512 every request used to wait in the worker's queue (p99 18 s) and nothing
was refused. A worker scores one request at a time (the GIL), so queueing more than a few
dozen only adds latency: :class:`LoadShedMiddleware` answers ``503`` with ``Retry-After``
beyond ``SHIPRISK_MAX_IN_FLIGHT`` before reading the body, and the accepted requests keep a
bounded latency. Health checks and ``/metrics`` are never shed, so an overloaded worker is
not mistaken for a dead one.

BentoML's own ``traffic.max_concurrency`` answers ``429`` in a shape of its own, without
``Retry-After``, from a middleware outside ours (so it cannot be reshaped); the same holds for
its ``traffic.timeout`` 504. :class:`DeadlineMiddleware` answers the 504 in the documented
shape; BentoML's timeout stays set a few seconds later, as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib

from shiprisk.serving.errors import error_body
from shiprisk.serving.middleware import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    StartTracker,
    send_json,
)

NEVER_SHED = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
RETRY_AFTER_SECONDS = 1


class LoadShedMiddleware:
    """503 + ``Retry-After`` when this worker already handles ``limit`` requests."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0  # one event loop per worker: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NEVER_SHED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            retry = ((b"retry-after", str(RETRY_AFTER_SECONDS).encode()),)
            await send_json(send, 503, error_body(503), retry)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class DeadlineMiddleware:
    """504 in the documented shape when no answer has started after ``seconds``."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracking = StartTracker(send)
        task = asyncio.ensure_future(self.app(scope, receive, tracking))
        done, _ = await asyncio.wait({task}, timeout=self.seconds)
        if done:
            task.result()  # re-raise what the app raised
            return
        if tracking.started:  # already answering: let it finish
            await task
            return
        task.cancel()
        task.add_done_callback(_consume)
        await send_json(send, 504, error_body(504))


def _consume(task: asyncio.Future[None]) -> None:
    """Retrieve a cancelled request's outcome, so asyncio does not log it as lost."""
    with contextlib.suppress(BaseException):
        task.result()
