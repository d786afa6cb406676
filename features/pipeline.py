"""The one feature pipeline: contract rows on a channel -> a float matrix for LightGBM.

:class:`ShipmentFeaturizer` follows scikit-learn's transformer contract (``fit`` returns
self, learned attributes end in ``_``). It has two entry points over the same learned
attributes and the same arithmetic (:func:`_encode`):

* ``transform(frame)`` for training and batch scoring (a DataFrame in);
* ``transform_records(records)`` / ``encode_channels(record, channels)`` for online
  scoring: plain dicts in, no DataFrame built.

Categorical fields become integer codes (0 = a value never seen in training) in a float
array; an absent optional field (``None``, NaN, a missing column) is NaN in every feature
computed from it, which LightGBM treats as missing, never a made-up value (the fields a
model reads are ``fields_``). The one exception is the code of a categorical field the model
was trained with: absent is a code of its own (:func:`~shiprisk.features.masking.absent_code`),
learned from the masked training rows like any category (see there why not NaN). LightGBM
is told which columns are categorical through :attr:`categorical_features_`.
Destination and channel attributes are snapshotted from the catalogs at ``fit`` so a stored
model keeps meaning the same thing when the catalogs change. The fitted state is plain
JSON (:meth:`to_dict` / :meth:`from_dict`): no pickle.

A stored model carries its own feature list (``feature_names_``): the pipeline computes the
code's :data:`FEATURES` and gathers the model's columns in the model's order, so adding a
feature never makes a registered model (or the rollback target) unloadable. A model naming
a feature this code does not compute is refused when it is loaded
(:class:`MissingFeaturesError`), never at request time.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd

from shiprisk.data.catalogs import (
    CHANNEL_TYPES,
    TRACKING_LEVELS,
    UNKNOWN_DESTINATION,
    Catalog,
    load_catalog,
)
from shiprisk.data.contract import SENSITIVE_GOODS, SOFT_PACKAGING, VALUABLE_GOODS
from shiprisk.features import extra_features as extra
from shiprisk.features.catalog_attributes import (
    channel_attributes,
    destination_attributes,
    live_attributes,
)
from shiprisk.features.definitions import (
    ADDRESS_RISK,
    BOOL_FIELDS,
    CATEGORICAL_FEATURES,
    CATEGORICAL_FIELDS,
    DERIVED_FEATURES,
    DESTINATION_ATTRS,
    EPOCH_YEAR,
    FEATURES,
    FORMAT_VERSION,
    INPUT_FIELDS,
    MODEL_CATEGORICALS,
    NOT_SHIPMENT,
    PEAK_MONTHS,
    STRING_FIELDS,
    THEFT_REF_USD,
    UNKNOWN_CHANNEL,
    ZONE_SLOTS,
    layout_of,
)
from shiprisk.features.masking import (
    MODEL_FIELDS,
    absent_code,
    address_risk,
    coder,
    each,
    isin,
    number,
    used_fields,
)


class MissingFeaturesError(ValueError):
    """A stored pipeline lists features this code does not compute (a code change removed
    them): the model cannot be served by this code."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(f"needs feature(s) this code does not compute: {', '.join(missing)}")


def missing_features(names: Sequence[str]) -> list[str]:
    """The features of ``names`` (a stored model's list) that this code does not compute."""
    computed = set(FEATURES)
    return [f for f in names if f not in computed and not extra.is_extra(f)]


