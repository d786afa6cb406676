"""Column coercion for the vectorised validator: one coercer per field kind.

Each coercer turns one input column (typed, or text from a CSV) into the contract's dtype and
lists the rows it could not read, with the reason; :mod:`shiprisk.data.validation` runs them
and applies the contract's rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shiprisk.data.contract import (
    EARLIEST_CREATED_AT,
    MAX_FUTURE,
    SHIPMENT_ID_FIELD,
    FieldSpec,
    check_created_at,
)

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


# -- splitting an input column by element type ----------------------------------------------


@dataclass
class Column:
    """One input column: which cells are blank, the text cells, the non-text cells."""

    blank: np.ndarray
    text: pd.Series | None  # str dtype, NA where the cell is blank or not text
    other: pd.Series | None  # original values where the cell is present but not text


def split_column(raw: pd.Series) -> Column:
    """Separate text from typed cells so each kind can parse both without a row loop."""
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype(raw.cat.categories.dtype)
    na = raw.isna().to_numpy(dtype=bool)
    if isinstance(raw.dtype, pd.StringDtype):
        blank = na | raw.eq("").to_numpy(dtype=bool, na_value=False)
        return Column(blank, raw.where(~blank), None)
    if raw.dtype != object:
        return Column(na, None, raw)
    kinds = raw.map(type, na_action="ignore")
    is_text = kinds.isin((str, np.str_)).to_numpy(dtype=bool)
    blank = na | (is_text & raw.eq("").to_numpy(dtype=bool, na_value=False))
    text = pd.Series(raw.where(is_text & ~blank), dtype="str", index=raw.index)
    other = raw.where(~is_text & ~na)
    return Column(blank, text, other if (~is_text & ~na).any() else None)


def blank_mask(values: pd.Series) -> np.ndarray:
    """Cells the validator treats as missing: NA/None/NaN, or empty text."""
    return split_column(values.reset_index(drop=True)).blank


def _arrow(text: pd.Series) -> pa.Array:
    return pa.array(text.array) if hasattr(text.array, "__arrow_array__") else pa.array(text)


# -- one coercer per field kind: (values, list of (bad mask, reason)) ------------------------


Checks = list[tuple[np.ndarray, str]]


def _numbers(col: Column, n: int) -> tuple[np.ndarray, np.ndarray]:
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


def number_kind(spec: FieldSpec, col: Column, n: int) -> tuple[np.ndarray, Checks]:
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


def bool_kind(spec: FieldSpec, col: Column, n: int) -> tuple[np.ndarray, Checks]:
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
        nums, not_number = _numbers(Column(col.blank, None, col.other), n)
        present = col.other.notna().to_numpy(dtype=bool)
        values |= present & (nums == 1)
        bad |= present & (not_number | ~np.isin(nums, (0.0, 1.0)))
    return values, [(bad, NOT_BOOL)]


def text_kind(spec: FieldSpec, col: Column, n: int) -> tuple[pd.Series, Checks]:
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


def _parse_timestamps(col: Column, n: int, timezone: str) -> tuple[pd.Series, np.ndarray]:
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


def datetime_kind(
    spec: FieldSpec, col: Column, n: int, *, now: datetime, timezone: str
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


def date_kind(spec: FieldSpec, col: Column, n: int) -> tuple[pd.Series, Checks]:
    values, bad = _parse_timestamps(col, n, "UTC")
    wall = values.dt.tz_localize(None)
    # NaT != NaT: an unreadable or blank cell is "not a date", never also "has a time"
    has_time = (wall != wall.dt.normalize()).to_numpy(dtype=bool, na_value=False)
    has_time = has_time & wall.notna().to_numpy(dtype=bool)
    too_far = (wall > pd.Timestamp.max) | (wall < pd.Timestamp.min)  # beyond datetime64[ns]
    too_far = too_far.to_numpy(dtype=bool, na_value=False)
    ok = ~bad & ~has_time & ~too_far & wall.notna().to_numpy(dtype=bool)
    checks: Checks = [(bad | too_far, NOT_DATE), (has_time, DATE_WITH_TIME)]
    return wall.where(ok).astype("datetime64[ns]"), checks
