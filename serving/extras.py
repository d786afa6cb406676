"""A request's seller extra features, checked against the served model's declared list.

A model trained with extras (``data/extras.py``) reads them from the request's ``extra``
object: a number for a numeric extra, one of the declared values for a categorical one. A key
the model does not have is refused (400, naming it) or, with ``SHIPRISK_UNKNOWN_FIELDS=
ignore``, dropped with a warning; a value of the wrong type is refused. A key left out is
unknown, like any absent field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shiprisk.data.extras import NAME


class ExtraError(ValueError):
    """The request's ``extra`` does not fit the served model: ``fields`` for the 400."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        self.fields = fields
        super().__init__("; ".join(f"{f['field']}: {f['reason']}" for f in fields))


def _key(key: str) -> str:
    """A key as it may be named back: a declared-name token, else not repeated."""
    return key if NAME.match(key) else "(a key)"


def check_extra(
    given: Mapping[str, Any] | None,
    specs: Mapping[str, Mapping[str, Any]],
    *,
    ignore_unknown: bool = False,
    where: str = "extra",
) -> tuple[dict[str, Any], list[str]]:
    """The extras to score and the warnings; :class:`ExtraError` for a wrong key or value."""
    if not given:
        return {}, []
    known = ", ".join(specs) or "none"
    errors, warnings, clean = [], [], {}
    for key, value in given.items():
        spec = specs.get(key)
        if spec is None:
            if ignore_unknown:
                warnings.append(f"{where}.{_key(key)} is not an extra of this model: ignored")
                continue
            errors.append(
                {
                    "field": f"{where}.{_key(key)}",
                    "reason": f"not an extra of this model (its extras: {known})",
                }
            )
            continue
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if spec["kind"] == "numeric" and not numeric:
            errors.append({"field": f"{where}.{key}", "reason": "must be a number"})
        elif spec["kind"] == "categorical" and value not in spec["values"]:
            errors.append(
                {
                    "field": f"{where}.{key}",
                    "reason": "must be one of: " + ", ".join(spec["values"]),
                }
            )
        else:
            clean[key] = value
    if errors:
        raise ExtraError(errors)
    return clean, warnings


def describe(specs: Mapping[str, Mapping[str, Any]]) -> str:
    """The served model's extras in words (the OpenAPI description of ``extra``)."""
    if not specs:
        return "The served model declares no extra features: leave it out."
    parts = [
        f"`{n}` (number)" if s["kind"] == "numeric" else f"`{n}` (one of: {', '.join(s['values'])})"
        for n, s in specs.items()
    ]
    return "Extra features of the served model: " + "; ".join(parts) + "."


def document_extras(tag: str, request: Any, *containers: Any) -> None:
    """Name the served model's extras in the OpenAPI description of ``extra`` (read from the
    stored pipeline of ``tag`` in the BentoML store; an unknown tag leaves it generic)."""
    import json
    from pathlib import Path

    import bentoml

    try:
        path = Path(bentoml.models.get(tag).path) / "pipeline.json"
        specs = json.loads(path.read_text()).get("extras", {})
    except Exception:  # no such model here (unpinned, a test store): the generic text stays
        return
    field = request.model_fields["extra"]
    field.description = f"{describe(specs)} {field.description}"
    field.json_schema_extra = schema(specs)
    request.model_rebuild(force=True)
    for model in containers:
        model.model_rebuild(force=True)


def schema(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """JSON-schema keywords naming exactly the served model's extras and their types (a
    client or a fuzzer reading the OpenAPI document sends only those)."""
    if not specs:
        return {"maxProperties": 0}
    return {
        "properties": {
            n: {"type": "number"} if s["kind"] == "numeric" else {"enum": list(s["values"])}
            for n, s in specs.items()
        },
        "additionalProperties": False,
    }
