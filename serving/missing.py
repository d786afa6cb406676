"""What an answer says about absent fields: for the model, and for price and eligibility.

An optional field left out of a request is unknown. The model scores it as missing (it was
trained with each optional field masked at random, ``features/masking.py``); a field the
model never saw in its history is accepted and reported as unused. Without a weight, a
channel is priced at its minimum chargeable weight (unless the request quotes a price), and
without the sides no size limit is checked: the answer says so, and that the recommendation
is less certain.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd

from shiprisk.data.contract import OPTIONAL_FIELDS
from shiprisk.features.masking import MODEL_FIELDS, is_absent

SIDES = ("length_cm", "width_cm", "height_cm")


def absent(record: Mapping[str, Any]) -> list[str]:
    """Optional fields the record leaves out (contract order)."""
    return [f for f in OPTIONAL_FIELDS if is_absent(record.get(f))]


def price_estimated(record: Mapping[str, Any]) -> bool:
    """A catalog price computed without the weight or a side: at least the channel's
    minimum chargeable weight, perhaps less than the parcel will be billed."""
    return any(is_absent(record.get(f)) for f in ("weight_kg", *SIDES))


def field_warnings(record: Mapping[str, Any], used: Collection[str]) -> list[str]:
    """Absent fields the model reads, and given fields it never saw (unused)."""
    return absent_field_warnings(absent(record), used)


def absent_field_warnings(gone: Collection[str], used: Collection[str]) -> list[str]:
    """:func:`field_warnings` from the optional fields a row leaves out (``gone``): batch
    scoring computes them once per pattern of absent fields, not once per row."""
    out = []
    gone = [f for f in OPTIONAL_FIELDS if f in gone]
    unknown = [f for f in gone if f in used]
    if unknown:
        out.append(
            f"absent field(s) scored as unknown: {', '.join(unknown)} (the model learned "
            "missing values in training; the risk figures are less precise than with them)"
        )
    untrained = [f for f in gone if f in MODEL_FIELDS and f not in used]
    if untrained:
        out.append(
            f"absent field(s) this model was trained without: {', '.join(untrained)} "
            "(its history lacked them: they carry no risk information here)"
        )
    unused = [  # the marketplace is read by no model (features/masking.py): no news
        f for f in OPTIONAL_FIELDS if f in MODEL_FIELDS and f not in used and f not in gone
    ]
    if unused:
        out.append(
            f"field(s) not used by this model (not in its training history): {', '.join(unused)}"
        )
    return out


def decision_warnings(record: Mapping[str, Any], recommended: bool) -> list[str]:
    """What the price and eligibility could not check, and the less certain decision."""
    return absent_decision_warnings(absent(record), recommended)


def absent_decision_warnings(absent_fields: Collection[str], recommended: bool) -> list[str]:
    """:func:`decision_warnings` from the optional fields a row leaves out."""
    gone = set(absent_fields)
    out = []
    if "weight_kg" in gone:
        out.append(
            "weight_kg absent: channels without a quoted price are priced at their minimum "
            "chargeable weight (price_estimated: true); weight limits not checked"
        )
    if gone & set(SIDES):
        out.append(
            "size absent (length_cm, width_cm, height_cm): size eligibility (longest side, "
            "girth) not checked, volumetric weight not billed"
        )
    if "goods_category" in gone:
        out.append("goods_category absent: the channels' goods restrictions not checked")
    if "payment_method" in gone:
        out.append("payment_method absent: cash-on-delivery support not checked")
    if out and recommended:
        out.append(
            "the recommendation is less certain: price and eligibility were estimated "
            "without the fields above"
        )
    return out


def absent_cells(frame: pd.DataFrame) -> np.ndarray:
    """(rows, optional fields) bool: the cells a table of shipments leaves out (a column the
    table lacks is absent in every row), in :data:`OPTIONAL_FIELDS` order."""
    m = len(frame)
    columns = [
        frame[f].isna().to_numpy(dtype=bool) if f in frame else np.ones(m, dtype=bool)
        for f in OPTIONAL_FIELDS
    ]
    return np.column_stack(columns) if columns else np.zeros((m, 0), dtype=bool)


def price_estimated_rows(absent_mask: np.ndarray) -> np.ndarray:
    """(rows,) bool: :func:`price_estimated` for each row of :func:`absent_cells`."""
    at = [OPTIONAL_FIELDS.index(f) for f in ("weight_kg", *SIDES)]
    return absent_mask[:, at].any(axis=1)
