"""Prometheus metrics labelled by route template, never by the path a client sent.

BentoML's own metrics middleware labels each request with ``scope["path"]``: 20,000 keyless
404s to distinct paths made 20,000 label sets, a 118 MB multiprocess directory and a
``/metrics`` that timed out, and the paths themselves (``/SECRET-ORDER-12345``) were published.
BentoML's metrics are therefore off (``metrics={"enabled": False}`` in the service config)
and these two middlewares replace them under the same metric names:

* :class:`RouteMetricsMiddleware` counts every request by ``endpoint`` (one of the service's
  fixed routes, or ``other``) and ``http_response_code``: a fixed, small label set, so the
  multiprocess directory stays a few hundred kB however many paths are tried;
* :class:`MetricsEndpoint` serves ``GET /metrics``, rebuilt at most once per second per worker
  so a flood of scrapes costs one collection per second.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from shiprisk.serving.middleware import ASGIApp, Message, Receive, Scope, Send

NAMESPACE = "bentoml_service"
"""The names BentoML used, so dashboards keep working; only the label values changed."""
OTHER = "other"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CACHE_SECONDS = 1.0
NO_ANSWER = 499
"""Recorded when the client left before any answer (nginx's convention)."""


class RouteMetricsMiddleware:
    """Request count, latency and in-progress gauge per route template and status."""

    def __init__(self, app: ASGIApp, routes: Iterable[str]) -> None:
        self.app = app
        self.routes = frozenset(routes)
        self._metrics: tuple[Any, Any, Any] | None = None

    def _setup(self) -> tuple[Any, Any, Any]:
        # Imported on first use, in the worker: prometheus_client picks its multiprocess mode
        # from PROMETHEUS_MULTIPROC_DIR when its values are first created.
        from prometheus_client import Counter, Gauge, Histogram

        labels = ["endpoint", "http_response_code"]
        self._metrics = (
            Counter("request_total", "HTTP requests", labels, namespace=NAMESPACE),
            Histogram(
                "request_duration_seconds",
                "HTTP request duration in seconds",
                labels,
                namespace=NAMESPACE,
                buckets=BUCKETS,
            ),
            Gauge(
                "request_in_progress",
                "HTTP requests in progress",
                ["endpoint"],
                namespace=NAMESPACE,
                multiprocess_mode="livesum",
            ),
        )
        return self._metrics

    def endpoint(self, path: str) -> str:
        return path if path in self.routes else OTHER

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        total, duration, in_progress = self._metrics or self._setup()
        endpoint = self.endpoint(scope["path"])
        status = NO_ANSWER
        start = time.perf_counter()

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        gauge = in_progress.labels(endpoint)
        gauge.inc()
        try:
            await self.app(scope, receive, recording)
        except Exception:
            status = 500 if status == NO_ANSWER else status
            raise
        finally:
            gauge.dec()
            code = str(status)
            total.labels(endpoint, code).inc()
            duration.labels(endpoint, code).observe(time.perf_counter() - start)


class MetricsEndpoint:
    """``GET /metrics``: all workers' metrics (multiprocess mode), cached for a second."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._cached: tuple[float, bytes, str] = (float("-inf"), b"", "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/metrics":
            await self.app(scope, receive, send)
            return
        if scope.get("method") not in ("GET", "HEAD"):
            await self.app(scope, receive, send)  # the router answers 405
            return
        at, body, media = self._cached
        now = time.monotonic()
        if now - at > CACHE_SECONDS:
            body, media = collect()
            self._cached = (now, body, media)
        headers = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def collect() -> tuple[bytes, str]:
    """The exposition text of every worker's metrics, and its media type."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST
