"""Decision policy: expected cost per channel, insure or not, recommended channel.

A pure module (numpy and pydantic only, no model, no BentoML) shared by online scoring (one
shipment x its candidate channels) and batch scoring (n shipments x K channels). Everything is
laid out as ``(n, K)`` arrays so both paths run the same vectorised code; the cost model and
its defaults are written up in ``docs/policy.md``.

Two steps:

* :func:`build_candidates` turns shipments and the catalog into a :class:`CandidateTable`
  (eligibility, price, insurance terms, transit, tracking) - no probabilities needed;
* :func:`decide` adds ``p_loss`` and ``p_reject`` and returns a :class:`Decision`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from shiprisk.data.catalogs import (
    TRACKING_LEVELS,
    UNKNOWN_DESTINATION,
    Catalog,
    longest_and_girth,
)
from shiprisk.data.contract import CHANNEL_PATTERN, GOODS_CATEGORIES

GoodsCategory = Literal[GOODS_CATEGORIES]  # type: ignore[valid-type]
Carrier = Annotated[str, StringConstraints(pattern=CHANNEL_PATTERN, max_length=40)]
TrackingLevel = Literal[tuple(TRACKING_LEVELS)]  # type: ignore[valid-type]


class SellerCosts(BaseModel):
    """What a lost or rejected parcel costs this seller; defaults are documented guesses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    goods_cost_ratio: float = Field(
        default=0.4,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Seller's cost of the goods as a share of the declared value.",
    )
    reship_policy: Literal["refund", "reship"] = Field(
        default="refund",
        description="On loss or rejection: refund the buyer (lose the sale) or send again.",
    )
    unrecoverable_share: float = Field(
        default=0.3,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Share of the goods' cost not recovered when a rejected parcel comes "
        "back (damaged, opened, abandoned or destroyed at the destination).",
    )
    risk_aversion: float = Field(
        default=1.0,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="Weight on the expected insurance payout in the insure decision: 1 is "
        "risk-neutral, above 1 buys insurance that costs a little more than it pays back.",
    )
    delay_cost_per_day_usd: float = Field(
        default=0.0,
        ge=0,
        le=1000,
        allow_inf_nan=False,
        description="Cost of each day of expected transit (buyer goodwill, reviews), USD.",
    )
    claim_paid_probability: float = Field(
        default=0.9,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Probability an insurance claim for a lost parcel is paid.",
    )
    liability_paid_probability: float = Field(
        default=0.8,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Probability the carrier pays its own liability for a lost parcel.",
    )
    uninsurable_goods: tuple[GoodsCategory, ...] = Field(
        default=("documents",),
        max_length=len(GOODS_CATEGORIES),
        description="Goods categories no insurer covers (documents have no insurable value).",
    )