class ShipmentFeaturizer:
    """Fit on contract rows (with ``channel_id``), then encode them for the risk model."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog

    # -- fitting ------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, y: Any = None) -> ShipmentFeaturizer:
        """Learn category codes from the data and snapshot the catalog lookups."""
        catalog = self.catalog or load_catalog()
        self.fields_ = used_fields(frame)
        self.categories_ = {
            f: sorted(str(v) for v in pd.unique(frame[f].astype(object)) if pd.notna(v))
            if f in frame
            else []
            for f in CATEGORICAL_FIELDS
        }
        self.categories_["channel_type"] = list(CHANNEL_TYPES)
        self.destinations_ = destination_attributes(catalog)
        self.unknown_destination_ = [
            float(UNKNOWN_DESTINATION.get(a, 0.0)) for a in DESTINATION_ATTRS
        ]
        self.channels_ = channel_attributes(catalog)
        self._live = {"channels": {}, "destinations": {}}
        self._use_catalog_rates(catalog)
        self.extras_ = extra.specs_of(frame)
        self.feature_names_ = [*FEATURES, *extra.names(self.extras_)]
        self.categorical_features_ = [FEATURES.index(f) for f in CATEGORICAL_FEATURES]
        self.categorical_features_ += extra.categorical(self.extras_, len(FEATURES))
        self._build_lookups()
        self.reference_ = _typical_row(self.transform(frame), self.categorical_features_)
        return self

    def _build_lookups(self) -> None:
        """Derived (not stored) tables for fast encoding; rebuilt after fit and from_dict.

        Channel attributes become arrays indexed by a channel row (row 0 = a channel never
        heard of), so every path gathers them with one numpy take instead of dict lookups.
        """
        self._codes = {
            f: {v: i + 1 for i, v in enumerate(vals)} for f, vals in self.categories_.items()
        }
        self._absent_codes = {
            f: absent_code(self.categories_[f]) if f in self.fields_ else np.nan
            for f in MODEL_CATEGORICALS
        }
        # A channel or country of today's catalog that the model's snapshot lacks is encoded
        # from its catalog attributes (its own code stays 0: never seen in training).
        live = getattr(self, "_live", {"channels": {}, "destinations": {}})
        self._dest_rows = {**live["destinations"], **self.destinations_}
        channels = {**live["channels"], **self.channels_}
        known = list(dict.fromkeys([*channels, *self.categories_["channel_id"]]))
        self._channel_row = {c: i + 1 for i, c in enumerate(known)}
        codes = self._codes["channel_id"]
        unknown = UNKNOWN_CHANNEL
        attrs = [channels.get(c) for c in known]
        self._chan_code = np.array([0.0, *(codes.get(c, 0) for c in known)])
        self._chan_type = np.array(
            [0.0, *(a["channel_type_code"] + 1.0 if a else 0.0 for a in attrs)]
        )
        self._chan_tracking = np.array(
            [unknown["tracking_level"], *(a["tracking_level"] if a else 1.0 for a in attrs)]
        )
        self._chan_liability = np.array([0.0, *(a["liability_usd"] if a else 0.0 for a in attrs)])
        n_zones = ZONE_SLOTS
        self._chan_tmin = np.array(
            [
                [unknown["transit_min"]] * n_zones,
                *(a["transit_min"] if a else [unknown["transit_min"]] * n_zones for a in attrs),
            ]
        )
        self._chan_tmax = np.array(
            [
                [unknown["transit_max"]] * n_zones,
                *(a["transit_max"] if a else [unknown["transit_max"]] * n_zones for a in attrs),
            ]
        )
        self._layout = layout = layout_of(tuple(FEATURES))
        names = self.feature_names_
        self._column = {f: i for i, f in enumerate(names)}
        # The model's columns from the code-order matrix; None: the same list, no gather.
        base = [f for f in names if not extra.is_extra(f)]  # extras: appended after
        self._take = (
            None
            if tuple(base) == layout.features
            else np.array([layout.index[f] for f in base], dtype=np.intp)
        )

    def column(self, feature: str) -> int | None:
        """Column of ``feature`` in this model's matrix (None: the model does not use it)."""
        return self._column.get(feature)

    def computed_features(self, record: Mapping[str, Any]) -> dict[str, float]:
        """Every feature the code computes for one record on its ``channel_id``, by name:
        for readers (reasons) that need a value this model's own columns may not hold."""
        ship = self._shipment_row(record)
        full = self._encode_block(ship, None, [record["channel_id"]], select=False)
        return dict(zip(self._layout.features, full[0].tolist(), strict=True))

    def channel_rows(self, channel_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Row of each channel in the channel tables (0 = never heard of)."""
        rows = self._channel_row
        return np.fromiter((rows.get(c, 0) for c in channel_ids), np.int64, len(channel_ids))

    # -- the entry points --------------------------------------------------------------------
    def transform(
        self, frame: pd.DataFrame, channel_ids: Sequence[str] | None = None
    ) -> np.ndarray:
        """Batch path: a DataFrame of contract rows -> (n, F) float64 array."""
        channels = frame["channel_id"].to_numpy() if channel_ids is None else channel_ids
        return self.transform_pairs(frame, None, channels)

    def transform_pairs(
        self,
        frame: pd.DataFrame,
        rows: np.ndarray | None,
        channel_ids: Sequence[str] | np.ndarray,
    ) -> np.ndarray:
        """Batch scoring shape: shipment ``rows[i]`` of ``frame`` on ``channel_ids[i]``.

        Shipment features are computed once per shipment and gathered for each pair, so
        scoring n shipments on K channels costs n shipment encodings, not n x K.
        """
        X = self._encode(_frame_columns(frame), rows, channel_ids)
        return extra.appended(X, self.extras_, lambda: extra.block_frame(self.extras_, frame), rows)

    def shipment_features(self, frame: pd.DataFrame, names: Sequence[str]) -> dict[str, Any]:
        """Channel-independent features the code computes for a DataFrame, by name (whatever
        this model's own list): e.g. the value in USD and the destination tier."""
        values = self._shipment_values(_frame_columns(frame))
        return {name: np.asarray(values[name], dtype=np.float64) for name in names}

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Online path: contract dicts (each with ``channel_id``) -> (n, F); no DataFrame."""
        X = self._encode(_record_columns(records), None, [r["channel_id"] for r in records])
        return extra.appended(X, self.extras_, lambda: extra.block_records(self.extras_, records))

    def encode_channels(self, record: Mapping[str, Any], channel_ids: Sequence[str]) -> np.ndarray:
        """One shipment on each of ``channel_ids`` -> (K, F): the online scoring shape.

        The shipment is encoded once and its row repeated; only the channel columns differ.
        """
        rows = np.zeros(len(channel_ids), dtype=np.int64)
        X = self._encode_block(self._shipment_row(record), rows, channel_ids)
        block = lambda: extra.block_records(self.extras_, [record])  # noqa: E731
        return extra.appended(X, self.extras_, block, rows)

    # -- the arithmetic, shared by every path ---------------------------------------------------
    def _encode(
        self, cols: dict[str, Any], rows: np.ndarray | None, channel_ids: Sequence[str] | np.ndarray
    ) -> np.ndarray:
        """Shipment columns (n,) + pairs (shipment row, channel) -> (pairs, F).

        ``rows`` None means pair i is shipment i. Shipment features first, as an (n, S)
        block, then the channel columns, which depend on the pair's channel and zone.
        """
        return self._encode_block(self._shipment_block(cols), rows, channel_ids)

    def _encode_block(
        self,
        ship: np.ndarray,
        rows: np.ndarray | None,
        channel_ids: Sequence[str] | np.ndarray,
        *,
        select: bool = True,
    ) -> np.ndarray:
        """Shipment block (n, S) + pairs -> (pairs, F): place it, then the channel columns,
        in the code's order; then (``select``) gather the model's columns in its order.
        """
        lay = self._layout
        out = np.empty((len(channel_ids), len(lay.features)), dtype=np.float64)
        if rows is None:
            out[:, lay.shipment_columns] = ship
        else:
            out[:, lay.shipment_columns] = ship[rows]
        at = slice(None) if rows is None else rows
        col = lay.ship_index
        zone = ship[at, col["dest_zone"]].astype(np.int64)
        hold = ship[at, col["dest_customs_hold_days"]]
        log_value = ship[at, col["log_value_usd"]]
        wording = ship[at, col["valuable_wording"]]
        address = ship[at, col["address_risk"]]

        c = self.channel_rows(channel_ids)
        tracking = self._chan_tracking[c]
        weakness = (2.0 - tracking) / 2.0
        tmin = self._chan_tmin[c, zone]
        tmax = self._chan_tmax[c, zone]
        channel = {
            "channel_id": self._chan_code[c],
            "channel_type": self._chan_type[c],
            "tracking_level": tracking,
            "liability_usd": self._chan_liability[c],
            "transit_min": tmin,
            "transit_max": tmax,
            "transit_total": (tmin + tmax) / 2.0 + hold,
            "untracked_log_value": (tracking == TRACKING_LEVELS["none"]) * log_value,
            "wording_x_tracking": wording * (2.0 - tracking),
            "theft_exposure": weakness * np.log1p(np.expm1(log_value) / THEFT_REF_USD),
            "address_x_weakness": address * weakness,
        }
        for name, j in lay.channel_columns:
            out[:, j] = channel[name]
        if not select or self._take is None:
            return out
        return out.take(self._take, axis=1)

    def _shipment_block(self, cols: dict[str, Any]) -> np.ndarray:
        """(n, S) features that do not depend on the channel, in the code's order."""
        values = self._shipment_values(cols)
        shipment = self._layout.shipment
        out = np.empty((len(cols["declared_value"]), len(shipment)), dtype=np.float64)
        for j, name in enumerate(shipment):
            out[:, j] = values[name]
        return out

    def _shipment_row(self, record: Mapping[str, Any]) -> np.ndarray:
        """(1, S) shipment features of one record: the same arithmetic on scalars, which
        for one shipment is several times faster than on length-1 arrays."""
        cols: dict[str, Any] = {f: record.get(f) for f in INPUT_FIELDS if f not in NOT_SHIPMENT}
        stamp = _as_datetime(record["created_at"])
        cols["month"], cols["weekday"] = np.float64(stamp.month), np.float64(stamp.weekday())
        cols["year"] = np.float64(stamp.year)
        values = self._shipment_values(cols)
        return np.array([[values[name] for name in self._layout.shipment]], dtype=np.float64)

    def _shipment_values(self, cols: dict[str, Any]) -> dict[str, Any]:
        """Shipment features by name from columns that are all (n,) arrays or all scalars.

        Only operations that mean the same for a numpy array and a numpy scalar are used
        (``np.float64``, ufuncs, ``==``, ``*``), plus :func:`each` for dict lookups, so
        both shapes give bit-identical numbers.
        """
        v: dict[str, Any] = {}
        for f in MODEL_CATEGORICALS:
            if f != "channel_id":
                v[f] = each(coder(self._codes[f]), cols[f], self._absent_codes[f])
        value = np.float64(cols["declared_value"]) * np.float64(
            each(self.usd_rates_.get, cols["currency"], np.nan)
        )
        weight = number(cols["weight_kg"])
        dims = [number(cols[k]) for k in ("length_cm", "width_cm", "height_cm")]
        items = number(cols["item_count"])
        log_value = np.log1p(value)
        volumetric = dims[0] * dims[1] * dims[2] / 5000.0
        v["log_value_usd"] = log_value
        with np.errstate(over="ignore"):  # a contract-valid 1e-320 kg: inf, not a log warning
            v["log_value_per_kg"] = np.log1p(value / weight)
        v["log_value_per_item"] = np.log1p(value / items)
        v["weight_kg"] = weight
        v["volumetric_kg"] = volumetric
        v["longest_cm"] = np.maximum(np.maximum(dims[0], dims[1]), dims[2])
        v["item_count"] = items
        v["month"] = cols["month"]
        v["weekday"] = cols["weekday"]
        v["peak_season"] = each(lambda m, d: PEAK_MONTHS.get(int(m), d), cols["month"], 0.0)
        v["months_since_2000"] = _months_since_epoch(cols["year"], cols["month"])
        for src, dst in zip(
            BOOL_FIELDS,
            ("tax_id_present", "fragile", "valuable_wording", "remote_area"),
            strict=True,
        ):
            v[dst] = number(cols[src])
        orders = number(cols["buyer_prior_orders"])
        refusals = number(cols["buyer_prior_refusals"])
        v["buyer_prior_orders"] = orders
        v["buyer_prior_refusals"] = refusals
        v["address_risk"] = np.float64(  # absent: NaN; a value never seen: unverified
            each(address_risk, cols["address_quality"], ADDRESS_RISK["unverified"])
        )

        dest = each(self._dest_rows.get, cols["destination_country"], self.unknown_destination_)
        dest = np.array(dest, dtype=np.float64)  # (D,) for a scalar row
        if isinstance(cols["destination_country"], np.ndarray):
            dest = dest.reshape(-1, len(DESTINATION_ATTRS))  # (n, D), also when n == 0
        d = {a: dest[..., i] for i, a in enumerate(DESTINATION_ATTRS)}
        for a in DESTINATION_ATTRS:
            v[f"dest_{a}"] = d[a]

        goods = cols["goods_category"]
        is_cod = isin(cols["payment_method"], ("cod",))
        is_ddu = isin(cols["duties_terms"], ("DDU",))
        customs = d["customs_tier"]
        valuable = isin(goods, VALUABLE_GOODS)
        v["cod_x_risk_tier"] = is_cod * d["risk_tier"]
        v["soft_pack_valuable"] = isin(cols["packaging"], SOFT_PACKAGING) * valuable
        v["sensitive_x_customs"] = isin(goods, SENSITIVE_GOODS) * customs
        v["ddu_x_customs"] = is_ddu * customs
        with np.errstate(over="ignore"):  # extreme contract-valid sizes: inf, not a warning
            for name, formula in DERIVED_FEATURES.items():
                v[name] = formula(v)
        return v

    # -- plain-data persistence -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted state as JSON-ready data (what the model stores)."""
        return {
            "format_version": FORMAT_VERSION,
            "categories": self.categories_,
            "destinations": self.destinations_,
            "unknown_destination": self.unknown_destination_,
            "channels": self.channels_,
            "usd_rates_as_of": self.usd_rates_as_of_,
            "feature_names": self.feature_names_,
            "categorical_features": self.categorical_features_,
            "reference": self.reference_,
            "fields": self.fields_,
            "extras": self.extras_,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ShipmentFeaturizer:
        """Rebuild a fitted pipeline from :meth:`to_dict` output (rates: today's catalog)."""
        if state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported pipeline format {state.get('format_version')!r}")
        names = [str(f) for f in state["feature_names"]]
        missing = missing_features(names)
        if missing:
            raise MissingFeaturesError(missing)
        width = len(names)
        categorical = [int(j) for j in state["categorical_features"]]
        if len(state["reference"]) != width or not all(0 <= j < width for j in categorical):
            raise ValueError("stored pipeline is inconsistent with its own feature list")
        self = cls()
        self.categories_ = {k: list(v) for k, v in state["categories"].items()}
        self.destinations_ = {k: list(v) for k, v in state["destinations"].items()}
        self.unknown_destination_ = list(state["unknown_destination"])
        self.channels_ = dict(state["channels"])
        catalog = load_catalog()
        self._live = live_attributes(catalog, self.channels_, self.destinations_)
        self._use_catalog_rates(catalog)
        self.feature_names_ = names
        self.categorical_features_ = categorical
        self.reference_ = [float(v) for v in state["reference"]]
        # Models stored before fields were recorded were trained on every input field.
        self.fields_ = [str(f) for f in state.get("fields", MODEL_FIELDS)]
        self.extras_ = {str(k): dict(v) for k, v in state.get("extras", {}).items()}
        self._build_lookups()
        return self

    def _use_catalog_rates(self, catalog: Catalog) -> None:
        """Declared values convert with the catalog's dated rates, as the decision costs do:
        one source of exchange rates, never a copy frozen into the model."""
        self.usd_rates_ = dict(catalog.usd_per_unit)
        self.usd_rates_as_of_ = catalog.rates_as_of

    def destination_attribute(self, name: str, countries: Sequence[str]) -> np.ndarray:
        """A destination attribute (e.g. ``risk_tier``) of each country from the snapshot
        this pipeline was fitted with (unknown countries: the unknown destination's)."""
        j = DESTINATION_ATTRS.index(name)
        rows, unknown = self.destinations_, self.unknown_destination_
        return np.array([rows.get(c, unknown)[j] for c in countries], dtype=np.float64)

    def is_known(self, field: str, value: str) -> bool:
        """Whether a categorical value was seen in training (used for warnings)."""
        return value in self._codes.get(field, {})


def _typical_row(X: np.ndarray, categorical: Sequence[int]) -> list[float]:
    """A typical shipment in feature space: the median, or the commonest code for
    categorical columns; reasons compare a prediction with this reference."""
    with warnings.catch_warnings():  # a field the history lacks: an all-NaN column
        warnings.simplefilter("ignore", RuntimeWarning)
        reference = np.nanmedian(X, axis=0)
    for j in categorical:
        codes, counts = np.unique(X[:, j], return_counts=True)
        reference[j] = codes[np.argmax(counts)]
    return [float(v) for v in reference]


def _frame_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame of contract rows -> the column dict :meth:`ShipmentFeaturizer._encode` reads."""
    absent = np.full(len(frame), np.nan)  # an optional column the frame lacks: unknown
    cols: dict[str, Any] = {
        f: frame[f].to_numpy() if f in frame else absent
        for f in INPUT_FIELDS
        if f not in NOT_SHIPMENT
    }
    created = pd.to_datetime(frame["created_at"], utc=True)
    cols["month"] = created.dt.month.to_numpy(dtype=np.float64)
    cols["weekday"] = created.dt.dayofweek.to_numpy(dtype=np.float64)
    cols["year"] = created.dt.year.to_numpy(dtype=np.float64)
    return cols


def _record_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Contract dicts -> the column dict :meth:`ShipmentFeaturizer._encode` reads."""
    cols: dict[str, Any] = {
        f: np.array([r.get(f) for r in records], dtype=object if f in STRING_FIELDS else None)
        for f in INPUT_FIELDS
        if f not in NOT_SHIPMENT
    }
    stamps = [_as_datetime(r["created_at"]) for r in records]
    cols["month"] = np.array([t.month for t in stamps], dtype=np.float64)
    cols["weekday"] = np.array([t.weekday() for t in stamps], dtype=np.float64)
    cols["year"] = np.array([t.year for t in stamps], dtype=np.float64)
    return cols


def _months_since_epoch(year: Any, month: Any) -> Any:
    """Whole calendar months since January ``EPOCH_YEAR`` (exact in float64, any shape).

    Why: the world drifts (e.g. loss odds fall a few % a year). Without time, a head
    averages over the training period and the calibration slice (newer) pulls every
    prediction to its level, so older rows are under-predicted. The calibrator fits the
    trend on this column (``models.risk_model.PlattCalibrator``); trees may split on it like
    any numeric feature, and a row newer than the training data lands in the newest period.
    """
    return (year - EPOCH_YEAR) * 12.0 + (month - 1.0)


def _as_datetime(value: Any) -> Any:
    """UTC datetime from a datetime (pydantic) or an ISO string (JSON); naive means UTC."""
    if not hasattr(value, "month"):
        value = pd.Timestamp(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
