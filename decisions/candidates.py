"""Candidate channels of each shipment: eligibility, price, insurance terms, transit.

No probabilities here: :func:`build_candidates` lays shipments x channels out as ``(n, K)``
arrays that :func:`shiprisk.decisions.policy.decide` then costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel

from shiprisk.data.catalogs import Catalog, longest_and_girth
from shiprisk.data.contract import GOODS_CATEGORIES
from shiprisk.decisions.costs import SellerCosts

UNKNOWN_CHANNEL_REASON = "unknown channel (not in the catalog)"
"""Why a channel the catalog does not know is never eligible (online and batch)."""
DUTIES_ABSORBED = "duties_absorbed"
"""Cost-side record key (never a model input), like ``sale_value``: true = the seller pays the
import duties out of the sale (an order sold DDU and shipped DDP: the buyer's price did not
include them). Set by the ``ship_ddp`` action's changed order (docs/policy.md)."""


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
    # Cost terms (docs/policy.md); None = the policy's neutral default (hand-made tables).
    liability_paid: np.ndarray | None = None
    """(n, K) P(the carrier pays its liability), catalog column by channel type."""
    returned_share: np.ndarray | None = None
    """(n, K) share of refused parcels that come back (the rest are abandoned)."""
    bills_refused_duties: np.ndarray | None = None
    """(n, K) bool: the carrier bills a refused DDU parcel's duties to the shipper."""
    is_ddu: np.ndarray | None = None
    """(n,) bool: the buyer owes the duties (DDU); DDP = the seller prepaid them."""
    sale_usd: np.ndarray | None = None
    """(n,) what the buyer paid in USD (the request's ``sale_value``, else the declared value)."""
    duties_absorbed: np.ndarray | None = None
    """(n,) bool: the seller pays the duties of every parcel that clears customs
    (:data:`DUTIES_ABSORBED`); None = nobody does."""

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
            if a is None:
                out[name] = None
            elif a.ndim == 1:
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
    is_ddu: np.ndarray | None = None,
    sale_usd: np.ndarray | None = None,
    duties_absorbed: np.ndarray | None = None,
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
        # an absent weight: the flat liability only (the carrier's smallest payout)
        "liability_usd": col("liability_usd")
        + col("liability_per_kg_usd") * np.nan_to_num(weight, nan=0.0)[:, None],
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
        "liability_paid": _setting_or(costs.liability_paid_probability, col, "liability_paid"),
        "returned_share": _setting_or(costs.refused_returned_share, col, "returned_share"),
        "bills_refused_duties": col("bills_refused_duties") > 0,
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
            fill = {
                "eligible": False,
                "available": False,
                "tracking_level": 0,
                "bills_refused_duties": False,
            }
            v = {k: np.where(known, a, fill.get(k, np.nan)).astype(a.dtype) for k, a in v.items()}
            index = np.where(known, index, -1)

    price = v["price_usd"]
    if quoted_price is not None:
        quoted_price = np.asarray(quoted_price, dtype=float).reshape(index.shape)
        price = np.where(np.isnan(quoted_price), price, quoted_price)
    excluded_dest = catalog.destination_column("insurance_excluded")[country] > 0
    uninsurable = _uninsurable_mask(costs.uninsurable_goods)
    insurable_here = ~(excluded_dest | (uninsurable[goods] & (goods >= 0)))[:, None]
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
        liability_paid=v["liability_paid"],
        returned_share=v["returned_share"],
        bills_refused_duties=v["bills_refused_duties"],
        is_ddu=np.zeros(n, bool) if is_ddu is None else np.atleast_1d(np.asarray(is_ddu, bool)),
        sale_usd=value if sale_usd is None else np.atleast_1d(np.asarray(sale_usd, float)),
        duties_absorbed=(
            None if duties_absorbed is None else np.atleast_1d(np.asarray(duties_absorbed, bool))
        ),
    )


_CATALOG_COLUMN = {
    "liability_paid": "liability_paid_probability",
    "returned_share": "refused_returned_share",
}


def _setting_or(setting: float | None, col: Any, name: str) -> np.ndarray:
    """(C,) the seller's setting for every channel, else the catalog column (by type)."""
    column = col(_CATALOG_COLUMN[name])
    return column if setting is None else np.full_like(column, float(setting))


@lru_cache(maxsize=64)
def _uninsurable_mask(goods: tuple[str, ...]) -> np.ndarray:
    """Bool per ``GOODS_CATEGORIES`` entry: no insurer covers it (read-only, cached)."""
    mask = np.zeros(len(GOODS_CATEGORIES), dtype=bool)
    mask[[GOODS_CATEGORIES.index(g) for g in goods]] = True
    mask.flags.writeable = False
    return mask


def shipment_arrays(catalog: Catalog, shipments: Any) -> dict[str, Any]:
    """The keyword arrays :func:`build_candidates` needs, from contract-shaped records
    (online) or the columns of a validated DataFrame (batch, evaluation): one arithmetic.

    Absent optional fields stay unknown: weight and sides NaN (priced at the channel's
    minimum chargeable weight, no weight or size check), goods -1 (no goods check), payment
    not cash on delivery (no COD check)."""
    if hasattr(shipments, "columns"):
        import pandas as pd  # the batch path's DataFrames only

        def column(name: str) -> Any:  # an absent optional column: unknown (NaN)
            if name not in shipments:
                return np.full(len(shipments), np.nan)
            return shipments[name].to_numpy()

        goods = pd.Categorical(column("goods_category"), categories=GOODS_CATEGORIES).codes
    else:

        def column(name: str) -> Any:
            return [r.get(name) for r in shipments]

        goods = [  # absent (None, NaN): -1, unknown
            GOODS_CATEGORIES.index(g) if isinstance(g, str) else -1
            for g in column("goods_category")
        ]
    return {
        "weight_kg": np.asarray(column("weight_kg"), dtype=float),
        "dims_cm": tuple(
            np.asarray(column(f), dtype=float) for f in ("length_cm", "width_cm", "height_cm")
        ),
        "country_code": catalog.country_codes(column("destination_country")),
        "goods_code": np.asarray(goods, dtype=np.int64),
        "is_cod": np.asarray(column("payment_method"), dtype=object) == "cod",
        "value_usd": np.asarray(column("declared_value"), dtype=float)
        * catalog.usd_rate(column("currency")),
    }


