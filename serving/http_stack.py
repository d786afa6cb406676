"""The service's HTTP guard rails, in the order a request meets them.

One call, :func:`harden`, from ``service.py``: BentoML's extension points
(``add_asgi_middleware`` and the service config) do the rest. Outermost first:

1. ``RouteMetricsMiddleware`` - counts every answer below by route template and status;
2. ``LoadShedMiddleware`` - 503 + ``Retry-After`` beyond ``SHIPRISK_MAX_IN_FLIGHT``;
3. ``DeadlineMiddleware`` - 504 after ``SHIPRISK_REQUEST_TIMEOUT_S``;
4. ``ErrorShapeMiddleware`` - every error answer as ``{error, fields}``;
5. ``ApiKeyMiddleware`` - 401 before any body is read;
6. ``MetricsEndpoint`` - ``GET /metrics`` (behind the key only if configured);
7. ``BodyLimitMiddleware`` - 413 for oversized bodies;
8. ``DocsPageMiddleware`` - our own Swagger UI page at ``/`` and ``/docs`` (no third parties);
9. ``OpenApiMiddleware`` - the true ``/docs.json``, with our title, version and examples;
10. ``ContractGateMiddleware`` - 415 for non-JSON bodies, 400 for bodies the contract refuses.

The header-read timeout sits below ASGI, in the HTTP protocol (``protocol.install``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from shiprisk.serving import protocol
from shiprisk.serving.docs_page import POLICY_PATH, DocsPageMiddleware, api_document
from shiprisk.serving.errors import contract_names
from shiprisk.serving.gate import ContractGateMiddleware
from shiprisk.serving.metrics import MetricsEndpoint, RouteMetricsMiddleware
from shiprisk.serving.middleware import (
    SCHEMA_REF,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    ErrorShapeMiddleware,
    OpenApiMiddleware,
)
from shiprisk.serving.overload import DeadlineMiddleware, LoadShedMiddleware
from shiprisk.settings import Settings

SYSTEM_ROUTES = frozenset(
    {"/", "/docs", POLICY_PATH, "/livez", "/readyz", "/healthz", "/metrics", "/docs.json"}
    | {"/schema.json"}
)
"""BentoML's own routes; any other path is labelled ``other`` in the metrics."""
BACKSTOP_SECONDS = 5.0
"""BentoML's ``traffic.timeout`` is ours plus this: ours answers first, in our shape."""


def service_config(settings: Settings) -> dict[str, Any]:
    """The BentoML service config this stack relies on (merged into ``@bentoml.service``)."""
    return {
        "traffic": {"timeout": settings.request_timeout_s + BACKSTOP_SECONDS},
        "metrics": {"enabled": False},  # replaced by RouteMetricsMiddleware + MetricsEndpoint
    }


def harden(
    service: Any,
    settings: Settings,
    api_key: str | None,
    models: Mapping[str, tuple[type[BaseModel], type[BaseModel]]],
    error_model: type[BaseModel],
) -> None:
    """Add the guard rails to ``service``; ``models`` maps each scoring route to its request
    and response models."""
    protocol.install(settings.header_timeout_s)
    requests = {path: request for path, (request, _) in models.items()}
    service.add_asgi_middleware(RouteMetricsMiddleware, routes=SYSTEM_ROUTES | set(models))
    service.add_asgi_middleware(LoadShedMiddleware, limit=settings.max_in_flight)
    service.add_asgi_middleware(DeadlineMiddleware, seconds=settings.request_timeout_s)
    service.add_asgi_middleware(ErrorShapeMiddleware, known=contract_names(requests.values()))
    service.add_asgi_middleware(ApiKeyMiddleware, key=api_key, metrics=settings.metrics_require_key)
    service.add_asgi_middleware(MetricsEndpoint)
    service.add_asgi_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    service.add_asgi_middleware(DocsPageMiddleware)
    service.add_asgi_middleware(
        OpenApiMiddleware,
        error_schema=error_model.model_json_schema(ref_template=SCHEMA_REF),
        auth=api_key is not None,
        models=models,
        document=api_document(),
    )
    service.add_asgi_middleware(
        ContractGateMiddleware, models=requests, unknown_fields=settings.unknown_fields
    )
