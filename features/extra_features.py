"""Seller extra features in the matrix: after the code's features, in declared order.

A model fitted on a history with declared extras (``data/extras.py``) stores their specs
(``extras`` in ``pipeline.json``) and lists them as ``extra.<name>`` features. A numeric
extra is its value; a categorical one the code of its declared value (1..k, categorical for
LightGBM). Absent (blank, or left out of a request's ``extra``) is NaN: unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shiprisk.data.extras import ATTR, PREFIX


def specs_of(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The extras a training frame declares (the loader puts them in ``attrs``)."""
    return {n: dict(s) for n, s in frame.attrs.get(ATTR, {}).items() if PREFIX + n in frame}


def names(specs: Mapping[str, Any]) -> list[str]:
    return [PREFIX + n for n in specs]


def is_extra(feature: str) -> bool:
    return feature.startswith(PREFIX)


def categorical(specs: Mapping[str, Any], offset: int) -> list[int]:
    """Matrix columns of the categorical extras when they start at ``offset``."""
    return [offset + i for i, s in enumerate(specs.values()) if s["kind"] == "categorical"]


def encode(spec: Mapping[str, Any], value: Any) -> float:
    """One value as its feature: the number, or the declared value's code; NaN absent."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return np.nan
    if spec["kind"] == "numeric":
        return float(value)
    values = spec["values"]
    return float(values.index(value) + 1) if value in values else 0.0


def block_frame(specs: Mapping[str, Any], frame: pd.DataFrame) -> np.ndarray:
    """(n, E) from a frame's ``extra.<name>`` columns (absent column: NaN)."""
    out = np.full((len(frame), len(specs)), np.nan)
    for j, (name, spec) in enumerate(specs.items()):
        if PREFIX + name in frame:
            out[:, j] = [encode(spec, v) for v in frame[PREFIX + name].tolist()]
    return out


def block_records(specs: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """(n, E) from records' ``extra`` dicts (a key left out: NaN)."""
    out = np.full((len(records), len(specs)), np.nan)
    for i, record in enumerate(records):
        given = record.get("extra") or {}
        for j, (name, spec) in enumerate(specs.items()):
            out[i, j] = encode(spec, given.get(name))
    return out


def appended(
    X: np.ndarray, specs: Mapping[str, Any], block: Any, rows: np.ndarray | None = None
) -> np.ndarray:
    """``X`` with the extras' columns (``block()``, gathered by ``rows``) after it."""
    if not specs:
        return X
    extra = block()
    return np.hstack([X, extra if rows is None else extra[rows]])
