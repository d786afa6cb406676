"""ASGI middlewares for the scoring service: auth, body size, error shape, OpenAPI.

BentoML has no request-size limit and answers errors in several shapes of its own, so:

* :class:`ApiKeyMiddleware` - optional API key (``x-api-key`` or ``Authorization: Bearer``),
  compared in constant time; health, readiness, docs (and by default metrics) stay open;
* :class:`BodyLimitMiddleware` - 413 before any scoring work for bodies over the limit
  (declared ``Content-Length`` or counted while streaming a chunked body);
* :class:`ErrorShapeMiddleware` - every error answer becomes ``{"error", "fields"}``
  (:func:`shiprisk.serving.errors.reshape`), and an exception becomes a shaped 500;
* :class:`OpenApiMiddleware` - declares the error answers in ``/docs.json`` and puts the
  service's own ``info`` and tags and the response examples in it.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from shiprisk.serving.errors import ERROR_TEXT, error_body, reshape

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPENAPI_VERSION = "3.1.0"
SCHEMA_REF = "#/components/schemas/{model}"
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/"})
PROTECTED_PREFIXES = ("/score",)
DECLARED_ERRORS = (400, 401, 413, 415, 503, 504)
"""The error answers a scoring operation declares in ``/docs.json`` (401 only with a key)."""
BENTOML_ERROR_SCHEMAS = ("InvalidArgument", "NotFound", "InternalServerError")
"""BentoML's error bodies, which this service never sends (``ErrorShapeMiddleware``)."""
log = logging.getLogger("shiprisk.serving")
log.setLevel(logging.INFO)  # client errors are one INFO line each (BentoML's root is WARNING)


