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
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from shiprisk.data.contract import (
    EARLIEST_CREATED_AT,
    MAX_FUTURE,
    SCHEMA_FIELDS,
    SCHEMAS,
    SHIPMENT_ID_FIELD,
    SPECS,
    FieldSpec,
    check_created_at,
    rules_for,
)

Schema = Literal["request", "open", "history"]

TRUE_WORDS = ("1", "on", "t", "true", "y", "yes")
FALSE_WORDS = ("0", "off", "f", "false", "n", "no")
"""Text spellings of booleans (case-insensitive): the set pydantic's lax bool accepts, so the
API and the file validator agree on what ``"Yes"`` means."""

ERROR_COLUMNS = ("row", "field", "reason")
MISSING = "missing"
MISSING_COLUMN = "missing (no such column)"
NOT_TEXT = "must be text"
NOT_NUMBER = "not a number"
NOT_FINITE = "not a finite number"
NOT_WHOLE = "not a whole number"
NOT_BOOL = "must be true or false (or yes/no, 1/0)"
NOT_DATETIME = "not a date and time"
NOT_DATE = "not a date"
DATE_WITH_TIME = "must be a date without a time of day"
DUPLICATE_ID = f"duplicate {SHIPMENT_ID_FIELD.name}"

_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")
"""A timestamp ending in a UTC offset (``...09:30:00Z``, ``...09:30+08:00``)."""
_ISO_TIME = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"
_ISO_AWARE = _ISO_TIME + r"(?:Z|[+-]\d{2}:?\d{2})$"
_ISO_NAIVE = r"^\d{4}-\d{2}-\d{2}$|" + _ISO_TIME + "$"
"""The shapes pyarrow's ISO 8601 cast reads (the fast path); others go through pandas."""


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


# -- splitting an input column by element type ----------------------------------------------


@dataclass
class _Column:
    """One input column: which cells are blank, the text cells, the non-text cells."""

    blank: np.ndarray
    text: pd.Series | None  # str dtype, NA where the cell is blank or not text
    other: pd.Series | None  # original values where the cell is present but not text


def _split(raw: pd.Series) -> _Column:
    """Separate text from typed cells so each kind can parse both without a row loop."""
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype(raw.cat.categories.dtype)
    na = raw.isna().to_numpy(dtype=bool)
    if isinstance(raw.dtype, pd.StringDtype):
        blank = na | raw.eq("").to_numpy(dtype=bool, na_value=False)
        return _Column(blank, raw.where(~blank), None)
    if raw.dtype != object:
        return _Column(na, None, raw)
    kinds = raw.map(type, na_action="ignore")
    is_text = kinds.isin((str, np.str_)).to_numpy(dtype=bool)
    blank = na | (is_text & raw.eq("").to_numpy(dtype=bool, na_value=False))
    text = pd.Series(raw.where(is_text & ~blank), dtype="str", index=raw.index)
    other = raw.where(~is_text & ~na)
    return _Column(blank, text, other if (~is_text & ~na).any() else None)


def blank_mask(values: pd.Series) -> np.ndarray:
    """Cells the validator treats as missing: NA/None/NaN, or empty text."""
    return _split(values.reset_index(drop=True)).blank


def _arrow(text: pd.Series) -> pa.Array:
    return pa.array(text.array) if hasattr(text.array, "__arrow_array__") else pa.array(text)


# -- one coercer per field kind: (values, list of (bad mask, reason)) ------------------------


Checks = list[tuple[np.ndarray, str]]