class Constraints(BaseModel):
    """The seller's hard limits on the recommendation (unset = no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    require_tracking: TrackingLevel = Field(
        default="none",
        description="Minimum tracking: 'partial' = any tracking number (postal registered, "
        "scans may stop at the destination), 'full' = end-to-end tracking.",
    )
    max_transit_days: float | None = Field(
        default=None,
        gt=0,
        le=365,
        allow_inf_nan=False,
        description="Upper limit on the expected (mean) transit days, customs hold included.",
    )
    allowed_carriers: tuple[Carrier, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="Carriers the seller accepts (catalog carrier ids, e.g. 'dhl').",
    )
    max_price_usd: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        allow_inf_nan=False,
        description="Upper limit on the shipping price (insurance premium excluded), USD.",
    )


def resolve_costs(
    base: SellerCosts, overrides: Mapping[str, Any] | BaseModel | None
) -> SellerCosts:
    """``base`` with the fields a request or batch run sets explicitly (validated again)."""
    if overrides is None:
        return base
    if isinstance(overrides, BaseModel):
        overrides = {k: getattr(overrides, k) for k in overrides.model_fields_set}
    if not overrides:
        return base
    return SellerCosts.model_validate({**base.model_dump(), **overrides})


# -- candidates ------------------------------------------------------------------------------


@dataclass
class CandidateTable:
    """Shipments x candidate channels, shape (n, K); per-shipment arrays have shape (n,).

    ``channel_index`` is -1 for a channel the catalog does not know (never eligible, NaN
    numbers). ``liability_usd`` is the carrier's nominal liability for this parcel (flat + per
    kg, not yet capped by the value); ``transit_days`` is the mean of the zone's range plus the
    destination's customs hold.
    """

    channel_index: np.ndarray
    eligible: np.ndarray
    price_usd: np.ndarray
    premium_usd: np.ndarray
    liability_usd: np.ndarray
    max_cover_usd: np.ndarray
    insurable: np.ndarray
    transit_days: np.ndarray
    tracking_level: np.ndarray
    return_cost_ratio: np.ndarray
    value_usd: np.ndarray
    weight_kg: np.ndarray
    transit_days_min: np.ndarray
    transit_days_max: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.channel_index.shape  # type: ignore[return-value]

    def take(self, rows: Any = slice(None), cols: Any = slice(None)) -> CandidateTable:
        """A sub-table: some shipments and/or some candidate columns (keeps 2-D shapes)."""
        rows = _keep_dims(rows)
        cols = _keep_dims(cols)
        every_row = isinstance(rows, slice) and rows == slice(None)
        out = {}
        for name in _TABLE_FIELDS:
            a = getattr(self, name)
            if a.ndim == 1:
                out[name] = a if every_row else a[rows]
            else:
                out[name] = a[:, cols] if every_row else a[rows][:, cols]
        return CandidateTable(**out)


_TABLE_FIELDS = tuple(f.name for f in fields(CandidateTable))


def _rows_of(a: np.ndarray, n: int) -> np.ndarray:
    """(C,) channel attribute as (n, C) without a copy (a plain view for one shipment)."""
    return a[None, :] if n == 1 else np.broadcast_to(a, (n, len(a)))


def _keep_dims(index: Any) -> Any:
    return [index] if isinstance(index, int | np.integer) else index


def build_candidates(
    catalog: Catalog,
    *,
    weight_kg: np.ndarray,
    dims_cm: tuple[np.ndarray, np.ndarray, np.ndarray],
    country_code: np.ndarray,
    goods_code: np.ndarray,
    is_cod: np.ndarray,
    value_usd: np.ndarray,
    channel_index: np.ndarray | None = None,
    quoted_price: np.ndarray | None = None,
    quoted_premium: np.ndarray | None = None,
    costs: SellerCosts,
) -> CandidateTable:
    """Price, insurance terms and eligibility of each (shipment, candidate channel).

    ``country_code`` are destination rows (``catalog.country_codes``), ``goods_code`` indices
    into ``GOODS_CATEGORIES``. ``channel_index`` (n, K) selects candidates (-1 = unknown
    channel); None means every catalog channel. Quotes are (n, K) with NaN where none: a quoted
    price replaces the list price; a quoted premium replaces the catalog premium and makes
    insurance available on that channel (cover up to the value if the channel has no own
    insurance), but never overrides a destination or goods exclusion.
    """
    weight = np.atleast_1d(np.asarray(weight_kg, dtype=float))
    value = np.atleast_1d(np.asarray(value_usd, dtype=float))
    country = np.atleast_1d(np.asarray(country_code, dtype=np.int64))
    goods = np.atleast_1d(np.asarray(goods_code, dtype=np.int64))
    dims = tuple(np.atleast_1d(np.asarray(d, dtype=float)) for d in dims_cm)
    col = catalog.channel_column
    n, n_channels = len(weight), len(catalog.channel_ids)

    # Shipment x catalog-channel arrays (n, C) ...
    zone = catalog.zone_of(country)
    tmin, tmax = catalog.transit_days(zone)
    hold = catalog.destination_column("customs_hold_days")[country][:, None]
    per_shipment = {
        "eligible": catalog.eligible(
            weight_kg=weight,
            dims_cm=dims,
            country_code=country,
            goods_code=goods,
            is_cod=np.atleast_1d(np.asarray(is_cod, dtype=bool)),
            value_usd=value,
        ),
        "price_usd": catalog.price_usd(weight, dims, zone),
        "liability_usd": col("liability_usd") + col("liability_per_kg_usd") * weight[:, None],
        "transit_days_min": tmin + hold,
        "transit_days_max": tmax + hold,
    }
    # ... and channel attributes (C,).
    per_channel = {
        "available": col("available") > 0,
        "rate": col("premium_rate"),
        "min_premium": col("premium_min_usd"),
        "max_cover_usd": col("max_cover_usd"),
        "tracking_level": catalog.tracking_codes,
        "return_cost_ratio": col("return_cost_ratio"),
    }
    if channel_index is None:
        index = _rows_of(np.arange(n_channels), n)
        v = {**per_shipment, **{k: _rows_of(a, n) for k, a in per_channel.items()}}
    else:
        index = np.asarray(channel_index, dtype=np.int64).reshape(n, -1)
        known = (index >= 0) & (index < n_channels)
        safe = np.where(known, index, 0)
        rows = np.arange(n)[:, None]
        v = {k: a[rows, safe] for k, a in per_shipment.items()}
        v.update({k: a[safe] for k, a in per_channel.items()})
        if not known.all():
            fill = {"eligible": False, "available": False, "tracking_level": 0}
            v = {k: np.where(known, a, fill.get(k, np.nan)).astype(a.dtype) for k, a in v.items()}
            index = np.where(known, index, -1)

    price = v["price_usd"]
    if quoted_price is not None:
        quoted_price = np.asarray(quoted_price, dtype=float).reshape(index.shape)
        price = np.where(np.isnan(quoted_price), price, quoted_price)
    excluded_dest = catalog.destination_column("insurance_excluded")[country] > 0
    uninsurable = _uninsurable_mask(costs.uninsurable_goods)
    insurable_here = ~(excluded_dest | uninsurable[goods])[:, None]
    available = v["available"]
    max_cover = v["max_cover_usd"]
    # Premium on the declared value, capped at the cover limit, never below the minimum.
    premium = np.maximum(v["rate"] * np.minimum(value[:, None], max_cover), v["min_premium"])
    if quoted_premium is not None:
        quoted_premium = np.asarray(quoted_premium, dtype=float).reshape(index.shape)
        quoted = ~np.isnan(quoted_premium) & (index >= 0)
        premium = np.where(quoted, quoted_premium, premium)
        max_cover = np.where(quoted & ~available, np.inf, max_cover)
        available = available | quoted
    insurable = available & insurable_here
    return CandidateTable(
        channel_index=index,
        eligible=v["eligible"],
        price_usd=price,
        premium_usd=np.where(insurable, premium, np.nan),
        liability_usd=v["liability_usd"],
        max_cover_usd=np.where(insurable, max_cover, 0.0),
        insurable=insurable,
        transit_days=(v["transit_days_min"] + v["transit_days_max"]) / 2,
        tracking_level=v["tracking_level"],
        return_cost_ratio=v["return_cost_ratio"],
        value_usd=value,
        weight_kg=weight,
        transit_days_min=v["transit_days_min"],
        transit_days_max=v["transit_days_max"],
    )


@lru_cache(maxsize=64)
def _uninsurable_mask(goods: tuple[str, ...]) -> np.ndarray:
    """Bool per ``GOODS_CATEGORIES`` entry: no insurer covers it (read-only, cached)."""
    mask = np.zeros(len(GOODS_CATEGORIES), dtype=bool)
    mask[[GOODS_CATEGORIES.index(g) for g in goods]] = True
    mask.flags.writeable = False
    return mask


def shipment_arrays(catalog: Catalog, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The keyword arrays :func:`build_candidates` needs, from contract-shaped records."""
    rate = catalog.usd_rate([r["currency"] for r in records])
    return {
        "weight_kg": np.array([r["weight_kg"] for r in records], dtype=float),
        "dims_cm": tuple(
            np.array([r[f] for r in records], dtype=float)
            for f in ("length_cm", "width_cm", "height_cm")
        ),
        "country_code": catalog.country_codes([r["destination_country"] for r in records]),
        "goods_code": np.array([GOODS_CATEGORIES.index(r["goods_category"]) for r in records]),
        "is_cod": np.array([r["payment_method"] == "cod" for r in records]),
        "value_usd": np.array([r["declared_value"] for r in records], dtype=float) * rate,
    }