async def send_json(
    send: Send, status: int, payload: dict[str, Any], extra: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += list(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def rewrite_body(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    when: Callable[[int], bool],
    transform: Callable[[bytes, int], bytes],
) -> None:
    """Run ``app``; if it answers a status for which ``when`` holds, buffer its body and send
    ``transform(body, status)`` as JSON instead."""
    held: Message | None = None
    parts: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and when(message["status"]):
            held = message
            return
        if held is not None and message["type"] == "http.response.body":
            parts.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = transform(b"".join(parts), held["status"])
            skip = (b"content-length", b"content-type")
            headers = [(k, v) for k, v in held.get("headers", []) if k.lower() not in skip]
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({**held, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    await app(scope, receive, wrapped)


class ApiKeyMiddleware:
    """401 on scoring endpoints unless the request carries the configured key."""

    def __init__(self, app: ASGIApp, key: str | None, metrics: bool = False) -> None:
        self.app = app
        self.key = key.encode() if key else None
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guarded = self.key and scope["type"] == "http" and self._protected(scope["path"])
        if guarded and not hmac.compare_digest(_presented_key(scope), self.key):
            await send_json(send, 401, error_body(401))
            return
        await self.app(scope, receive, send)

    def _protected(self, path: str) -> bool:
        if path == "/metrics":
            return self.metrics
        return path not in OPEN_PATHS and path.startswith(PROTECTED_PREFIXES)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands an already-read body to the app once, then the real stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class StartTracker:
    """Wraps ``send``; ``started`` says whether the answer has begun (after that no error
    answer can be sent, only the one under way finished)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


def _presented_key(scope: Scope) -> bytes:
    headers = dict(scope.get("headers") or [])
    key = headers.get(b"x-api-key")
    if key is None:
        auth = headers.get(b"authorization", b"")
        key = auth[7:] if auth[:7].lower() == b"bearer " else b""
    return key


class BodyLimitMiddleware:
    """413 for bodies larger than ``max_bytes``, before the body reaches the service."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        if not scope["path"].startswith(PROTECTED_PREFIXES):
            # No other route reads a body: never wait for one (a keyless client trickling a
            # body to an unknown path would hold a load-shedding slot until the deadline).
            await self.app(scope, receive, send)
            return
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, replaying(b"".join(chunks), receive), send)

    async def _refuse(self, send: Send) -> None:
        await send_json(
            send,
            413,
            {
                "error": f"request body larger than {self.max_bytes} bytes",
                "fields": [{"field": "body", "reason": f"at most {self.max_bytes} bytes"}],
            },
        )


class ErrorShapeMiddleware:
    """Every answer from 400 up as ``{error, fields: [{field, reason}]}`` (see
    :func:`~shiprisk.serving.errors.reshape`); an exception becomes a shaped 500, logged
    by its type only (an exception's text can quote the request)."""

    def __init__(self, app: ASGIApp, known: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.known = known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracking = StartTracker(send)
        try:
            await rewrite_body(
                self.app,
                scope,
                receive,
                tracking,
                when=lambda status: status >= 400,
                transform=lambda raw, status: self._reshaped(raw, status, scope),
            )
        except Exception as exc:
            log.error("%s on %s: %s", ERROR_TEXT[500], scope.get("method"), type(exc).__name__)
            if not tracking.started:
                await send_json(send, 500, error_body(500))

    def _reshaped(self, raw: bytes, status: int, scope: Scope) -> bytes:
        """The documented body; a client error is also one INFO line (no traceback): status,
        method, the fixed text and the contract fields blamed, never a value or a path."""
        body = reshape(raw, status, self.known)
        if 400 <= status < 500:
            method = scope.get("method")
            method = method if method in HTTP_METHODS else "other"
            try:
                fields = sorted({f["field"] for f in json.loads(body).get("fields", [])})
            except (ValueError, AttributeError, TypeError, KeyError):
                fields = []
            log.info(
                "client error %s on %s: %s%s",
                status,
                method,
                ERROR_TEXT.get(status, "request failed"),
                f" (fields: {', '.join(fields[:10])})" if fields else "",
            )
        return body


HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class OpenApiMiddleware:
    """Add the error answers (``DECLARED_ERRORS``, with the error body schema) to ``/docs.json``.

    It also makes the document true to what the server accepts and returns: BentoML labels
    it OpenAPI 3.0 but embeds pydantic's JSON Schema 2020-12 (numeric ``exclusiveMinimum``,
    ``type: null``), which is OpenAPI 3.1; it marks the request body optional; and it drops
    ``None`` from the top-level fields of a body (``recommendation`` may be null), so
    ``models`` (path -> request and response pydantic models) restores those fields from
    the models themselves.
    """

    def __init__(
        self,
        app: ASGIApp,
        error_schema: dict[str, Any],
        auth: bool,
        models: Mapping[str, tuple[Any, Any]] | None = None,
        document: Mapping[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.error_schema = error_schema
        self.auth = auth
        self.models = dict(models or {})
        self.document = dict(document or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/docs.json":
            await self.app(scope, receive, send)
            return
        await rewrite_body(
            self.app, scope, receive, send, when=lambda status: status == 200, transform=self._patch
        )

    def _patch(self, raw: bytes, status: int = 200) -> bytes:
        spec = json.loads(raw)
        spec["openapi"] = OPENAPI_VERSION
        spec.update(self.document)  # BentoML's info names the bento tag, "None" and its team
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        error_schema = dict(self.error_schema)  # built with ref_template=SCHEMA_REF
        for name, definition in error_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["ErrorBody"] = error_schema
        for path, (request_model, response_model) in self.models.items():
            operation = spec.get("paths", {}).get(path, {}).get("post")
            if isinstance(operation, dict) and isinstance(operation.get("requestBody"), dict):
                operation["requestBody"]["required"] = True  # no body is a 400, not a default
                body = operation["requestBody"].get("content", {})
                ok = operation.get("responses", {}).get("200", {}).get("content", {})
                _restore_fields(body.get("application/json"), request_model, components)
                _restore_fields(ok.get("application/json"), response_model, components)
                _set_example(ok.get("application/json"), response_model)
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        answers = {
            str(code): f"{ERROR_TEXT[code][:1].upper()}{ERROR_TEXT[code][1:]}"
            for code in DECLARED_ERRORS
            if code != 401 or self.auth
        }
        for path, item in spec.get("paths", {}).items():
            operation = item.get("post")
            if not path.startswith(PROTECTED_PREFIXES) or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for code, text in answers.items():
                responses[code] = {"description": text, "content": ref}
            for code in [c for c in responses if str(c)[:1] in "45" and str(c) not in answers]:
                # BentoML's own 404/500 shapes: ours answers those as ErrorBody too.
                status = int(code)
                text = ERROR_TEXT.get(status, "request failed")
                responses[code] = {"description": text[:1].upper() + text[1:], "content": ref}
            if self.auth:
                operation["security"] = [{"ApiKey": []}]
        for name in BENTOML_ERROR_SCHEMAS:
            components.pop(name, None)
        if self.auth:
            spec["components"].setdefault("securitySchemes", {})["ApiKey"] = {
                "type": "apiKey",
                "in": "header",
                "name": "x-api-key",
            }
        return json.dumps(spec).encode()


def _set_example(media: dict[str, Any] | None, model: Any) -> None:
    """Show the model's JSON-schema example (a real answer) as the response example.

    It is ``example`` (OpenAPI 3.0's keyword), not ``examples``: BentoML builds its document
    through an OpenAPI 3.0 ``Schema`` class that refuses ``examples``."""
    example = (model.model_config.get("json_schema_extra") or {}).get("example")
    if isinstance(media, dict) and example:
        media["example"] = example


def _restore_fields(media: dict[str, Any] | None, model: Any, components: dict[str, Any]) -> None:
    """Replace a body schema's fields with the pydantic model's own (nullability included)."""
    if not isinstance(media, dict) or not isinstance(media.get("schema"), dict):
        return
    own = model.model_json_schema(ref_template=SCHEMA_REF)
    for name, definition in own.pop("$defs", {}).items():
        components.setdefault(name, definition)
    media["schema"]["properties"] = own.get("properties", {})
    media["schema"]["required"] = own.get("required", [])
