"""Seller extra features: columns of a seller's export beyond the contract.

A seller's strongest signals are often their own (a four-value payment type, a sales
channel, a product line). The mapping declares them under ``extras``; each becomes a feature
of that seller's model, named ``extra.<name>`` in the training frame and sent under ``extra``
to ``/score``. Only numbers, or categories with their declared values, can be features:
free text (names, addresses, notes) is refused, so no personal data becomes a feature.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PREFIX = "extra."
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_VALUES = 200
ATTR = "shiprisk_extras"
"""``DataFrame.attrs`` key carrying the declared extras from the loader to the pipeline."""


class ExtraSpec(BaseModel):
    """One extra column: where it is read from, numeric or categorical (declared values)."""

    model_config = ConfigDict(extra="forbid")
    column: str = Field(min_length=1, description="the export's column")
    kind: str = Field(description="numeric, or categorical (with values)")
    values: list[str] | None = Field(default=None, description="categorical: every value")

    @field_validator("kind")
    @classmethod
    def _no_free_text(cls, value: str) -> str:
        if value not in ("numeric", "categorical"):
            raise ValueError(
                f"kind {value!r} cannot be a feature: free text is refused; declare numeric, "
                "or categorical with its values"
            )
        return value

    @model_validator(mode="after")
    def _values_fit_kind(self) -> ExtraSpec:
        if self.kind == "categorical":
            if not self.values or len(set(self.values)) != len(self.values):
                raise ValueError("a categorical extra lists its distinct values under values")
            if len(self.values) > MAX_VALUES:
                raise ValueError(f"at most {MAX_VALUES} values (more is free text)")
        elif self.values is not None:
            raise ValueError("a numeric extra has no values")
        return self

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "values": self.values}


Kind = Literal["numeric", "categorical"]


def check_names(extras: dict[str, ExtraSpec], contract: set[str]) -> None:
    for name in extras:
        if not NAME.match(name):
            raise ValueError(f"extras.{name}: a name is lowercase letters, digits and _")
        if name in contract:
            raise ValueError(f"extras.{name}: a contract field, map it under columns")


def extra_columns(df: pd.DataFrame, extras: dict[str, ExtraSpec]) -> pd.DataFrame:
    """The export's extra columns renamed ``extra.<name>`` (absent ones left out)."""
    return pd.DataFrame(
        {PREFIX + n: df[s.column] for n, s in extras.items() if s.column in df.columns},
        index=df.index,
    )


def coerce(values: pd.Series, spec: dict[str, Any]) -> tuple[pd.Series, np.ndarray, str]:
    """Typed values (float64, or text of the declared values) with blanks as unknown, the
    rows whose value cannot be read, and why."""
    text = values.astype("str").where(values.notna()).str.strip()
    blank = (text.isna() | (text == "")).to_numpy(dtype=bool)
    if spec["kind"] == "numeric":
        number = pd.to_numeric(text.where(~blank), errors="coerce")
        bad = ~blank & number.isna().to_numpy(dtype=bool)
        return number.astype(np.float64), bad, "must be a number"
    allowed = set(spec["values"])
    known = text.isin(allowed).to_numpy(dtype=bool)
    bad = ~blank & ~known
    return text.where(known), bad, "must be one of: " + ", ".join(spec["values"])
