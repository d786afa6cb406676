"""The simulated world's physics: the true loss and rejection probability of a shipment.

A function of the contract fields and the catalogs only (:func:`true_probabilities`), so it
prices counterfactual channels too (:func:`counterfactual_probabilities`): the ground truth the
models are measured against and the oracle the decisions are compared with. The simulator
(:mod:`shiprisk.data.simulator`) draws shipments and then their outcomes from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from shiprisk.data.catalogs import CHANNEL_TYPES, TRACKING_NAMES, Catalog, bundled_catalog
from shiprisk.data.contract import (
    ADDRESS_QUALITIES,
    CURRENCIES,
    DUTIES_TERMS,
    GOODS_CATEGORIES,
    PACKAGING_TYPES,
    PAYMENT_METHODS,
)
from shiprisk.data.outcomes import EVENTS
from shiprisk.data.world import WorldParams, default_world

YEAR_S = 365.25 * 86_400.0


# -- numeric view of contract fields -------------------------------------------------------


@dataclass(frozen=True)
class Shipments:
    """Contract fields as codes and floats (what the probability model is a function of)."""

    country: np.ndarray  # row in the catalog destination tables (unknown -> last row)
    goods: np.ndarray
    packaging: np.ndarray
    address: np.ndarray
    is_cod: np.ndarray
    is_ddu: np.ndarray
    tax_id: np.ndarray
    orders: np.ndarray
    refusals: np.ndarray
    value_usd: np.ndarray
    weight_kg: np.ndarray
    dims_cm: tuple[np.ndarray, np.ndarray, np.ndarray]
    valuable_wording: np.ndarray
    remote: np.ndarray
    month: np.ndarray  # 0 = January
    years: np.ndarray  # years since world.drift_origin


def codes(values: pd.Series | np.ndarray, categories: tuple[str, ...], name: str) -> np.ndarray:
    codes = pd.Categorical(np.asarray(values, dtype=object), categories=categories).codes
    if (codes < 0).any():
        bad = pd.unique(np.asarray(values, dtype=object)[codes < 0])[:5]
        raise ValueError(f"{name}: values outside the contract: {list(bad)}")
    return codes.astype(np.int64)


def country_codes(values: pd.Series | np.ndarray, catalog: Catalog) -> np.ndarray:
    codes = pd.Categorical(np.asarray(values, dtype=object), categories=catalog.countries).codes
    return np.where(codes < 0, len(catalog.countries), codes).astype(np.int64)


def _years_since(created_at: pd.Series, origin: date) -> tuple[np.ndarray, np.ndarray]:
    ts = pd.to_datetime(created_at, utc=True)
    origin_ts = pd.Timestamp(origin, tz="UTC")
    years = (ts - origin_ts).dt.total_seconds().to_numpy(dtype=float) / YEAR_S
    return ts.dt.month.to_numpy(dtype=np.int64) - 1, years


def encode(frame: pd.DataFrame, world: WorldParams, catalog: Catalog) -> Shipments:
    """Read the contract fields of a frame into a :class:`Shipments`."""
    rates = np.array([catalog.currencies[c].usd_per_unit for c in CURRENCIES])
    currency = codes(frame["currency"], CURRENCIES, "currency")
    month, years = _years_since(frame["created_at"], world.drift_origin)
    return Shipments(
        country=country_codes(frame["destination_country"], catalog),
        goods=codes(frame["goods_category"], GOODS_CATEGORIES, "goods_category"),
        packaging=codes(frame["packaging"], PACKAGING_TYPES, "packaging"),
        address=codes(frame["address_quality"], ADDRESS_QUALITIES, "address_quality"),
        is_cod=codes(frame["payment_method"], PAYMENT_METHODS, "payment_method") == 1,
        is_ddu=codes(frame["duties_terms"], DUTIES_TERMS, "duties_terms") == 1,
        tax_id=frame["recipient_tax_id_present"].to_numpy(dtype=bool),
        orders=frame["buyer_prior_orders"].to_numpy(dtype=float),
        refusals=frame["buyer_prior_refusals"].to_numpy(dtype=float),
        value_usd=frame["declared_value"].to_numpy(dtype=float) * rates[currency],
        weight_kg=frame["weight_kg"].to_numpy(dtype=float),
        dims_cm=tuple(
            frame[c].to_numpy(dtype=float) for c in ("length_cm", "width_cm", "height_cm")
        ),
        valuable_wording=frame["valuable_wording"].to_numpy(dtype=bool),
        remote=frame["remote_area"].to_numpy(dtype=bool),
        month=month,
        years=years,
    )


# -- the true probability model ------------------------------------------------------------


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def smooth_cap(x: np.ndarray, cap: float) -> np.ndarray:
    """~x for small x, never above cap (keeps multiplicative effects smooth)."""
    return x / (1.0 + (x / cap) ** 4) ** 0.25


def lookup(mapping: dict, keys: tuple, default: float = 1.0) -> np.ndarray:
    return np.array([float(mapping.get(k, default)) for k in keys])


def transit_bounds(s: Shipments, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """(n, C) min and max door-to-door days: catalog range by zone + customs hold."""
    zone = catalog.zone_of(s.country)
    tmin, tmax = catalog.transit_days(zone)
    hold = catalog.destination_column("customs_hold_days")[s.country][:, None]
    return tmin + hold, tmax + hold


def _slow_multiplier(lo: np.ndarray, hi: np.ndarray, world: WorldParams) -> np.ndarray:
    """Mean slow-delivery multiplier for transit uniform on the integers lo..hi."""
    b1, b2 = world.reject_slow_days
    m1, m2, m3 = world.reject_slow_mult
    count = hi - lo + 1.0
    n1 = np.clip(b1 - lo + 1.0, 0.0, count)
    n12 = np.clip(b2 - lo + 1.0, 0.0, count)
    return (n1 * m1 + (n12 - n1) * m2 + (count - n12) * m3) / count


def probabilities(
    s: Shipments, chan: np.ndarray, world: WorldParams, catalog: Catalog
) -> dict[str, np.ndarray]:
    """True probability per event of shape ``chan.shape`` = (n, k) for channel indices
    ``chan``, for the events the world has physics for (``PHYSICS``), in spec order."""
    p_loss, p_reject = _loss_and_rejection(s, chan, world, catalog)
    found = {"loss": p_loss, "reject": p_reject}
    missing = [o.key for o in EVENTS if o.key not in found]
    if missing:
        raise ValueError(
            f"the simulated world has no physics for outcome(s) {', '.join(missing)}: "
            "draw them with add_event()"
        )
    return {o.key: found[o.key] for o in EVENTS}


def _loss_and_rejection(
    s: Shipments, chan: np.ndarray, world: WorldParams, catalog: Catalog
) -> tuple[np.ndarray, np.ndarray]:
    """The world's physics: p_loss, p_reject of shape ``chan.shape`` = (n, k)."""
    ids = catalog.channel_ids
    ch_type = catalog.channel_column("channel_type_code").astype(np.int64)
    type_names = tuple(CHANNEL_TYPES[t] for t in ch_type)
    tracking = catalog.channel_column("tracking_level").astype(np.int64)
    track_names = tuple(TRACKING_NAMES[t] for t in tracking)
    col = catalog.destination_column
    risk = col("risk_tier").astype(np.int64)[s.country]
    customs = col("customs_tier").astype(np.int64)[s.country]
    requires_tax = col("requires_tax_id")[s.country] > 0

    lo_all, hi_all = transit_bounds(s, catalog)
    lo = np.take_along_axis(lo_all, chan, axis=1)
    hi = np.take_along_axis(hi_all, chan, axis=1)
    mean_transit = (lo + hi) / 2.0

    # loss
    chan_base = lookup(world.loss_base_by_channel_type, type_names, np.nan) * lookup(
        world.loss_channel_factor, ids
    )
    weakness = lookup(world.tracking_weakness, track_names)
    wording = lookup(world.loss_valuable_wording_mult, track_names)
    valuable = np.isin(s.goods, [GOODS_CATEGORIES.index(g) for g in world.loss_valuable_goods])
    envelope = s.packaging == PACKAGING_TYPES.index("envelope")
    ship = (
        lookup(world.loss_tier_mult, (1, 2, 3))[risk - 1]
        * np.where(valuable, world.loss_valuable_goods_mult, 1.0)
        * np.where(valuable & envelope, world.loss_envelope_valuable_mult, 1.0)
        * np.where(s.remote, world.loss_remote_mult, 1.0)
        * np.asarray(world.loss_month_mult)[s.month]
        * world.loss_drift_per_year**s.years
    )
    theft = np.log1p(s.value_usd / world.loss_theft_ref_usd)
    transit_ref = lookup(world.loss_transit_ref_days, type_names, np.nan)
    address = np.log(lookup(world.loss_address_mult, ADDRESS_QUALITIES))[s.address]
    lam = (
        chan_base[chan]
        * np.exp(address[:, None] * (1.0 + world.loss_address_tracking_gain * weakness[chan]))
        * ship[:, None]
        * np.exp(world.loss_theft_slope * weakness[chan] * theft[:, None])
        * np.where(s.valuable_wording[:, None], wording[chan], 1.0)
        * (mean_transit / transit_ref[chan]) ** world.loss_transit_elasticity
    )
    p_loss = smooth_cap(lam, world.loss_cap)

    # rejection given not lost: buyer refusal or customs return (competing causes)
    tiers = (1, 2, 3)
    base = np.array([world.reject_base[t] for t in tiers])[risk - 1, s.is_cod.astype(int)]
    good_orders = np.maximum(s.orders - s.refusals, 0.0)
    drift = world.reject_drift_per_year**s.years
    q_buyer = (
        base
        * np.exp(world.reject_refusal_rate_weight * s.refusals / (s.orders + 1.0))
        * (1.0 + good_orders) ** -world.reject_loyalty_elasticity
        * lookup(world.reject_address_mult, ADDRESS_QUALITIES)[s.address]
        * np.where(s.remote, world.reject_remote_mult, 1.0)
        * np.asarray(world.reject_month_mult)[s.month]
        * drift
    )
    sensitive = np.isin(s.goods, [GOODS_CATEGORIES.index(g) for g in world.customs_sensitive_goods])
    typical_vpk = np.array(
        [world.goods_value_usd[g][0] / world.goods_weight_kg[g][0] for g in GOODS_CATEGORIES]
    )
    width = world.customs_undervalue_width
    undervalue = np.log(typical_vpk[s.goods] * s.weight_kg / s.value_usd)
    undervalue = width * _softplus((undervalue - world.customs_undervalue_shift) / width)
    ddu_slope = lookup(world.customs_ddu_slope, tiers)[customs - 1]
    q_customs = smooth_cap(
        lookup(world.customs_reject_base, tiers)[customs - 1]
        * np.where(sensitive, lookup(world.customs_sensitive_mult, tiers)[customs - 1], 1.0)
        * np.where(
            s.is_ddu, np.exp(ddu_slope * np.log1p(s.value_usd / world.customs_ddu_ref_usd)), 1.0
        )
        * np.where(requires_tax & ~s.tax_id, world.customs_missing_tax_id_mult, 1.0)
        * np.exp(lookup(world.customs_undervalue_slope, tiers)[customs - 1] * undervalue)
        * drift,
        world.reject_cap,
    )
    chan_reject = lookup(world.reject_channel_type_mult, type_names) * lookup(
        world.reject_channel_factor, ids
    )
    q_buyer = smooth_cap(
        q_buyer[:, None] * chan_reject[chan] * _slow_multiplier(lo, hi, world), world.reject_cap
    )
    q = 1.0 - (1.0 - q_buyer) * (1.0 - q_customs[:, None])
    return p_loss, (1.0 - p_loss) * q


