"""The service's own documentation page: Swagger UI at ``/`` and ``/docs``, self-contained.

BentoML 1.4's index page (``_bentoml_impl/server/main-openapi.html``) carries a Google Tag
Manager script, a GitHub corner and a "Contact BentoML Team" header, and its ``/docs.json``
describes the service as ``shiprisk:dev``, version ``None``, with remote badges; neither can be
configured. So :class:`DocsPageMiddleware` answers those paths with this page, which loads
only the Swagger UI bundle BentoML installs with itself (``/static_content``, served by
BentoML from the wheel) and is sent with a Content-Security-Policy that forbids any other
origin; :func:`api_document` replaces the document's ``info`` and tags (``OpenApiMiddleware``).
"""

from __future__ import annotations

import json

from shiprisk import _SOURCE_ROOT, package_version
from shiprisk.serving.middleware import ASGIApp, Receive, Scope, Send

SERVICE_TITLE = "shiprisk: parcel loss and rejection risk, channel and insurance advice"
DOCS_PATHS = frozenset({"/", "/docs"})
POLICY_PATH = "/docs/policy.md"
POLICY_FILE = _SOURCE_ROOT / "docs" / "policy.md"
"""Served as text when present (source checkout, bento); the description links to it."""
DESCRIPTION = """\
At checkout, `POST /score` takes one cross-border shipment and answers, for every candidate \
shipping channel, the probability the parcel is **lost** (`p_loss`) or **rejected** \
(`p_reject`), the price, the insurance premium, whether to insure and the expected cost to \
the seller; then the recommended channel, the reasons behind the risks, seller actions that \
lower them, warnings and the exact model version. `POST /score_batch` does the same for up to \
`SHIPRISK_MAX_BATCH` shipments.

* Money is in USD, rounded to the cent; probabilities are calibrated and not rounded.
* How expected cost, insurance and the recommendation are decided: \
[the decision policy](docs/policy.md).
* Every error answer is `{"error", "fields": [{"field", "reason"}]}` and never quotes the \
request.
"""
CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
"""Nothing but this server: no tag manager, no remote badge, no CDN."""


def api_document() -> dict[str, object]:
    """Top-level keys of ``/docs.json`` that are ours: ``info`` (title, the package version,
    description) and the tags' descriptions (BentoML's speak of "BentoML Service API")."""
    return {
        "info": {
            "title": SERVICE_TITLE,
            "version": package_version(),
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": [
            {
                "name": "Service APIs",
                "description": "Scoring: risks, costs and the recommended channel per shipment.",
            },
            {
                "name": "Infrastructure",
                "description": "Liveness, readiness and Prometheus metrics.",
            },
        ],
    }


def docs_html() -> bytes:
    title = f"{SERVICE_TITLE} {package_version()}"
    config = {
        "url": "./docs.json",
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "validatorUrl": None,  # the default asks validator.swagger.io for a badge
        "layout": "BaseLayout",
        "defaultModelsExpandDepth": 3,  # schemas and their fields open: descriptions show
        "defaultModelExpandDepth": 3,
    }
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>{title}</title>
<link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css">
<style>body {{ margin: 0; background: #fafafa; }}</style>
</head>
<body>
<noscript>{title}: this page needs JavaScript; the OpenAPI document is at /docs.json.</noscript>
<div id="swagger-ui"></div>
<script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
<script>
window.onload = function () {{
  const config = {json.dumps(config)};
  config.presets = [SwaggerUIBundle.presets.apis];
  window.ui = SwaggerUIBundle(config);
}};
</script>
</body>
</html>
""".encode()


class DocsPageMiddleware:
    """``GET /`` and ``/docs``: our Swagger UI page; ``GET /docs/policy.md``: the policy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.page = docs_html()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        get = scope["type"] == "http" and scope.get("method") == "GET"
        if get and path in DOCS_PATHS:
            await _send(send, self.page, b"text/html; charset=utf-8")
        elif get and path == POLICY_PATH and POLICY_FILE.is_file():
            await _send(send, POLICY_FILE.read_bytes(), b"text/markdown; charset=utf-8")
        else:
            await self.app(scope, receive, send)


async def _send(send: Send, body: bytes, content_type: bytes) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
