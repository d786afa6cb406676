"""Absent fields: which fields a model reads, and teaching it what "absent" means.

A seller's history often lacks some optional fields entirely (the model then never uses
them), and a request may leave out a field the model does use. Absent is fed to the model as
missing (NaN; for a categorical code, a category of its own: :func:`absent_code`), never as
a made-up value; so that missing at scoring time is something the
model has seen, training masks each optional field the history has, independently, in a
random share of the training rows (``configs/train.yaml``, ``missing.mask_rate``). Fields that
travel together in real exports are masked together (the three sides; the two buyer counts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shiprisk.data.contract import OPTIONAL_FIELDS, SPECS
from shiprisk.features.definitions import (
    ADDRESS_RISK,
    CATEGORICAL_FIELDS,
    INPUT_FIELDS,
    MODEL_CATEGORICALS,
)

MODEL_FIELDS: tuple[str, ...] = tuple(
    f
    for f in INPUT_FIELDS
    if f not in CATEGORICAL_FIELDS or f in (*MODEL_CATEGORICALS, "destination_country")
)
"""Contract fields the features are computed from (the marketplace is learned only to warn
about unseen values: no feature reads it)."""
MASK_GROUPS: tuple[tuple[str, ...], ...] = (
    ("length_cm", "width_cm", "height_cm"),
    ("buyer_prior_orders", "buyer_prior_refusals"),
)


def is_absent(value: Any) -> bool:
    """An absent (unknown) cell or field: None, pandas NA or a float NaN."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def coder(codes: Mapping[str, int]) -> Any:
    """Category -> code lookup: ``default`` for an absent value (:func:`absent_code` or NaN),
    0 for one never seen in training."""

    def code(value: Any, default: Any) -> Any:
        return default if is_absent(value) else codes.get(value, 0)

    return code


def absent_code(categories: Sequence[str]) -> float:
    """The code of an absent categorical field the model was trained with: one past its
    known values (1..n; 0 is a value never seen), a category of its own.

    Why not NaN: a LightGBM categorical split sends NaN with the categories it does not
    list, so "absent" can only share a level with some of the known values. As a category of
    its own, the masked rows teach the trees its level (measured on the simulated world,
    BENCHMARKS.md "Optional fields": fresh rows without ``goods_category`` went from 0.952
    to 0.960 of their true p_loss, ECE/base rate 0.111 -> 0.101). A field the model never saw
    stays NaN (a constant column in its training data: nothing was learned about it). A
    model trained before this code saw NaN there; the code, an unseen category to it, goes the
    same way NaN did."""
    return float(len(categories) + 1)


def number(values: Any) -> Any:
    """A numeric or true/false column (or scalar) as float64, NaN where absent."""
    if isinstance(values, np.ndarray):
        if values.dtype == object:
            return np.array([np.nan if is_absent(v) else v for v in values], dtype=np.float64)
        return values.astype(np.float64, copy=False)
    return np.float64(np.nan if is_absent(values) else values)


def isin(values: Any, members: Sequence[str]) -> Any:
    """Membership as 1.0/0.0 of an object array (elementwise, without ``np.isin``'s sort)
    or a scalar; NaN where the value is absent (unknown is neither in nor out)."""
    wanted = set(members)

    def one(v: Any) -> float:
        return np.nan if is_absent(v) else float(v in wanted)

    if isinstance(values, np.ndarray):
        return np.fromiter((one(v) for v in values), np.float64, len(values))
    return np.float64(one(values))


def address_risk(value: Any, default: float) -> float:
    return np.nan if is_absent(value) else ADDRESS_RISK.get(value, default)


def each(lookup: Any, values: Any, default: Any) -> Any:
    """``lookup(value, default)`` for each element of an array (as a list), or for a scalar."""
    if isinstance(values, np.ndarray):
        return [lookup(v, default) for v in values]
    return lookup(values, default)


def used_fields(frame: pd.DataFrame) -> list[str]:
    """Fields a model fitted on ``frame`` reads: model fields with at least one value."""
    return [f for f in MODEL_FIELDS if f in frame and bool(frame[f].notna().any())]


def mask_groups(fields: Sequence[str]) -> list[tuple[str, ...]]:
    """The optional ``fields`` as masking groups (grouped fields masked together)."""
    optional = [f for f in fields if f in OPTIONAL_FIELDS]
    grouped = {f for g in MASK_GROUPS for f in g}
    groups = [tuple(f for f in g if f in optional) for g in MASK_GROUPS]
    return [g for g in groups if g] + [(f,) for f in optional if f not in grouped]


def mask_optional(frame: pd.DataFrame, rate: float, seed: int = 0) -> pd.DataFrame:
    """A copy of ``frame`` with each optional field group the model reads blanked (unknown)
    in an independent random ``rate`` share of the rows; core fields are never masked."""
    if not 0.0 <= rate < 1.0:
        raise ValueError("mask_rate must be in [0, 1)")
    out = frame.copy()
    if rate == 0.0 or frame.empty:
        return out
    rng = np.random.default_rng(seed)
    for group in mask_groups(used_fields(frame)):
        rows = rng.random(len(out)) < rate
        for name in group:
            out[name] = blanked(out[name], rows)
    return out


def with_masked_copies(
    frame: pd.DataFrame, rate: float, share: float, seed: int = 0
) -> pd.DataFrame:
    """Every row of ``frame`` as recorded plus a copy, masked at ``rate`` (:func:`mask_optional`),
    of a random ``share`` of the rows, in ``created_at`` order (a copy next to its row): the
    model learns the answer for a missing field without fewer rows with the field."""
    if not 0.0 < share <= 1.0:
        raise ValueError("the share of masked copies must be in (0, 1]")
    rng = np.random.default_rng([seed, 1])
    copies = mask_optional(frame[rng.random(len(frame)) < share], rate, seed)
    both = pd.concat([frame, copies], ignore_index=True)
    return both.sort_values("created_at", kind="stable").reset_index(drop=True)


def blanked(values: pd.Series, rows: np.ndarray) -> pd.Series:
    """``values`` with ``rows`` unknown: NaN for numbers and true/false (as float64), NA for
    text; the dtype validation gives a column with blank cells."""
    kind = SPECS[str(values.name)].kind if values.name in SPECS else "str"
    if kind in ("int", "float", "bool"):
        number = values.to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.Series(np.where(rows, np.nan, number), index=values.index, name=values.name)
    return values.where(~rows)