def true_probabilities(
    frame: pd.DataFrame,
    channel_ids: np.ndarray | list[str] | None = None,
    world: WorldParams | None = None,
    catalog: Catalog | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """True probability of each event (spec order) of each row on ``channel_ids`` (default:
    its own channel).

    A function of the contract fields and catalogs only, so it scores counterfactual
    channels too. NaN where the channel does not serve the destination's zone.
    """
    world = world or default_world()
    catalog = catalog or bundled_catalog()
    ids = frame["channel_id"] if channel_ids is None else channel_ids
    chan = codes(ids, catalog.channel_ids, "channel_id")
    probs = probabilities(encode(frame, world, catalog), chan[:, None], world, catalog)
    return tuple(p[:, 0] for p in probs.values())


def eligible_channels(s: Shipments, catalog: Catalog) -> np.ndarray:
    return catalog.eligible(
        weight_kg=s.weight_kg,
        dims_cm=s.dims_cm,
        country_code=s.country,
        goods_code=s.goods,
        is_cod=s.is_cod,
        value_usd=s.value_usd,
    )


def counterfactual_probabilities(
    frame: pd.DataFrame,
    world: WorldParams | None = None,
    catalog: Catalog | None = None,
) -> dict[str, np.ndarray]:
    """Eligibility and true probabilities of every row on every catalog channel.

    Keys ``eligible`` (n, C) bool and ``p_<event>`` per event (n, C) in
    ``catalog.channel_ids`` order, NaN where the channel is not eligible.
    """
    world = world or default_world()
    catalog = catalog or bundled_catalog()
    s = encode(frame, world, catalog)
    n, c = len(frame), len(catalog.channel_ids)
    chan = np.broadcast_to(np.arange(c), (n, c))
    probs = probabilities(s, chan, world, catalog)
    eligible = eligible_channels(s, catalog)
    return {
        "eligible": eligible,
        **{f"p_{key}": np.where(eligible, p, np.nan) for key, p in probs.items()},
    }
