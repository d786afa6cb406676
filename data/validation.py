"""Vectorised validation of shipment tables against the contract.

Every check is derived from :mod:`shiprisk.data.contract` (``SCHEMA_FIELDS``, ``SPECS``,
``rules_for``, the ``check_created_at`` bounds and the pydantic schemas' required fields), so
a table that passes here is a table whose rows the pydantic schemas accept. The validator
works column by column with numpy/pandas/pyarrow (no Python loop over rows), reports *every*
problem it finds as a ``(row, field, reason)`` record and returns only the rows without any
problem, with normalised dtypes. Values arrive either typed (Parquet, a DataFrame) or as
text (CSV read with ``dtype=str``); both are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ValidationError

from shiprisk.data.coercion import (
    MISSING,
    bool_kind,
    date_kind,
    datetime_kind,
    number_kind,
    split_column,
    text_kind,
)
from shiprisk.data.contract import (
    SCHEMA_FIELDS,
    SCHEMAS,
    SHIPMENT_ID_FIELD,
    SPECS,
    FieldSpec,
    rules_for,
)

Schema = Literal["request", "open", "history"]

ERROR_COLUMNS = ("row", "field", "reason")
MISSING_COLUMN = "missing (no such column)"
DUPLICATE_ID = f"duplicate {SHIPMENT_ID_FIELD.name}"


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_frame`.

    ``valid`` holds the input rows without any error (schema columns only, normalised dtypes,
    input index kept); ``errors`` has one ``(row, field, reason)`` record per problem, where
    ``row`` is the input row number (1-based position unless ``row_numbers`` was given).
    """

    valid: pd.DataFrame
    errors: pd.DataFrame
    n_rows: int
    n_invalid: int
    valid_mask: np.ndarray

    @property
    def n_valid(self) -> int:
        return self.n_rows - self.n_invalid


class _Errors:
    """Collects error records column-wise (one array chunk per check, never one per row)."""

    def __init__(self, row_numbers: np.ndarray, order: Mapping[str, int]) -> None:
        self.rows = row_numbers
        self.order = order
        self.chunks: list[tuple[np.ndarray, str, str | np.ndarray]] = []
        self.bad_fields: dict[str, np.ndarray] = {}

    def add(self, field: str, mask: np.ndarray, reason: str) -> None:
        idx = np.flatnonzero(mask)
        if idx.size:
            self.chunks.append((idx, field, reason))
            prev = self.bad_fields.get(field)
            self.bad_fields[field] = mask.copy() if prev is None else prev | mask

    def field_ok(self, field: str, n: int) -> np.ndarray:
        bad = self.bad_fields.get(field)
        return np.ones(n, dtype=bool) if bad is None else ~bad

    def invalid_mask(self, n: int) -> np.ndarray:
        bad = np.zeros(n, dtype=bool)
        for idx, _, _ in self.chunks:
            bad[idx] = True
        return bad

    def frame(self) -> pd.DataFrame:
        if not self.chunks:
            return empty_errors()
        idx = np.concatenate([c[0] for c in self.chunks])
        fields = np.concatenate([np.full(c[0].size, c[1], dtype=object) for c in self.chunks])
        reasons = np.concatenate([np.full(c[0].size, c[2], dtype=object) for c in self.chunks])
        rank = np.concatenate(
            [np.full(c[0].size, self.order.get(c[1], len(self.order))) for c in self.chunks]
        )
        # stable: by input position, then schema field order, then check order
        sort = np.lexsort((np.arange(idx.size), rank, idx))
        return pd.DataFrame(
            {
                "row": self.rows[idx[sort]].astype(np.int64),
                "field": pd.array(fields[sort], dtype="str"),
                "reason": pd.array(reasons[sort], dtype="str"),
            }
        )


def empty_errors() -> pd.DataFrame:
    """An error table with no rows (the columns every consumer can rely on)."""
    return pd.DataFrame(
        {
            "row": np.array([], dtype=np.int64),
            "field": pd.array([], dtype="str"),
            "reason": pd.array([], dtype="str"),
        }
    )


# -- the validator --------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _required(schema: str) -> frozenset[str]:
    """Fields the schema's pydantic model requires (the request's channel_id is optional)."""
    model = SCHEMAS[schema]
    return frozenset(
        name for name in SCHEMA_FIELDS[schema] if model.model_fields[name].is_required()
    )


