"""The one error body, ``{"error": str, "fields": [{"field", "reason"}]}``, and what may go in it.

Error texts are fixed per status and field names come from the contract, so no answer can
quote a request: not a value, not an unknown key, not a path. ``fields`` names the parts of
the body to blame (400, 413, 415); it is empty when the body is not to blame (401, 404, 405,
429, 503, 504).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from shiprisk.data.validation import describe_errors

ERROR_TEXT: dict[int, str] = {
    400: "invalid request",
    401: "missing or invalid API key",
    404: "no such path",
    405: "method not allowed on this path",
    408: "request headers not received in time",
    413: "request body too large",
    415: "unsupported content type",
    429: "too many requests, retry later",
    500: "internal error",
    503: "server busy, retry later",
    504: "no answer in time",
}
BODY_REASON = {
    400: "not a valid request body",
    413: "too large",
    415: "send the body as application/json",
}
"""The reason given for ``body`` when an answer of this status names no finer field."""
UNKNOWN_FIELD = "not a field of the contract"
MAX_NAMED = 50
"""At most this many ``{field, reason}`` items in one answer (after removing duplicates)."""


def error_body(status: int, fields: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The documented body for ``status``; ``body`` is blamed where the status implies it."""
    if fields is None:
        fields = [{"field": "body", "reason": BODY_REASON[status]}] if status in BODY_REASON else []
    return {"error": ERROR_TEXT.get(status, "request failed"), "fields": fields}


def contract_names(models: Iterable[type[BaseModel]]) -> frozenset[str]:
    """Every property name anywhere in the models' JSON schemas: the only words an answer may
    use as field names (besides list indices and ``body``)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                names.update(props)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for model in models:
        walk(model.model_json_schema())
    return frozenset(names)


def refusal_fields(
    errors: Iterable[Mapping[str, Any]], known: frozenset[str]
) -> list[dict[str, str]]:
    """Pydantic errors as ``{field, reason}``, each location cut at its first part that is
    neither a contract name nor a list index: unknown keys and dict keys are request data."""
    safe = []
    for err in errors:
        loc = list(err.get("loc", ()))
        kept = []
        for part in loc:
            if not (isinstance(part, int) or part in known):
                break
            kept.append(part)
        msg = str(err.get("msg", "invalid"))
        if len(kept) < len(loc) and err.get("type") == "extra_forbidden":
            msg = UNKNOWN_FIELD
        safe.append({"loc": tuple(kept), "msg": msg})
    unique: dict[tuple[str, str], dict[str, str]] = {}
    for item in describe_errors(safe):
        unique.setdefault((item["field"], item["reason"]), item)
    return list(unique.values())[:MAX_NAMED]


def describe_refusal(exc: ValidationError, known: frozenset[str]) -> list[dict[str, str]]:
    """The ``fields`` of the 400 for a body the contract refuses (the fuzz tests use it too)."""
    return refusal_fields(exc.errors(include_input=False, include_context=False), known)


def reshape(raw: bytes, status: int, known: frozenset[str]) -> bytes:
    """Any error answer as the documented body, keeping nothing the request could have put in.

    Our own answers pass unchanged. BentoML's private validation shape
    (``{"error", "detail": [pydantic errors]}``, pinned in tests/serving/test_pins.py) keeps
    its field locations, cut to contract names. Anything else (Starlette's plain-text 404 and
    405, BentoML's one-element list for other 4xx, its 429 and 504 dicts) gets the fixed text.
    """
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = None
    if (
        isinstance(payload, dict)
        and set(payload) == {"error", "fields"}
        and isinstance(payload["error"], str)
        and isinstance(payload["fields"], list)
    ):
        return raw
    fields = None
    if status == 400 and isinstance(payload, dict) and isinstance(payload.get("detail"), list):
        fields = refusal_fields((d for d in payload["detail"] if isinstance(d, dict)), known)
    return json.dumps(error_body(status, fields or None)).encode()