def frame_arrays(catalog: Catalog, frame: Any) -> dict[str, Any]:
    """:func:`shipment_arrays` for the columns of a validated DataFrame (batch, evaluation)."""
    import pandas as pd  # the batch path's DataFrames only

    currency = frame["currency"].to_numpy(dtype=object)
    goods = pd.Categorical(frame["goods_category"], categories=GOODS_CATEGORIES).codes
    return {
        "weight_kg": frame["weight_kg"].to_numpy(dtype=float),
        "dims_cm": tuple(
            frame[f].to_numpy(dtype=float) for f in ("length_cm", "width_cm", "height_cm")
        ),
        "country_code": catalog.country_codes(frame["destination_country"].to_numpy(object)),
        "goods_code": goods.astype(np.int64),
        "is_cod": (frame["payment_method"] == "cod").to_numpy(dtype=bool),
        "value_usd": frame["declared_value"].to_numpy(dtype=float) * catalog.usd_rate(currency),
    }


def candidates_for_shipment(
    catalog: Catalog,
    record: Mapping[str, Any],
    costs: SellerCosts,
    candidates: Sequence[Mapping[str, Any] | BaseModel] | None = None,
) -> tuple[CandidateTable, list[str]]:
    """One shipment's candidates (n=1) and their ids: the listed channels, else the eligible.

    ``candidates`` are ``CandidateChannel``-shaped (``channel_id``, optional quotes). Listed
    channels stay in the table even when ineligible or unknown, so the caller can report why
    (:func:`ineligibility_reasons`); they are never recommended.
    """
    arrays = shipment_arrays(catalog, [record])
    if candidates is None:
        table = build_candidates(catalog, **arrays, costs=costs)
        keep = np.flatnonzero(table.eligible[0])
        return table.take(cols=keep), [catalog.channel_ids[i] for i in keep]
    listed = [c.model_dump() if isinstance(c, BaseModel) else dict(c) for c in candidates]
    ids = [c["channel_id"] for c in listed]
    index = np.array([[catalog.channel_index.get(i, -1) for i in ids]], dtype=np.int64)

    def quotes(key: str) -> np.ndarray:
        return np.array([[np.nan if c.get(key) is None else c[key] for c in listed]], dtype=float)

    table = build_candidates(
        catalog,
        **arrays,
        channel_index=index,
        quoted_price=quotes("quoted_price_usd"),
        quoted_premium=quotes("quoted_premium_usd"),
        costs=costs,
    )
    return table, ids