class _Recorder(Mapping[str, Any]):
    """Row view that records which fields a cross-field rule reads (its inputs)."""

    def __init__(self, columns: Mapping[str, Any]) -> None:
        self.columns = columns
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self.columns[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


def validate_frame(
    df: pd.DataFrame,
    schema: Schema,
    *,
    unique_ids: bool = True,
    now: datetime | None = None,
    row_numbers: np.ndarray | None = None,
    timezone: str = "UTC",
) -> ValidationResult:
    """Check every row of ``df`` against ``schema``; report every problem, keep clean rows.

    ``timezone`` is the zone of naive ``created_at`` values (the contract's default: UTC).
    Extra columns are ignored (not errors, not in ``valid``); a missing required column is an
    error on every row; with ``unique_ids`` a repeated ``shipment_id`` is an error on every
    occurrence after the first.
    """
    if schema not in SCHEMA_FIELDS:
        raise ValueError(f"unknown schema {schema!r}: use one of {', '.join(SCHEMA_FIELDS)}")
    if df.columns.has_duplicates:
        dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise ValueError(f"duplicate column names: {', '.join(dupes)}")
    n = len(df)
    rows = np.arange(1, n + 1) if row_numbers is None else np.asarray(row_numbers)
    if rows.shape != (n,):
        raise ValueError(f"row_numbers has {rows.size} entries for {n} rows")
    now = now or datetime.now(UTC)
    fields = SCHEMA_FIELDS[schema]
    required = _required(schema)
    errors = _Errors(rows, {name: i for i, name in enumerate(fields)})
    values: dict[str, Any] = {}
    absent: set[str] = set()
    blank: dict[str, np.ndarray] = {}  # optional fields: blank cells are unknown, not errors

    for name in fields:
        spec = SPECS[name]
        if name not in df.columns:
            absent.add(name)
            if name in required:
                errors.add(name, np.ones(n, dtype=bool), MISSING_COLUMN)
            values[name] = _empty_column(spec, n)
            continue
        col = split_column(df[name].reset_index(drop=True))
        if name in required:
            errors.add(name, col.blank, MISSING)
        else:
            blank[name] = col.blank
        if spec.kind in ("int", "float"):
            value, checks = number_kind(spec, col, n)
        elif spec.kind == "bool":
            value, checks = bool_kind(spec, col, n)
        elif spec.kind == "datetime":
            value, checks = datetime_kind(spec, col, n, now=now, timezone=timezone)
        elif spec.kind == "date":
            value, checks = date_kind(spec, col, n)
        else:
            value, checks = text_kind(spec, col, n)
        for mask, reason in checks:
            errors.add(name, mask, reason)
        values[name] = value

    for field, reason, predicate in rules_for(schema):
        row = _Recorder(values)
        holds = np.asarray(predicate(row), dtype=bool)
        inputs_ok = np.ones(n, dtype=bool)
        for name in row.read:  # a rule only speaks about rows whose inputs are valid
            inputs_ok &= errors.field_ok(name, n) & (name not in absent)
            if name in blank:
                inputs_ok &= ~blank[name]
        errors.add(field, inputs_ok & ~holds, reason)

    id_name = SHIPMENT_ID_FIELD.name
    if unique_ids and id_name in fields and id_name not in absent:
        ids = values[id_name]
        errors.add(id_name, (ids.duplicated(keep="first") & ids.notna()).to_numpy(), DUPLICATE_ID)

    invalid = errors.invalid_mask(n)
    valid_mask = ~invalid
    valid = pd.DataFrame(  # an absent optional column stays absent: nothing is made up
        {
            name: _final(SPECS[name], values[name], valid_mask, blank.get(name))
            for name in fields
            if name not in absent or name in required
        },
        index=df.index[valid_mask],
    )
    return ValidationResult(
        valid=valid,
        errors=errors.frame(),
        n_rows=n,
        n_invalid=int(invalid.sum()),
        valid_mask=valid_mask,
    )


def _empty_column(spec: FieldSpec, n: int) -> Any:
    if spec.kind in ("int", "float"):
        return np.full(n, np.nan)
    if spec.kind == "bool":
        return np.zeros(n, dtype=bool)
    if spec.kind == "datetime":
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns, UTC]")
    if spec.kind == "date":
        return pd.Series(pd.NaT, index=range(n), dtype="datetime64[ns]")
    return pd.Series(pd.NA, index=range(n), dtype="str")


def _final(spec: FieldSpec, value: Any, mask: np.ndarray, blank: np.ndarray | None = None) -> Any:
    """The kept rows of one column in its contract dtype; an optional whole-number or
    true/false column with blank (unknown) cells becomes float64 with NaN there."""
    every = bool(mask.all())  # the common case: skip the (costly) filter
    if isinstance(value, pd.Series):  # text and timestamps: keep the extension dtype
        kept = value.array if every else value.array[mask]
        return kept.astype("str") if spec.kind in ("str", "enum") else kept
    kept = value if every else value[mask]
    unknown = None if blank is None else (blank if every else blank[mask])
    if unknown is not None and unknown.any() and spec.kind in ("int", "bool"):
        return np.where(unknown, np.nan, kept.astype(np.float64))
    if spec.kind == "int":
        return kept.astype(np.int64)
    if spec.kind == "float":
        return kept.astype(np.float64)
    return kept.astype(bool)


# -- pydantic errors as (field, reason) -------------------------------------------------------

_MODEL_ERROR = re.compile(r"^(?P<field>[A-Za-z_][A-Za-z0-9_]*): (?P<reason>.+)$", re.DOTALL)


def describe_validation_error(exc: ValidationError) -> list[dict[str, str]]:
    """Each pydantic error as ``{"field": "a.0.b", "reason": "..."}`` for API error bodies."""
    return describe_errors(exc.errors())


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Pydantic-style error dicts (``loc``, ``msg``) as ``{"field", "reason"}``.

    Cross-field rules raise ``"<field>: <reason>"`` at model level (empty location); the
    field is recovered from the message so the caller can still name it. An error about the
    whole body (malformed JSON, not an object) is attributed to ``body``.
    """
    out = []
    for err in errors:
        field = ".".join(str(part) for part in err.get("loc", ()))
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        match = _MODEL_ERROR.match(reason)
        if match and match["field"] in SPECS and not field.endswith(match["field"]):
            # A cross-field rule fails at model level: name the field it blames.
            field = f"{field}.{match['field']}" if field else match["field"]
            reason = match["reason"]
        field = field or "body"
        out.append({"field": field, "reason": reason})
    return out