def _numbers(col: _Column, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Float values (NaN where unusable) and the mask of present cells that are not numbers."""
    values = np.full(n, np.nan)
    not_number = np.zeros(n, dtype=bool)
    if col.text is not None:
        present = col.text.notna().to_numpy(dtype=bool)
        try:  # fast path: pyarrow parses clean numeric text ~20x faster than to_numeric
            parsed = pc.cast(_arrow(col.text), pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            parsed = pd.to_numeric(col.text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        parsed = np.asarray(parsed, dtype=float)
        unparsed = present & np.isnan(parsed)
        if unparsed.any():  # "nan" parses; it is a number, just not a finite one
            unparsed[unparsed] = ~_nan_word(col.text[unparsed])
        values = np.where(present, parsed, values)
        not_number |= unparsed
    if col.other is not None:
        other = col.other
        present = other.notna().to_numpy(dtype=bool)
        if pd.api.types.is_bool_dtype(other.dtype) or pd.api.types.is_numeric_dtype(other.dtype):
            parsed = other.to_numpy(dtype=float, na_value=np.nan)
        elif other.dtype == object:
            numeric = other.map(_is_number, na_action="ignore").eq(True).to_numpy(dtype=bool)
            parsed = pd.to_numeric(other.where(numeric), errors="coerce").to_numpy(
                dtype=float, na_value=np.nan
            )
            not_number |= present & ~numeric
        else:  # datetimes, timedeltas...
            parsed = np.full(n, np.nan)
            not_number |= present
        values = np.where(present & ~not_number, parsed, values)
    return values, not_number


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating))  # bools are ints too


def _nan_word(text: pd.Series) -> np.ndarray:
    """Text cells spelling NaN: a number, just not a finite one (as pydantic reports it)."""
    return text.str.strip().str.lower().isin(("nan", "+nan", "-nan")).to_numpy(dtype=bool)


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)


def _number_kind(spec: FieldSpec, col: _Column, n: int) -> tuple[np.ndarray, Checks]:
    values, not_number = _numbers(col, n)
    present = ~col.blank & ~not_number
    finite = np.isfinite(values)
    checks: Checks = [(not_number, NOT_NUMBER), (present & ~finite, NOT_FINITE)]
    ok = present & finite
    if spec.kind == "int":
        whole = np.zeros(n, dtype=bool)
        whole[ok] = values[ok] == np.floor(values[ok])
        checks.append((ok & ~whole, NOT_WHOLE))
        ok &= whole
    with np.errstate(invalid="ignore"):
        if spec.ge is not None:
            checks.append((ok & (values < spec.ge), f"must be >= {_fmt(spec.ge)}"))
        if spec.gt is not None:
            checks.append((ok & (values <= spec.gt), f"must be > {_fmt(spec.gt)}"))
        if spec.le is not None:
            checks.append((ok & (values > spec.le), f"must be <= {_fmt(spec.le)}"))
    return values, checks


def _bool_kind(spec: FieldSpec, col: _Column, n: int) -> tuple[np.ndarray, Checks]:
    values = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    if col.text is not None:
        lower = col.text.str.lower()
        true = lower.isin(TRUE_WORDS).to_numpy(dtype=bool)
        false = lower.isin(FALSE_WORDS).to_numpy(dtype=bool)
        present = col.text.notna().to_numpy(dtype=bool)
        values |= true
        bad |= present & ~true & ~false
    if col.other is not None:
        nums, not_number = _numbers(_Column(col.blank, None, col.other), n)
        present = col.other.notna().to_numpy(dtype=bool)
        values |= present & (nums == 1)
        bad |= present & (not_number | ~np.isin(nums, (0.0, 1.0)))
    return values, [(bad, NOT_BOOL)]


def _text_kind(spec: FieldSpec, col: _Column, n: int) -> tuple[pd.Series, Checks]:
    not_text = np.zeros(n, dtype=bool)
    if col.other is not None:
        not_text = col.other.notna().to_numpy(dtype=bool)
    text = col.text if col.text is not None else pd.Series(pd.NA, index=range(n), dtype="str")
    text = text.reset_index(drop=True)
    present = text.notna().to_numpy(dtype=bool)
    if spec.kind == "enum":
        assert spec.values is not None
        allowed = text.isin(spec.values).to_numpy(dtype=bool)
        reason = "must be one of: " + ", ".join(spec.values)
        return text, [((present & ~allowed) | not_text, reason)]
    checks: Checks = [(not_text, NOT_TEXT)]
    too_long = np.zeros(n, dtype=bool)
    if spec.max_length is not None:
        too_long = present & (text.str.len().to_numpy(dtype=float, na_value=0) > spec.max_length)
        checks.append((too_long, f"longer than {spec.max_length} characters"))
    if spec.pattern is not None:
        match = text.str.fullmatch(spec.pattern).to_numpy(dtype=bool, na_value=False)
        checks.append((present & ~too_long & ~match, f"must match {spec.pattern}"))
    return text, checks


@lru_cache(maxsize=1)
def _created_at_reasons() -> tuple[str, str]:
    """The contract's own messages for too-early / future creation times (probed once)."""
    reasons = []
    now = datetime.now(UTC)
    for probe in (EARLIEST_CREATED_AT - timedelta(days=1), now + 2 * MAX_FUTURE + timedelta(1)):
        try:
            check_created_at(probe, now=now)
        except ValueError as exc:
            reasons.append(str(exc))
    early, future = reasons
    return early, future


def _parse_timestamps(col: _Column, n: int, timezone: str) -> tuple[pd.Series, np.ndarray]:
    """UTC timestamps (NaT where unusable) and the mask of present cells that are not times.

    Naive values are read in ``timezone`` (the contract reads them as UTC).
    """
    out = pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
    bad = np.zeros(n, dtype=bool)
    if col.text is not None:
        text = col.text.reset_index(drop=True)
        present = text.notna().to_numpy(dtype=bool)
        parsed = _parse_text_times(text, timezone)
        out = out.where(~present, parsed)
        bad |= present & parsed.isna().to_numpy(dtype=bool)
    if col.other is not None:
        other = col.other.reset_index(drop=True)
        present = other.notna().to_numpy(dtype=bool)
        if isinstance(other.dtype, pd.DatetimeTZDtype):
            parsed = other.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(other.dtype):
            parsed = _localize(other, timezone)
        elif other.dtype == object and _only_dates(other):  # e.g. datetime.date objects
            parsed = _localize(pd.to_datetime(other), timezone)
        elif other.dtype == object:
            parsed = other.map(_scalar_time, na_action="ignore")
            parsed = _localize_mixed(parsed, timezone)
        else:
            parsed = pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
        parsed = parsed.astype("datetime64[us, UTC]")
        out = out.where(~present, parsed)
        bad |= present & parsed.isna().to_numpy(dtype=bool)
    return out, bad


def _only_dates(values: pd.Series) -> bool:
    """An object column holding only naive dates/datetimes (converted in one call)."""
    if pd.api.types.infer_dtype(values, skipna=True) not in ("date", "datetime"):
        return False
    return not any(getattr(v, "tzinfo", None) is not None for v in values.dropna().head(1))


def _scalar_time(value: Any) -> Any:
    """Python/numpy/pandas datetime or date objects in an object column; anything else NaT."""
    if isinstance(value, (datetime, pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value)
    if hasattr(value, "isoformat") and hasattr(value, "year"):  # datetime.date
        return pd.Timestamp(value)
    return pd.NaT


def _localize(values: pd.Series, timezone: str) -> pd.Series:
    return values.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def _localize_mixed(values: pd.Series, timezone: str) -> pd.Series:
    """An object column of Timestamps, some naive and some aware, to UTC."""
    aware = values.map(lambda t: t.tzinfo is not None, na_action="ignore").eq(True)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
    if aware.any():
        out[aware] = pd.to_datetime(values[aware], utc=True)
    naive = values.notna() & ~aware
    if naive.any():
        out[naive] = _localize(pd.to_datetime(values[naive]), timezone)
    return out


def _parse_text_times(text: pd.Series, timezone: str) -> pd.Series:
    """ISO 8601 text to UTC timestamps (NaT where unparseable).

    Cells in the two plain ISO shapes (with / without a UTC offset) go through pyarrow's
    parser, ~10x faster than pandas; anything else (and any shape pyarrow refuses) goes
    through ``pd.to_datetime(format="ISO8601")``. A failing pyarrow cast is slow, hence the
    regex split first.
    """
    arrow = _arrow(text)
    n = len(text)
    wall = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")  # UTC wall time
    present = text.notna().to_numpy(dtype=bool)
    rest = present.copy()
    for pattern, aware in ((_ISO_AWARE, True), (_ISO_NAIVE, False)):
        mask = pc.fill_null(pc.match_substring_regex(arrow, pattern), False)
        mask = mask.to_numpy(zero_copy_only=False) & rest
        if not mask.any():
            continue
        unit = pa.timestamp("us", tz="UTC") if aware else pa.timestamp("us")
        try:
            parsed = pc.cast(arrow.filter(pa.array(mask)), unit).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # e.g. month 13: leave these cells to pandas
        parsed = parsed.astype("datetime64[us]")
        if not aware and timezone != "UTC":
            parsed = _localize(pd.Series(parsed), timezone).dt.tz_localize(None).to_numpy()
        wall[mask] = parsed
        rest &= ~mask
    if rest.any():
        sub = text[rest]
        parsed = pd.to_datetime(sub, format="ISO8601", utc=True, errors="coerce")
        if timezone != "UTC":
            naive = ~sub.str.strip().str.contains(_OFFSET).to_numpy(dtype=bool, na_value=False)
            if naive.any():
                local = pd.to_datetime(sub[naive], format="ISO8601", errors="coerce")
                parsed[naive] = _localize(local, timezone)
        wall[rest] = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return pd.Series(wall).dt.tz_localize("UTC")


def _datetime_kind(
    spec: FieldSpec, col: _Column, n: int, *, now: datetime, timezone: str
) -> tuple[pd.Series, Checks]:
    values, bad = _parse_timestamps(col, n, timezone)
    ok = values.notna().to_numpy(dtype=bool, copy=True)
    early_reason, future_reason = _created_at_reasons()
    ts = values.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")  # UTC wall time
    earliest = np.datetime64(EARLIEST_CREATED_AT.replace(tzinfo=None), "us")
    latest = np.datetime64((now.astimezone(UTC) + MAX_FUTURE).replace(tzinfo=None), "us")
    checks: Checks = [(bad, NOT_DATETIME), (ok & (ts < earliest), early_reason)]
    checks.append((ok & (ts > latest), future_reason))
    ok &= (ts >= earliest) & (ts <= latest)
    return values.where(ok).astype("datetime64[ns, UTC]"), checks


def _date_kind(spec: FieldSpec, col: _Column, n: int) -> tuple[pd.Series, Checks]:
    values, bad = _parse_timestamps(col, n, "UTC")
    wall = values.dt.tz_localize(None)
    has_time = (wall != wall.dt.normalize()).to_numpy(dtype=bool, na_value=False)
    too_far = (wall > pd.Timestamp.max) | (wall < pd.Timestamp.min)  # beyond datetime64[ns]
    too_far = too_far.to_numpy(dtype=bool, na_value=False)
    ok = ~bad & ~has_time & ~too_far & wall.notna().to_numpy(dtype=bool)
    checks: Checks = [(bad | too_far, NOT_DATE), (has_time, DATE_WITH_TIME)]
    return wall.where(ok).astype("datetime64[ns]"), checks


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

    for name in fields:
        spec = SPECS[name]
        if name not in df.columns:
            absent.add(name)
            if name in required:
                errors.add(name, np.ones(n, dtype=bool), MISSING_COLUMN)
            values[name] = _empty_column(spec, n)
            continue
        col = _split(df[name].reset_index(drop=True))
        if name in required:
            errors.add(name, col.blank, MISSING)
        if spec.kind in ("int", "float"):
            value, checks = _number_kind(spec, col, n)
        elif spec.kind == "bool":
            value, checks = _bool_kind(spec, col, n)
        elif spec.kind == "datetime":
            value, checks = _datetime_kind(spec, col, n, now=now, timezone=timezone)
        elif spec.kind == "date":
            value, checks = _date_kind(spec, col, n)
        else:
            value, checks = _text_kind(spec, col, n)
        for mask, reason in checks:
            errors.add(name, mask, reason)
        values[name] = value

    for field, reason, predicate in rules_for(schema):
        row = _Recorder(values)
        holds = np.asarray(predicate(row), dtype=bool)
        inputs_ok = np.ones(n, dtype=bool)
        for name in row.read:  # a rule only speaks about rows whose inputs are valid
            inputs_ok &= errors.field_ok(name, n) & (name not in absent)
        errors.add(field, inputs_ok & ~holds, reason)

    id_name = SHIPMENT_ID_FIELD.name
    if unique_ids and id_name in fields and id_name not in absent:
        ids = values[id_name]
        errors.add(id_name, (ids.duplicated(keep="first") & ids.notna()).to_numpy(), DUPLICATE_ID)

    invalid = errors.invalid_mask(n)
    valid_mask = ~invalid
    valid = pd.DataFrame(
        {name: _final(SPECS[name], values[name], valid_mask) for name in fields},
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


def _final(spec: FieldSpec, value: Any, mask: np.ndarray) -> Any:
    """The kept rows of one column in its contract dtype."""
    every = bool(mask.all())  # the common case: skip the (costly) filter
    if isinstance(value, pd.Series):  # text and timestamps: keep the extension dtype
        kept = value.array if every else value.array[mask]
        return kept.astype("str") if spec.kind in ("str", "enum") else kept
    kept = value if every else value[mask]
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