def shipment_terms(catalog: Catalog, shipments: Any, value_usd: np.ndarray) -> dict[str, Any]:
    """The cost-side keyword arrays of :func:`build_candidates` (duties terms, sale value,
    duties absorbed): not eligibility inputs, so kept apart from :func:`shipment_arrays`.
    ``sale_value`` (in the shipment's currency) is optional per record / column; missing or
    null = declared value. :data:`DUTIES_ABSORBED` is optional too (missing = false)."""
    absorbed: Any = None
    if hasattr(shipments, "columns"):
        # duties terms unknown (absent): costed as not DDU
        terms = shipments.get("duties_terms")
        ddu = np.zeros(len(shipments), bool) if terms is None else terms.to_numpy() == "DDU"
        sale = shipments["sale_value"].to_numpy() if "sale_value" in shipments else None
        currency = shipments["currency"].to_numpy()
        if DUTIES_ABSORBED in shipments:
            absorbed = shipments[DUTIES_ABSORBED].fillna(False).to_numpy(dtype=bool)
    else:
        ddu = np.asarray([r.get("duties_terms") == "DDU" for r in shipments], dtype=bool)
        sale = [r.get("sale_value") for r in shipments]
        sale = None if all(x is None for x in sale) else sale
        currency = [r["currency"] for r in shipments]
        if any(r.get(DUTIES_ABSORBED) for r in shipments):
            absorbed = [r.get(DUTIES_ABSORBED) is True for r in shipments]
    out: dict[str, Any] = {
        "is_ddu": np.asarray(ddu, dtype=bool),
        "sale_usd": None,
        "duties_absorbed": None if absorbed is None else np.asarray(absorbed, dtype=bool),
    }
    if sale is not None:
        sale_usd = np.asarray(pd_float(sale), dtype=float) * catalog.usd_rate(currency)
        out["sale_usd"] = np.where(np.isnan(sale_usd), value_usd, sale_usd)
    return out


def pd_float(values: Any) -> np.ndarray:
    """Floats with None as NaN."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def quote_arrays(
    listed: Sequence[Sequence[Mapping[str, Any] | BaseModel] | None], width: int
) -> dict[str, np.ndarray | None]:
    """(n, width) quoted prices and premiums of listed candidates, NaN where none (None when
    no shipment lists candidates): the ``build_candidates`` quote arguments."""
    if all(c is None for c in listed):
        return {"quoted_price": None, "quoted_premium": None}
    price = np.full((len(listed), width), np.nan)
    premium = np.full((len(listed), width), np.nan)
    for i, entries in enumerate(listed):
        for k, entry in enumerate(entries or ()):
            c = entry.model_dump() if isinstance(entry, BaseModel) else dict(entry)
            if c.get("quoted_price_usd") is not None:
                price[i, k] = c["quoted_price_usd"]
            if c.get("quoted_premium_usd") is not None:
                premium[i, k] = c["quoted_premium_usd"]
    return {"quoted_price": price, "quoted_premium": premium}


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
    arrays.update(shipment_terms(catalog, [record], arrays["value_usd"]))
    if candidates is None:
        table = build_candidates(catalog, **arrays, costs=costs)
        keep = np.flatnonzero(table.eligible[0])
        return table.take(cols=keep), [catalog.channel_ids[i] for i in keep]
    ids = [c.channel_id if isinstance(c, BaseModel) else c["channel_id"] for c in candidates]
    index = np.array([[catalog.channel_index.get(i, -1) for i in ids]], dtype=np.int64)
    quotes = quote_arrays([candidates], len(ids))
    return build_candidates(catalog, **arrays, channel_index=index, costs=costs, **quotes), ids


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

    Reads the checks of :meth:`Catalog.refusals` (the one home of the rules) and names them.
    """
    arrays = shipment_arrays(catalog, [record])
    refused = {check: mask[0] for check, mask in catalog.refusals(**arrays).items()}
    weight = float(arrays["weight_kg"][0])
    value = float(arrays["value_usd"][0])
    longest, girth = (float(x[0]) for x in longest_and_girth(arrays["dims_cm"]))
    country, goods = record["destination_country"], record["goods_category"]
    texts: dict[str, Any] = {
        "weight": lambda e: f"weight {weight:g} kg is above {e.max_weight_kg:g} kg",
        "length": lambda e: f"longest side {longest:g} cm is above {e.max_length_cm:g} cm",
        "girth": lambda e: f"length + girth {girth:g} cm is above {e.max_girth_cm:g} cm",
        "value": lambda e: f"value {value:.2f} USD is above {e.max_value_usd:g} USD",
        "destination": lambda e: f"does not deliver to {country}",
        "goods": lambda e: f"does not accept {goods}",
        "cod": lambda e: "does not collect cash on delivery",
    }
    out: dict[str, list[str]] = {}
    for cid in channel_ids:
        j = catalog.channel_index.get(cid)
        if j is None:
            out[cid] = [UNKNOWN_CHANNEL_REASON]
            continue
        rules = catalog.channels[j].eligibility
        reasons = [text(rules) for check, text in texts.items() if refused[check][j]]
        if reasons:
            out[cid] = reasons
    return out
