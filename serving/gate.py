"""Validate scoring bodies against the contract before BentoML sees them.

BentoML parses form and multipart bodies as well as JSON (a bad multipart boundary was a 500),
echoes every error location in its 400 (an unknown JSON key holding a name and address came
back in ``field``) and logs a traceback per refused body (with that key in it). So, for the
scoring routes only, :class:`ContractGateMiddleware`:

* answers 415 to any content type but JSON (a missing one is read as JSON, as BentoML does);
* validates the buffered body with the route's pydantic model and answers 400 itself, naming
  fields from the contract only (``errors.refusal_fields``); BentoML logs nothing;
* passes a valid body on unchanged (validating ~8 us per shipment twice is cheaper than any
  private hook into BentoML's parsing);
* with ``SHIPRISK_UNKNOWN_FIELDS=ignore``, drops the keys the contract does not know (real
  checkout objects carry extra fields) and passes the rest on: they reach neither BentoML
  nor a log line nor the answer. Only a body that fails validation pays for this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from shiprisk.serving.errors import contract_names, describe_refusal, error_body
from shiprisk.serving.middleware import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    replaying,
    send_json,
)

JSON_TYPES = (b"application/json",)


def is_json(scope: Scope) -> bool:
    """True for ``application/json`` (any parameters) or no content type at all."""
    raw = dict(scope.get("headers") or []).get(b"content-type")
    if raw is None:
        return True
    return raw.split(b";", 1)[0].strip().lower() in JSON_TYPES


class ContractGateMiddleware:
    """415 for non-JSON bodies and 400 for bodies the contract refuses, on ``models``' paths."""

    def __init__(
        self,
        app: ASGIApp,
        models: Mapping[str, type[BaseModel]],
        unknown_fields: Literal["reject", "ignore"] = "reject",
    ) -> None:
        self.app = app
        self.models = dict(models)
        self.known = contract_names(self.models.values())
        self.ignore_unknown = unknown_fields == "ignore"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = self.models.get(scope.get("path", "")) if scope["type"] == "http" else None
        if model is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if not is_json(scope):
            await send_json(send, 415, error_body(415))
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            model.model_validate_json(body)
        except ValidationError as exc:
            refusal = exc
            if self.ignore_unknown:
                body, refusal = without_unknown_keys(model, body, exc)
            if refusal is not None:
                fields = describe_refusal(refusal, self.known)
                await send_json(send, 400, error_body(400, fields))
                return
        await self.app(scope, replaying(body, receive), send)


def without_unknown_keys(
    model: type[BaseModel], body: bytes, exc: ValidationError
) -> tuple[bytes, ValidationError | None]:
    """``body`` without the keys ``exc`` calls unknown (``extra_forbidden``), and the refusal
    that remains for it (None: now valid). Unknown keys are dropped from wherever they are
    (top level, a candidate, ``costs``, a batch's shipments)."""
    unknown = [e["loc"] for e in exc.errors() if e["type"] == "extra_forbidden"]
    if not unknown:
        return body, exc
    payload = json.loads(body)
    for loc in unknown:
        _drop(payload, loc)
    body = json.dumps(payload).encode()
    try:
        model.model_validate_json(body)
    except ValidationError as rest:
        return body, rest
    return body, None


def _drop(node: Any, loc: tuple[Any, ...]) -> None:
    """Remove the key at ``loc``; a location that does not lead to it (a union's member tag)
    leaves the body as it is, and the refusal stands."""
    try:
        for part in loc[:-1]:
            node = node[part]
    except (KeyError, IndexError, TypeError):
        return
    if isinstance(node, dict):
        node.pop(loc[-1], None)
