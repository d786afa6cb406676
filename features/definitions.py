"""What the model sees: the input fields, the features and how each derived one is computed.

The one list of features (:data:`FEATURES`) and of the contract fields they read; the
pipeline (:mod:`shiprisk.features.pipeline`) computes them, and a stored model names the
subset it uses (:func:`missing_features` says which the code no longer computes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

FORMAT_VERSION = 1
CATEGORICAL_FIELDS: tuple[str, ...] = (
    "marketplace",
    "payment_method",
    "duties_terms",
    "goods_category",
    "packaging",
    "address_quality",
    "destination_country",
    "channel_id",
)
NUMERIC_FIELDS: tuple[str, ...] = (
    "declared_value",
    "weight_kg",
    "length_cm",
    "width_cm",
    "height_cm",
    "item_count",
    "buyer_prior_orders",
    "buyer_prior_refusals",
)
BOOL_FIELDS: tuple[str, ...] = (
    "recipient_tax_id_present",
    "fragile",
    "valuable_wording",
    "remote_area",
)
MODEL_CATEGORICALS: tuple[str, ...] = (
    "payment_method",
    "duties_terms",
    "goods_category",
    "packaging",
    "address_quality",
    "channel_id",
)
"""Categorical fields the model sees as codes. The destination country enters through its
catalog attributes (zone, tiers, COD share...) and the marketplace not at all: their raw
codes (53 and 9 levels) let the rare-outcome heads overfit (measured: -0.05 to -0.08 of the
reachable gain for p_loss). Both are still learned, to warn about unseen values."""
STRING_FIELDS: tuple[str, ...] = (*CATEGORICAL_FIELDS, "currency")
INPUT_FIELDS: tuple[str, ...] = (
    *CATEGORICAL_FIELDS,
    *NUMERIC_FIELDS,
    *BOOL_FIELDS,
    "currency",
    "created_at",
)
"""Contract fields the pipeline reads (everything else in a row is ignored)."""

DESTINATION_ATTRS: tuple[str, ...] = (
    "zone",
    "risk_tier",
    "customs_tier",
    "cod_share",
    "remote_share",
    "requires_tax_id",
    "customs_hold_days",
)
CHANNEL_ATTRS: tuple[str, ...] = ("tracking_level", "channel_type_code", "liability_usd")
UNKNOWN_CHANNEL = {
    "tracking_level": 1.0,
    "channel_type_code": -1.0,
    "liability_usd": 0.0,
    "transit_min": 10.0,
    "transit_max": 25.0,
}
"""Attributes assumed for a channel the pipeline has never heard of (scored with a warning)."""

FEATURES: tuple[str, ...] = (
    # categorical codes
    *MODEL_CATEGORICALS,
    "channel_type",
    # shipment
    "log_value_usd",
    "log_value_per_kg",
    "log_value_per_item",
    "weight_kg",
    "volumetric_kg",
    "volume_ratio",
    "longest_cm",
    "item_count",
    "month",
    "weekday",
    "peak_season",
    "months_since_2000",
    "tax_id_present",
    "fragile",
    "valuable_wording",
    "remote_area",
    "buyer_prior_orders",
    "buyer_prior_refusals",
    "refusal_rate",
    "new_buyer",
    # destination (from the catalog snapshot)
    *(f"dest_{a}" for a in DESTINATION_ATTRS),
    # channel (from the catalog snapshot)
    "tracking_level",
    "liability_usd",
    "transit_min",
    "transit_max",
    "transit_total",
    # interactions that matter in this domain
    "cod_x_risk_tier",
    "soft_pack_valuable",
    "untracked_log_value",
    "sensitive_x_customs",
    "ddu_x_customs",
    "ddu_log_value_x_customs",
    "missing_tax_id",
    "wording_x_tracking",
    # risks that carry across channels: exposure x how weakly the channel tracks the parcel
    "address_risk",
    "theft_exposure",
    "address_x_weakness",
)
CATEGORICAL_FEATURES: tuple[str, ...] = (*MODEL_CATEGORICALS, "channel_type")
_VALUE = ("declared_value", "currency")
_SIZE = ("weight_kg", "length_cm", "width_cm", "height_cm")
_DEST, _CHANNEL = ("destination_country",), ("channel_id",)
FEATURE_SOURCES: dict[str, tuple[str, ...]] = {
    **{f: (f,) for f in MODEL_CATEGORICALS},
    "channel_type": _CHANNEL,
    "log_value_usd": _VALUE,
    "log_value_per_kg": (*_VALUE, "weight_kg"),
    "log_value_per_item": (*_VALUE, "item_count"),
    "weight_kg": ("weight_kg",),
    "volumetric_kg": ("length_cm", "width_cm", "height_cm"),
    "volume_ratio": _SIZE,
    "longest_cm": ("length_cm", "width_cm", "height_cm"),
    "item_count": ("item_count",),
    "month": ("created_at",),
    "weekday": ("created_at",),
    "peak_season": ("created_at",),
    "months_since_2000": ("created_at",),
    "tax_id_present": ("recipient_tax_id_present",),
    "fragile": ("fragile",),
    "valuable_wording": ("valuable_wording",),
    "remote_area": ("remote_area",),
    "buyer_prior_orders": ("buyer_prior_orders",),
    "buyer_prior_refusals": ("buyer_prior_refusals",),
    "refusal_rate": ("buyer_prior_orders", "buyer_prior_refusals"),
    "new_buyer": ("buyer_prior_orders",),
    **{f"dest_{a}": _DEST for a in DESTINATION_ATTRS},
    "tracking_level": _CHANNEL,
    "liability_usd": (*_CHANNEL, "weight_kg"),
    "transit_min": (*_CHANNEL, *_DEST),
    "transit_max": (*_CHANNEL, *_DEST),
    "transit_total": (*_CHANNEL, *_DEST),
    "cod_x_risk_tier": ("payment_method", *_DEST),
    "soft_pack_valuable": ("packaging", "goods_category"),
    "untracked_log_value": (*_CHANNEL, *_VALUE),
    "sensitive_x_customs": ("goods_category", *_DEST),
    "ddu_x_customs": ("duties_terms", *_DEST),
    "ddu_log_value_x_customs": ("duties_terms", *_VALUE, *_DEST),
    "missing_tax_id": ("recipient_tax_id_present", *_DEST),
    "wording_x_tracking": ("valuable_wording", *_CHANNEL),
    "address_risk": ("address_quality",),
    "theft_exposure": (*_CHANNEL, *_VALUE),
    "address_x_weakness": ("address_quality", *_CHANNEL),
}
"""The request fields each feature is computed from: importance is reported per request
field (what a seller knows) by sharing each feature's importance among its fields."""
CHANNEL_ATTRIBUTE_FEATURES: tuple[str, ...] = (
    "channel_id",
    "channel_type",
    "tracking_level",
    "liability_usd",
    "transit_min",
    "transit_max",
    "transit_total",
)
"""The channel itself (code and catalog attributes on the shipment's route)."""
CHANNEL_FEATURES: tuple[str, ...] = (
    *CHANNEL_ATTRIBUTE_FEATURES,
    "untracked_log_value",
    "wording_x_tracking",
    "theft_exposure",
    "address_x_weakness",
)
"""Features that depend on the channel (the rest is computed once per shipment)."""
CHANNEL_INPUTS: tuple[str, ...] = (
    "dest_zone",
    "dest_customs_hold_days",
    "log_value_usd",
    "valuable_wording",
    "address_risk",
)
"""Shipment features the channel columns are computed from (FEATURES must keep them)."""
THEFT_REF_USD = 100.0
"""Value scale of ``theft_exposure = weakness x log1p(value_usd / THEFT_REF_USD)``.

Why these cross-channel features: the history is confounded (sellers ship valuable goods by
express, cheap ones untracked), so with only the channel's identity the trees learn the
value effect where the valuable parcels went and carry it to channels they never saw with
valuable goods: under-predicted loss for high values on registered post and air parcel,
over-predicted on express (issue 17). Theft and a poor address hurt in proportion to how
weakly a channel tracks the parcel (``weakness`` = (2 - tracking level) / 2: 1 untracked,
0.5 partly tracked, 0 fully tracked), so one column per risk, shared by every channel,
learns the slope from all of them. 100 USD is a seller's scale of "worth stealing"; the
trees only need the log shape, not the exact scale."""
ADDRESS_RISK: dict[str, float] = {"verified": 0.0, "corrected": 0.5, "unverified": 1.0}
"""Address quality as an ordered risk (a corrected address is between a verified and an
unverified one); unknown values count as unverified."""
DerivedFeature = Callable[[Mapping[str, Any]], Any]
DERIVED_FEATURES: dict[str, DerivedFeature] = {
    "volume_ratio": lambda v: v["volumetric_kg"] / v["weight_kg"],
    "refusal_rate": lambda v: (v["buyer_prior_refusals"] + 0.1) / (v["buyer_prior_orders"] + 1.0),
    "new_buyer": lambda v: (v["buyer_prior_orders"] == 0) + 0.0 * v["buyer_prior_orders"],
    "ddu_log_value_x_customs": lambda v: v["ddu_x_customs"] * v["log_value_usd"],
    "missing_tax_id": lambda v: v["dest_requires_tax_id"] * (1.0 - v["tax_id_present"]),
}
"""Shipment features that are a formula of other shipment features, evaluated in this
order after the base ones. A new one is an entry here plus its name in FEATURES. Formulas
use only arithmetic and ufuncs, which mean the same on (n,) arrays and on scalars, so the
batch and the online paths stay bit-identical; an absent input (NaN) gives NaN (``+ 0 * x``
carries it through a comparison)."""
NOT_SHIPMENT = ("created_at", "channel_id")
PEAK_MONTHS = {11: 2.0, 12: 1.0}
EPOCH_YEAR = 2000
"""``months_since_2000`` counts calendar months from January of this year: a plain numeric
time feature, so the heads can follow a slow drift in the rates instead of averaging over it
(see :func:`_months_since_epoch`)."""
ZONE_SLOTS = 6
"""Transit is stored per zone number 0..5 (zone 0 unused; unknown destinations are zone 5)."""


@dataclass(frozen=True)
class Layout:
    """Where each of the code's features goes in the computed (code-order) matrix."""

    features: tuple[str, ...]
    shipment: tuple[str, ...]
    shipment_columns: list[int]
    channel_columns: tuple[tuple[str, int], ...]
    ship_index: dict[str, int]
    index: dict[str, int]


@lru_cache(maxsize=8)
def layout_of(features: tuple[str, ...]) -> Layout:
    """The layout of a feature list; read from :data:`FEATURES` when a pipeline is fitted
    or loaded, so a code change (or a test patching the list) takes effect there."""
    shipment = tuple(f for f in features if f not in CHANNEL_FEATURES)
    absent = [f for f in CHANNEL_INPUTS if f not in shipment]
    if absent:
        raise ValueError(f"the channel features are computed from {absent}: keep them")
    index = {f: i for i, f in enumerate(features)}
    return Layout(
        features=features,
        shipment=shipment,
        shipment_columns=[index[f] for f in shipment],
        channel_columns=tuple((f, index[f]) for f in features if f in CHANNEL_FEATURES),
        ship_index={f: i for i, f in enumerate(shipment)},
        index=index,
    )