def candidate_carriers(catalog: Catalog, channel_index: np.ndarray) -> np.ndarray:
    """Carrier id of each candidate ('' for unknown channels), for ``decide(carriers=...)``."""
    names = np.array([c.carrier for c in catalog.channels] + [""], dtype=object)
    index = np.asarray(channel_index)
    if index.ndim == 2 and len(index) > 1 and (index == index[0]).all():
        index = index[:1]  # same candidates in every row: (1, K) broadcasts and is cheaper
    return names[np.where(index >= 0, index, len(names) - 1)]


def ineligibility_reasons(
    catalog: Catalog, record: Mapping[str, Any], channel_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Why each listed channel refuses this shipment (online only; eligible ones omitted).

    Mirrors the checks of ``Catalog.eligible`` one by one so each can be named; the tests
    check both agree on random shipments.
    """
    arrays = shipment_arrays(catalog, [record])
    weight = float(arrays["weight_kg"][0])
    value = float(arrays["value_usd"][0])
    longest, girth = (float(x[0]) for x in longest_and_girth(arrays["dims_cm"]))
    country = record["destination_country"]
    known = catalog.destination_by_country.get(country)
    zone = known.zone if known else UNKNOWN_DESTINATION["zone"]
    goods = record["goods_category"]
    out: dict[str, list[str]] = {}
    for cid in channel_ids:
        ch = catalog.channels[catalog.channel_index[cid]] if cid in catalog.channel_index else None
        if ch is None:
            out[cid] = ["unknown channel (not in the catalog)"]
            continue
        e = ch.eligibility
        listed = e.destinations == "all" or (known is not None and country in e.destinations)
        served = listed and country not in e.excluded_destinations and zone in ch.zones
        checks = (
            (weight > e.max_weight_kg, f"weight {weight:g} kg is above {e.max_weight_kg:g} kg"),
            (
                longest > e.max_length_cm,
                f"longest side {longest:g} cm is above {e.max_length_cm:g} cm",
            ),
            (girth > e.max_girth_cm, f"length + girth {girth:g} cm is above {e.max_girth_cm:g} cm"),
            (value > e.max_value_usd, f"value {value:.2f} USD is above {e.max_value_usd:g} USD"),
            (not served, f"does not deliver to {country}"),
            (goods in e.refused_goods, f"does not accept {goods}"),
            (record["payment_method"] == "cod" and not e.cod, "does not collect cash on delivery"),
        )
        reasons = [text for failed, text in checks if failed]
        if reasons:
            out[cid] = reasons
    return out


# -- decision --------------------------------------------------------------------------------

BLOCK_INELIGIBLE = 1
BLOCK_UNSCORED = 2
BLOCK_TRACKING = 4
BLOCK_TRANSIT = 8
BLOCK_CARRIER = 16
BLOCK_PRICE = 32
BLOCK_REASONS: dict[int, str] = {
    BLOCK_INELIGIBLE: "not eligible for this shipment",
    BLOCK_UNSCORED: "no risk estimate or price",
    BLOCK_TRACKING: "tracking below the required level",
    BLOCK_TRANSIT: "expected transit above the limit",
    BLOCK_CARRIER: "carrier not allowed",
    BLOCK_PRICE: "price above the limit",
}
NO_RECOMMENDATION_REASONS: tuple[str, ...] = (
    "",
    "no candidate channels",
    "no eligible channel for this shipment",
    "no eligible channel has a risk estimate and a price",
    "no eligible channel meets the seller's constraints",
)
"""Indexed by ``Decision.no_recommendation`` (0 = there is a recommendation)."""


@dataclass
class Decision:
    """Per candidate (n, K) and per shipment (n,) results of :func:`decide`.

    ``expected_cost`` uses the chosen ``insure``; ``expected_cost_insured`` is NaN where
    insurance is not available. ``allowed`` = eligible, scored and within the constraints.
    ``recommended``/``cheapest`` index into K (-1 = none); ``saving_vs_cheapest_usd`` =
    expected cost of the cheapest-by-price eligible channel minus that of the recommendation
    (NaN if either is missing; negative when the seller's constraints cost money).
    """

    insure: np.ndarray
    expected_cost: np.ndarray
    expected_cost_uninsured: np.ndarray
    expected_cost_insured: np.ndarray
    allowed: np.ndarray
    recommended: np.ndarray
    cheapest: np.ndarray
    saving_vs_cheapest_usd: np.ndarray
    no_recommendation: np.ndarray
    """(n,) int8 index into ``NO_RECOMMENDATION_REASONS`` (0 = there is a recommendation)."""
    ineligible: np.ndarray = field(repr=False)
    unscored: np.ndarray = field(repr=False)
    constraint_passes: list[tuple[int, np.ndarray]] = field(default_factory=list, repr=False)

    @property
    def blocked(self) -> np.ndarray:
        """(n, K) uint8 bit mask of ``BLOCK_*`` reasons (0 = allowed); built on demand."""
        out = self.ineligible * np.uint8(BLOCK_INELIGIBLE)
        out |= self.unscored * np.uint8(BLOCK_UNSCORED)
        for bit, ok in self.constraint_passes:
            out |= ~ok * np.uint8(bit)
        return out

    @property
    def reasons(self) -> np.ndarray:
        """(n,) text of why there is no recommendation ('' where there is one)."""
        return np.asarray(NO_RECOMMENDATION_REASONS, dtype=object)[self.no_recommendation]


def blocked_reasons(mask: int) -> list[str]:
    """Plain-words reasons behind one ``Decision.blocked`` value."""
    if not mask:
        return []
    return [text for bit, text in BLOCK_REASONS.items() if mask & bit]


def decide(
    cands: CandidateTable,
    p_loss: np.ndarray,
    p_reject: np.ndarray,
    costs: SellerCosts,
    constraints: Constraints | None = None,
    carriers: np.ndarray | None = None,
) -> Decision:
    """Expected cost of each candidate, insure or not, and the recommended channel.

    Expected cost (docs/policy.md): price + delay + p_loss x net loss + p_reject x rejection
    cost, plus (if insured) premium - p_loss x expected payout. Insurance is bought when
    premium < risk_aversion x p_loss x expected payout - a test that ignores p_reject, since
    insurance never pays for a rejected parcel. ``carriers`` (broadcastable to (n, K), see
    :func:`candidate_carriers`) is needed only for ``allowed_carriers``. Written for small
    arrays too (one shipment online): same-shape operations, few temporaries.
    """
    price = cands.price_usd
    n, k = price.shape
    value = cands.value_usd.repeat(k).reshape(n, k)
    g = costs.goods_cost_ratio
    # Carrier liability capped at the value; insurance tops up above it, to the cover limit.
    liability = np.minimum(cands.liability_usd, value)
    insured_amount = np.minimum(value - liability, cands.max_cover_usd)
    if costs.reship_policy == "refund":  # lose the sale; a rejected parcel's goods come back
        loss = value - _f(costs.liability_paid_probability) * liability
        reject = cands.return_cost_ratio * price
        reject += _f((1.0 - g) + costs.unrecoverable_share * g) * value
    else:  # send a new unit (or the returned one) again on the same channel
        loss = _f(g) * value + price - _f(costs.liability_paid_probability) * liability
        reject = (cands.return_cost_ratio + _ONE) * price
        reject += _f(costs.unrecoverable_share * g) * value
    uninsured = p_loss * loss
    uninsured += price
    uninsured += p_reject * reject
    if costs.delay_cost_per_day_usd:
        uninsured += _f(costs.delay_cost_per_day_usd) * cands.transit_days
    expected_payout = p_loss * insured_amount
    expected_payout *= _f(costs.claim_paid_probability)
    premium = cands.premium_usd  # NaN where not insurable: the comparison is then False
    insure = premium < _f(costs.risk_aversion) * expected_payout
    insured = premium - expected_payout
    insured += uninsured
    expected = np.where(insure, insured, uninsured)

    ineligible = ~cands.eligible
    unscored = np.isnan(expected)
    usable = ~(ineligible | unscored)
    passes = [] if constraints is None else _constraint_passes(cands, constraints, carriers)
    allowed = usable
    for _, ok in passes:
        allowed = allowed & ok
    if k == 0:
        none = np.full(n, -1, dtype=np.int64)
        recommended, cheapest = none, none.copy()
        saving, no_rec = np.full(n, np.nan), np.ones(n, dtype=np.int8)
    else:
        offsets = np.arange(0, n * k, k)
        masked = np.where(allowed, expected, _INF)
        recommended = masked.argmin(axis=1)
        best = masked.take(recommended + offsets)
        has_rec = best < _INF
        masked = np.where(usable, price, _INF)
        cheapest = masked.argmin(axis=1)
        at_cheapest = cheapest + offsets
        has_cheap = usable.take(at_cheapest)
        saving = expected.take(at_cheapest)
        saving -= best
        if np.count_nonzero(has_rec) == n:
            no_rec = np.zeros(n, dtype=np.int8)
        else:
            eligible_any = cands.eligible.any(axis=1)
            no_rec = np.select([has_rec, ~eligible_any, ~has_cheap], [0, 2, 3], 4).astype(np.int8)
            recommended[~has_rec] = -1
            saving[~has_rec] = np.nan
        if np.count_nonzero(has_cheap) != n:
            cheapest[~has_cheap] = -1
            saving[~has_cheap] = np.nan
    return Decision(
        insure=insure,
        expected_cost=expected,
        expected_cost_uninsured=uninsured,
        expected_cost_insured=insured,
        allowed=allowed,
        recommended=recommended,
        cheapest=cheapest,
        saving_vs_cheapest_usd=saving,
        no_recommendation=no_rec,
        ineligible=ineligible,
        unscored=unscored,
        constraint_passes=passes,
    )


_f = np.float64
_ONE = np.float64(1.0)
_INF = np.float64(np.inf)


def _constraint_passes(
    cands: CandidateTable, c: Constraints, carriers: np.ndarray | None
) -> list[tuple[int, np.ndarray]]:
    """(BLOCK_* bit, (n, K) bool: candidate meets it) for each constraint the seller set."""
    passes: list[tuple[int, np.ndarray]] = []
    if c.require_tracking != "none":
        level = TRACKING_LEVELS[c.require_tracking]
        passes.append((BLOCK_TRACKING, cands.tracking_level >= level))
    if c.max_transit_days is not None:  # NaN (unknown channel) fails
        passes.append((BLOCK_TRANSIT, cands.transit_days <= _f(c.max_transit_days)))
    if c.max_price_usd is not None:
        passes.append((BLOCK_PRICE, cands.price_usd <= _f(c.max_price_usd)))
    if c.allowed_carriers is not None:
        if carriers is None:
            raise ValueError("allowed_carriers needs the candidates' carriers (carriers=...)")
        names = np.asarray(carriers, dtype=object)
        accepted = set(c.allowed_carriers)
        ok = np.fromiter((x in accepted for x in names.flat), bool, names.size)
        passes.append((BLOCK_CARRIER, ok.reshape(names.shape)))
    return passes
