"""Parameters of the simulated shipment world (every rate and multiplier, named and sourced).

No real seller history exists, so :mod:`shiprisk.data.simulator` draws shipments from a world
whose true loss and rejection probabilities are known. This module holds that world's knobs:
one frozen :class:`WorldParams` whose fields carry a default, a one-line description and the
source of the figure (``docs/domain-facts.md``, the project's research notes, or "chosen") in
their metadata, so the README table and the tests read the same facts. Mapping fields are
plain dicts: treat a world as immutable and derive variants with :func:`dataclasses.replace`
(see :func:`shifted_world`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from shiprisk.data.contract import (
    ADDRESS_QUALITIES,
    GOODS_CATEGORIES,
    MARKETPLACES,
    PACKAGING_TYPES,
    VALUABLE_GOODS,
)

DF = "domain-facts.md"
CHOSEN = "chosen"

LOCAL_CURRENCY: dict[str, str] = {
    **dict.fromkeys(("DE", "FR", "IT", "ES", "NL", "BE", "AT", "IE", "FI", "PT"), "EUR"),
    "GB": "GBP", "JP": "JPY", "AU": "AUD", "CA": "CAD", "CH": "CHF", "BR": "BRL", "MX": "MXN",
    "IN": "INR", "AE": "AED", "SA": "SAR", "SG": "SGD", "MY": "MYR", "TH": "THB", "KR": "KRW",
    "CL": "CLP", "PL": "PLN",
}  # fmt: skip
"""Destination -> local currency, for destinations whose currency the contract accepts."""


def _p(default: Any, doc: str, source: str = CHOSEN) -> dict[str, Any]:
    """``field`` arguments of a documented parameter (mutable defaults copied per instance)."""
    meta = {"doc": doc, "source": source}
    if isinstance(default, dict | list):
        return {"default_factory": lambda: _copy(default), "metadata": meta}
    return {"default": default, "metadata": meta}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


_DESTINATION_WEIGHTS = {
    # risk tier 1 (about 65 % of volume)
    "US": 26.0, "CA": 3.0, "GB": 6.0, "DE": 5.0, "FR": 4.0, "IT": 2.5, "ES": 2.5, "NL": 1.5,
    "BE": 0.8, "SE": 0.8, "PL": 1.2, "AT": 0.6, "IE": 0.5, "DK": 0.5, "FI": 0.4, "PT": 0.5,
    "CH": 0.6, "NO": 0.5, "JP": 2.5, "KR": 1.2, "AU": 3.0, "NZ": 0.6, "SG": 0.8,
    # risk tier 2 (about 24 %)
    "IL": 1.0, "AE": 2.5, "SA": 3.0, "KW": 0.6, "QA": 0.5, "OM": 0.4, "BH": 0.3, "TH": 1.5,
    "MY": 1.5, "PH": 1.5, "ID": 1.2, "VN": 1.0, "MX": 3.0, "CL": 1.5, "CO": 1.2, "PE": 0.8,
    "TR": 1.2, "ZA": 1.0,
    # risk tier 3 (about 12 %)
    "IN": 3.0, "BR": 3.5, "AR": 0.8, "GT": 0.4, "HN": 0.3, "SV": 0.3, "CR": 0.4, "PA": 0.4,
    "NG": 0.8, "EG": 0.6, "PK": 0.6, "BD": 0.5,
}  # fmt: skip

_MARKETPLACE_MIX = {
    # weights in contract.MARKETPLACES order:
    # amazon, ebay, aliexpress, shopify, etsy, walmart, shopee, mercadolibre, other
    "north_america": [0.40, 0.15, 0.08, 0.15, 0.08, 0.08, 0.00, 0.00, 0.06],
    "europe": [0.38, 0.18, 0.14, 0.14, 0.08, 0.00, 0.00, 0.00, 0.08],
    "east_asia": [0.30, 0.10, 0.20, 0.15, 0.05, 0.00, 0.05, 0.00, 0.15],
    "oceania": [0.35, 0.20, 0.15, 0.15, 0.07, 0.00, 0.00, 0.00, 0.08],
    "south_east_asia": [0.05, 0.05, 0.25, 0.10, 0.02, 0.00, 0.45, 0.00, 0.08],
    "middle_east": [0.30, 0.08, 0.20, 0.20, 0.02, 0.00, 0.00, 0.00, 0.20],
    "latin_america": [0.10, 0.08, 0.20, 0.10, 0.02, 0.00, 0.00, 0.42, 0.08],
    "africa": [0.10, 0.10, 0.35, 0.20, 0.02, 0.00, 0.00, 0.00, 0.23],
    "south_asia": [0.25, 0.08, 0.25, 0.15, 0.02, 0.00, 0.05, 0.00, 0.20],
    "other": [0.25, 0.12, 0.20, 0.15, 0.04, 0.02, 0.04, 0.04, 0.14],
}

_PACKAGING_MIX = {
    # weights in contract.PACKAGING_TYPES order: envelope, poly_mailer, box, reinforced_box
    "apparel": [0.10, 0.70, 0.18, 0.02],
    "electronics": [0.10, 0.10, 0.60, 0.20],
    "jewelry": [0.45, 0.20, 0.33, 0.02],
    "cosmetics": [0.05, 0.25, 0.60, 0.10],
    "batteries": [0.05, 0.10, 0.65, 0.20],
    "liquids": [0.00, 0.05, 0.60, 0.35],
    "documents": [0.85, 0.10, 0.05, 0.00],
    "toys": [0.05, 0.30, 0.60, 0.05],
    "home": [0.02, 0.20, 0.63, 0.15],
    "branded_goods": [0.05, 0.35, 0.55, 0.05],
}


@dataclass(frozen=True)
class WorldParams:
    """Every rate, multiplier and mix of the simulated world (defaults = the default world).

    Loss and rejection probabilities are products of multipliers (smooth, moderate effects a
    tree model can learn); each field's metadata holds ``doc`` and ``source``.
    """

    # -- time ----------------------------------------------------------------------------
    start_date: date = field(**_p(date(2024, 1, 1), "first shipment day (UTC)"))
    end_date: date = field(
        **_p(date(2025, 6, 30), "last shipment day (UTC), >= 1 year after start")
    )
    volume_by_month: list = field(
        **_p(
            [0.85, 0.70, 0.95, 0.95, 1.00, 1.00, 0.95, 0.95, 1.00, 1.10, 1.45, 1.25],
            "relative shipment volume Jan..Dec (Chinese New Year dip in Feb, Nov/Dec peak)",
            "chosen, shape after the peak-season row of " + DF,
        )
    )
    volume_growth_per_year: float = field(**_p(1.15, "volume multiplier per year (growing seller)"))
    drift_origin: date = field(
        **_p(date(2024, 1, 1), "date at which the drift multipliers equal 1")
    )
    loss_drift_per_year: float = field(
        **_p(0.92, "loss multiplier per year since drift_origin (carriers slowly improve)")
    )
    reject_drift_per_year: float = field(
        **_p(1.06, "rejection multiplier per year since drift_origin (stricter customs, more COD)")
    )

    # -- what is shipped where -----------------------------------------------------------
    destination_weights: dict = field(
        **_p(
            _DESTINATION_WEIGHTS,
            "relative volume by destination country (US/EU heavy, ~35 % risk tier 2/3)",
        )
    )
    goods_weights: dict = field(
        **_p(
            {
                "apparel": 0.26,
                "electronics": 0.17,
                "jewelry": 0.07,
                "cosmetics": 0.08,
                "batteries": 0.03,
                "liquids": 0.02,
                "documents": 0.03,
                "toys": 0.09,
                "home": 0.17,
                "branded_goods": 0.08,
            },
            "goods category mix",
        )
    )
    goods_value_usd: dict = field(
        **_p(
            {
                "apparel": [25, 0.7],
                "electronics": [70, 0.9],
                "jewelry": [45, 1.1],
                "cosmetics": [22, 0.7],
                "batteries": [30, 0.7],
                "liquids": [20, 0.6],
                "documents": [10, 0.8],
                "toys": [22, 0.7],
                "home": [30, 0.8],
                "branded_goods": [90, 0.8],
            },
            "true value of a one-item parcel: lognormal [median USD, sigma of log]",
        )
    )
    goods_weight_kg: dict = field(
        **_p(
            {
                "apparel": [0.35, 0.6],
                "electronics": [0.45, 0.9],
                "jewelry": [0.08, 0.7],
                "cosmetics": [0.30, 0.6],
                "batteries": [0.40, 0.7],
                "liquids": [0.60, 0.6],
                "documents": [0.15, 0.6],
                "toys": [0.50, 0.8],
                "home": [0.90, 0.9],
                "branded_goods": [0.60, 0.7],
            },
            "gross weight of a one-item parcel: lognormal [median kg, sigma of log]",
        )
    )
    goods_density_kg_per_l: dict = field(
        **_p(
            {
                "apparel": 0.15,
                "electronics": 0.35,
                "jewelry": 0.30,
                "cosmetics": 0.40,
                "batteries": 0.80,
                "liquids": 0.70,
                "documents": 0.50,
                "toys": 0.15,
                "home": 0.20,
                "branded_goods": 0.20,
            },
            "median density (kg per litre of parcel volume), sets the dimensions",
        )
    )
    goods_value_weight_corr: float = field(
        **_p(
            0.6,
            "correlation of log value and log weight within a category (bigger items cost more)",
        )
    )
    extra_items_mean: dict = field(
        **_p(
            {
                "apparel": 0.8,
                "electronics": 0.3,
                "jewelry": 0.6,
                "cosmetics": 1.0,
                "batteries": 0.5,
                "liquids": 0.5,
                "documents": 0.2,
                "toys": 0.8,
                "home": 0.5,
                "branded_goods": 0.3,
            },
            "item_count = 1 + Poisson(this)",
        )
    )
    items_value_elasticity: float = field(
        **_p(0.8, "value and weight scale with item_count ** this")
    )
    max_value_usd: float = field(**_p(15_000.0, "cap on the true value of a parcel (USD)"))
    max_weight_kg: float = field(**_p(50.0, "cap on the gross weight (kg)"))
    packaging_mix: dict = field(
        **_p(
            _PACKAGING_MIX,
            "packaging probabilities by goods category "
            "(envelope, poly_mailer, box, reinforced_box)",
        )
    )
    envelope_max_kg: float = field(
        **_p(0.5, "heavier parcels drawn as envelope go in a poly mailer")
    )
    poly_mailer_max_kg: float = field(**_p(3.0, "heavier parcels drawn as poly mailer go in a box"))
    fragile_share: dict = field(
        **_p(
            {
                "apparel": 0.02,
                "electronics": 0.35,
                "jewelry": 0.15,
                "cosmetics": 0.30,
                "batteries": 0.05,
                "liquids": 0.50,
                "documents": 0.0,
                "toys": 0.05,
                "home": 0.30,
                "branded_goods": 0.05,
            },
            "probability the parcel is marked fragile, by goods (no effect on outcomes)",
        )
    )
    valuable_wording_share: dict = field(
        **_p(
            {
                "apparel": 0.02,
                "electronics": 0.12,
                "jewelry": 0.25,
                "cosmetics": 0.02,
                "batteries": 0.02,
                "liquids": 0.01,
                "documents": 0.01,
                "toys": 0.02,
                "home": 0.02,
                "branded_goods": 0.10,
            },
            "probability the outer label names valuables, by goods",
        )
    )
    undervalue_share: float = field(
        **_p(0.12, "share of parcels whose declared value is understated")
    )
    undervalue_factor: list = field(
        **_p([0.35, 0.4], "understated value = true x lognormal [median factor, sigma of log]")
    )
    marketplace_mix: dict = field(
        **_p(
            _MARKETPLACE_MIX,
            "marketplace weights by destination region "
            "(contract.MARKETPLACES order; 'other' = unknown region)",
        )
    )

    # -- order and buyer attributes ----------------------------------------------------------
    cod_share_scale: float = field(
        **_p(
            1.0,
            "P(buyer wants COD) = destination cod_share x this "
            "(prepaid if no COD channel is eligible)",
        )
    )
    ddp_share_by_region: dict = field(
        **_p(
            {
                "north_america": 0.30,
                "europe": 0.55,
                "east_asia": 0.20,
                "oceania": 0.30,
                "south_east_asia": 0.10,
                "middle_east": 0.15,
                "latin_america": 0.12,
                "africa": 0.08,
                "south_asia": 0.10,
                "other": 0.15,
            },
            "probability the seller ships DDP (duties prepaid), by region (EU: IOSS)",
        )
    )
    tax_id_share_required: float = field(
        **_p(
            0.65,
            "P(tax id on form) where the destination requires one",
            "chosen, Brazil row of " + DF,
        )
    )
    tax_id_share_optional: float = field(**_p(0.20, "P(tax id on form) where not required"))
    repeat_buyer_share: float = field(**_p(0.35, "share of buyers with earlier orders"))
    repeat_orders_p: float = field(**_p(0.3, "prior orders of a repeat buyer = Geometric(this)"))
    buyer_refusal_base: float = field(**_p(0.03, "mean latent refusal propensity of a buyer"))
    buyer_refusal_cod_extra: float = field(**_p(0.15, "extra propensity x destination cod_share"))
    buyer_refusal_concentration: float = field(
        **_p(3.0, "Beta concentration of the propensity (refusals ~ Binomial(orders, propensity))")
    )
    address_quality_by_tier: dict = field(
        **_p(
            {1: [0.78, 0.14, 0.08], 2: [0.62, 0.26, 0.12], 3: [0.50, 0.35, 0.15]},
            "address quality probabilities by risk tier (verified, unverified, corrected)",
        )
    )
    remote_share_scale: float = field(**_p(1.0, "P(remote area) = destination remote_share x this"))
    local_currency_share: float = field(
        **_p(
            0.20,
            "P(declared in the destination's currency) where "
            "the contract accepts it (EUR for the eurozone)",
        )
    )
    cny_share: float = field(**_p(0.02, "P(declared in CNY, the seller's currency)"))

    # -- the seller's (confounded) historical channel choice ---------------------------------
    choice_price_weight: float = field(**_p(-1.6, "utility per log(list price USD)"))
    choice_tracking_value_weight: float = field(
        **_p(
            0.6,
            "utility per tracking level (0/1/2) x log(value / choice_value_ref_usd): "
            "valuable parcels go tracked",
        )
    )
    choice_value_ref_usd: float = field(**_p(40.0, "value at which tracking has no extra utility"))
    choice_urgency_weight: float = field(
        **_p(
            1.2,
            "utility per latent urgency N(0,1) x -log(mean transit / 10 d); urgency never "
            "affects outcomes",
        )
    )
    choice_tier_express_bias: dict = field(
        **_p({1: 0.0, 2: 0.3, 3: 0.6}, "extra utility of express channels by destination risk tier")
    )
    choice_channel_bias: dict = field(
        **_p(
            {
                "cnpost_untracked": -1.5,
                "cnpost_registered": -0.2,
                "epacket": 0.5,
                "ems": 0.0,
                "cnpost_air_parcel": -0.3,
                "dedicated_line": 0.8,
                "cod_line": 0.5,
                "aramex": 0.7,
                "sf_international": 0.8,
                "dhl_express": 1.1,
                "fedex_ip": 0.9,
                "ups_saver": 0.9,
                "tnt_economy": 0.6,
            },
            "per-channel utility (habits, account deals); unknown channels 0",
        )
    )
    choice_temperature: float = field(**_p(1.0, "softmax temperature over eligible channels"))
    choice_floor: float = field(
        **_p(
            0.04,
            "probability mass spread evenly over eligible channels so every channel gets support",
        )
    )

    # -- loss: P(lost) = base x multipliers, smoothly capped ---------------------------------
    loss_base_by_channel_type: dict = field(
        **_p(
            {
                "express": 0.002,
                "postal_tracked": 0.006,
                "dedicated_line": 0.008,
                "postal_untracked": 0.020,
            },
            "base loss rate by channel type",
            "suggested base rates, " + DF,
        )
    )
    loss_channel_factor: dict = field(
        **_p(
            {
                "cnpost_untracked": 1.0,
                "cnpost_registered": 1.1,
                "epacket": 0.9,
                "ems": 0.8,
                "cnpost_air_parcel": 1.0,
                "dedicated_line": 1.0,
                "cod_line": 1.25,
                "aramex": 1.5,
                "sf_international": 1.2,
                "dhl_express": 0.8,
                "fedex_ip": 1.0,
                "ups_saver": 0.9,
                "tnt_economy": 1.3,
            },
            "per-channel loss factor within its type (unknown channels 1)",
            "chosen; spread after the Canada carrier row of " + DF,
        )
    )
    loss_tier_mult: dict = field(
        **_p({1: 1.0, 2: 1.5, 3: 2.5}, "loss multiplier by destination risk tier", DF)
    )
    loss_valuable_goods: list = field(**_p(list(VALUABLE_GOODS), "goods counted as valuables", DF))
    loss_valuable_goods_mult: float = field(**_p(1.5, "loss multiplier for valuables", DF))
    loss_address_mult: dict = field(
        **_p(
            {"verified": 1.0, "unverified": 1.5, "corrected": 1.2},
            "loss multiplier by address quality on fully tracked channels",
            "unverified x1.5: " + DF + "; corrected chosen",
        )
    )
    loss_address_tracking_gain: float = field(
        **_p(
            1.0,
            "weak tracking amplifies address trouble: the address multiplier is raised to the "
            "power 1 + this x tracking weakness (untracked unverified: 1.5 ** 2)",
        )
    )
    loss_envelope_valuable_mult: float = field(
        **_p(1.4, "extra loss multiplier for valuables in an envelope", "envelopes +30-50 %, " + DF)
    )
    loss_theft_slope: float = field(
        **_p(0.4, "theft: loss x exp(slope x weakness x log(1 + value / ref))", CHOSEN)
    )
    loss_theft_ref_usd: float = field(
        **_p(100.0, "value (USD) at which theft risk has grown by exp(slope x weakness x log 2)")
    )
    tracking_weakness: dict = field(
        **_p({"none": 1.0, "partial": 0.5, "full": 0.0}, "how exposed a tracking level is to theft")
    )
    loss_valuable_wording_mult: dict = field(
        **_p(
            {"none": 1.6, "partial": 1.4, "full": 1.15},
            "loss multiplier for 'valuable' wording on the label, by tracking level",
            "chosen; direction from " + DF,
        )
    )
    loss_remote_mult: float = field(**_p(1.3, "loss multiplier in a carrier remote area"))
    loss_month_mult: list = field(
        **_p(
            [1.0] * 10 + [1.4, 1.2],
            "loss multiplier by month Jan..Dec",
            "Nov x1.4, Dec x1.2: Sendcloud, " + DF,
        )
    )
    loss_transit_ref_days: dict = field(
        **_p(
            {
                "express": 5.0,
                "postal_tracked": 14.0,
                "dedicated_line": 11.0,
                "postal_untracked": 30.0,
            },
            "typical transit days of a channel type (its base rate already includes it)",
            "transit ranges of " + DF,
        )
    )
    loss_transit_elasticity: float = field(
        **_p(
            0.5,
            "loss x (mean transit days / type ref) ** this "
            "(farther zones, customs holds, more hand-overs)",
        )
    )
    loss_cap: float = field(**_p(0.5, "smooth upper bound of P(lost)"))

    # -- rejection: P(rejected) = (1 - P(lost)) x (1 - (1 - q_buyer) x (1 - q_customs)) -----
    # two competing causes of a return, each a capped product of multipliers
    reject_base: dict = field(
        **_p(
            {1: [0.01, 0.10], 2: [0.025, 0.19], 3: [0.04, 0.28]},
            "buyer refusal / failed delivery q_buyer by risk tier: [prepaid, COD] at 1-2 day "
            "delivery",
            "suggested base rates, " + DF,
        )
    )
    reject_slow_days: list = field(**_p([2, 5], "delivery-day bucket bounds: <= 2, 3-5, > 5", DF))
    reject_slow_mult: list = field(
        **_p(
            [1.0, 1.23, 1.6],
            "q_buyer multiplier per bucket (averaged over the uniform transit distribution)",
            "Shipway 22/27/35 %, " + DF,
        )
    )
    reject_refusal_rate_weight: float = field(
        **_p(2.0, "q_buyer x exp(this x refusals / (orders + 1))")
    )
    reject_loyalty_elasticity: float = field(
        **_p(0.15, "q_buyer x (1 + orders - refusals) ** -this")
    )
    reject_channel_type_mult: dict = field(
        **_p(
            {
                "express": 0.75,
                "postal_tracked": 1.0,
                "dedicated_line": 1.0,
                "postal_untracked": 0.6,
            },
            "q_buyer multiplier by channel type (couriers call and retry; untracked mail goes to "
            "the mailbox without a signature)",
        )
    )
    reject_channel_factor: dict = field(
        **_p(
            {"aramex": 0.85, "cod_line": 1.1},
            "per-channel q_buyer factor within its type (unlisted channels 1)",
        )
    )
    reject_address_mult: dict = field(
        **_p(
            {"verified": 1.0, "unverified": 2.2, "corrected": 1.3},
            "q_buyer (failed delivery, return) by address quality",
            "chosen; addresses ~80 % of failed deliveries, " + DF,
        )
    )
    reject_remote_mult: float = field(**_p(1.15, "q_buyer multiplier in a remote area"))
    reject_month_mult: list = field(
        **_p([1.0] * 10 + [1.1, 1.1], "q_buyer multiplier by month Jan..Dec (peak delays)")
    )
    customs_reject_base: dict = field(
        **_p(
            {1: 0.003, 2: 0.006, 3: 0.015},
            "customs return q_customs of plain goods, DDP, by customs tier",
        )
    )
    customs_sensitive_goods: list = field(
        **_p(["batteries", "liquids", "branded_goods"], "goods customs treat as sensitive", DF)
    )
    customs_sensitive_mult: dict = field(
        **_p(
            {1: 2.0, 2: 3.0, 3: 4.0},
            "q_customs multiplier for sensitive goods by customs tier",
            "chosen; direction from " + DF,
        )
    )
    customs_ddu_slope: dict = field(
        **_p(
            {1: 0.20, 2: 0.40, 3: 0.60},
            "DDU (buyer owes duties): q_customs x exp(slope[customs tier] x log(1 + value / ref))",
            "chosen; DDU returns: DPD guidance, " + DF,
        )
    )
    customs_ddu_ref_usd: float = field(**_p(100.0, "value (USD) around which DDU duties bite"))
    customs_missing_tax_id_mult: float = field(
        **_p(
            6.0,
            "q_customs multiplier for a missing tax id where the destination requires one",
            "chosen; Brazil row of " + DF,
        )
    )
    customs_undervalue_slope: dict = field(
        **_p(
            {1: 0.5, 2: 1.0, 3: 1.5},
            "undervaluation: q_customs x exp(slope[customs tier] x width x softplus((u - shift) / "
            "width)), u = log(typical value per kg of the goods x weight / declared USD)",
            "chosen; direction from " + DF,
        )
    )
    customs_undervalue_shift: float = field(**_p(1.0, "log-ratio u at which undervaluation bites"))
    customs_undervalue_width: float = field(
        **_p(0.3, "smoothness of the undervaluation onset (log)")
    )
    reject_cap: float = field(**_p(0.9, "smooth upper bound of q_buyer and of q_customs"))

    # -- outcome dates -------------------------------------------------------------------
    return_days: list = field(**_p([7, 30], "days from refusal to the parcel back at the seller"))
    lost_declared_days: list = field(
        **_p(
            [30, 60],
            "days from creation until a parcel is declared lost",
            "brief; China Post claims take months, " + DF,
        )
    )

    def __post_init__(self) -> None:
        if (self.end_date - self.start_date).days + 1 < 365:
            raise ValueError("the time range must cover at least one year")
        for name in ("volume_by_month", "loss_month_mult", "reject_month_mult"):
            if len(getattr(self, name)) != 12:
                raise ValueError(f"{name} needs 12 monthly values")
        for goods_map in (
            "goods_weights",
            "goods_value_usd",
            "goods_weight_kg",
            "goods_density_kg_per_l",
            "extra_items_mean",
            "packaging_mix",
            "fragile_share",
            "valuable_wording_share",
        ):
            missing = set(GOODS_CATEGORIES) - set(getattr(self, goods_map))
            if missing:
                raise ValueError(f"{goods_map} lacks {sorted(missing)}")
        if any(len(v) != len(PACKAGING_TYPES) for v in self.packaging_mix.values()):
            raise ValueError("packaging_mix rows need one weight per packaging type")
        if any(len(v) != len(MARKETPLACES) for v in self.marketplace_mix.values()):
            raise ValueError("marketplace_mix rows need one weight per marketplace")
        if "other" not in self.marketplace_mix or "other" not in self.ddp_share_by_region:
            raise ValueError("marketplace_mix and ddp_share_by_region need an 'other' row")
        for mult in (self.loss_address_mult, self.reject_address_mult):
            if set(mult) != set(ADDRESS_QUALITIES):
                raise ValueError("address multipliers need every address quality")


def default_world() -> WorldParams:
    """The world the main job trains on (2024-01 .. 2025-06)."""
    return WorldParams()


def shifted_world() -> WorldParams:
    """The next year, more tier-2/3 volume and a seller who buys faster, pricier channels.

    Same physics (rates, multipliers, drift continued from the same origin), different
    covariate mix: a robustness test for models and policies trained on the default world.
    """
    base = default_world()
    tier_boost = {2: 1.8, 3: 2.2}
    from shiprisk.data.catalogs import bundled_catalog  # lazy: no catalog read at import

    catalog = bundled_catalog()
    tiers = {d.country: d.risk_tier for d in catalog.destinations}
    destinations = {
        c: w * tier_boost.get(tiers.get(c, 1), 1.0) for c, w in base.destination_weights.items()
    }
    delta = {
        "cnpost_untracked": -0.5,
        "epacket": -0.5,
        "dedicated_line": 0.5,
        "sf_international": 0.5,
    }
    channel_bias = {k: v + delta.get(k, 0.0) for k, v in base.choice_channel_bias.items()}
    goods = dict(base.goods_weights)
    goods.update({"electronics": 0.22, "apparel": 0.21})
    return replace(
        base,
        start_date=date(2025, 7, 1),
        end_date=date(2026, 6, 30),
        destination_weights=destinations,
        goods_weights=goods,
        choice_price_weight=-1.5,
        choice_urgency_weight=1.5,
        choice_channel_bias=channel_bias,
        choice_tier_express_bias={1: 0.2, 2: 0.6, 3: 1.0},
    )


WORLDS = {"default": default_world, "shifted": shifted_world}


def world_by_name(name: str) -> WorldParams:
    try:
        return WORLDS[name]()
    except KeyError:
        raise ValueError(f"unknown world {name!r}; choose one of {sorted(WORLDS)}") from None
