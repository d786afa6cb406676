"""The seller's cost settings and hard limits: what a lost or rejected parcel costs.

Defaults and their sources are written up in ``docs/policy.md``; a request or batch run
overrides them field by field (:func:`resolve_costs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shiprisk.data.catalogs import Tracking
from shiprisk.data.contract import CHANNEL_PATTERN, GOODS_CATEGORIES, Number, optional

MONEY_DECIMALS = 2
"""Every money figure a user sees (API answers, batch rows, reports) is rounded to the cent."""


ACTION_MIN_SAVING_USD = 0.50
"""Default of ``SellerCosts.action_min_saving_usd``: a seller action is shown only when it lowers
the expected cost by more than this (docs/policy.md, "Seller actions"). Chosen: half a dollar
is about what a minute of the seller's time (a message to the buyer, another label) is worth,
and it keeps the effort and material an action costs but the cost model does not price (a
box instead of a mailer) from making a near-zero effect worth showing."""


def cents(value: Any) -> Any:
    """``value`` (a float, None, or a numpy array) rounded to the cent; decisions are taken on
    the exact figures first, so rounding only changes what is shown."""
    if value is None:
        return None
    if isinstance(value, float | int):
        return round(float(value), MONEY_DECIMALS)
    import numpy as np

    return np.round(value, MONEY_DECIMALS)


GoodsCategory = Literal[GOODS_CATEGORIES]  # type: ignore[valid-type]
Carrier = Annotated[str, StringConstraints(pattern=CHANNEL_PATTERN, max_length=40)]
TrackingLevel = Tracking


class SellerCosts(BaseModel):
    """What a lost or rejected parcel costs this seller; defaults are documented guesses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    goods_cost_ratio: Number = Field(
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
    unrecoverable_share: Number = Field(
        default=0.3,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Share of the goods' cost not recovered when a rejected parcel comes "
        "back (damaged, opened, abandoned or destroyed at the destination).",
    )
    risk_aversion: Number = Field(
        default=1.0,
        ge=0,
        le=10,
        allow_inf_nan=False,
        description="Weight on the expected insurance payout in the insure decision: 1 is "
        "risk-neutral, above 1 buys insurance that costs a little more than it pays back.",
    )
    delay_cost_per_day_usd: Number = Field(
        default=0.0,
        ge=0,
        le=1000,
        allow_inf_nan=False,
        description="Cost of each day of expected transit (buyer goodwill, reviews), USD.",
    )
    claim_paid_probability: Number = Field(
        default=0.9,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Probability an insurance claim for a lost parcel is paid.",
    )
    liability_paid_probability: optional(float, ge=0, le=1, allow_inf_nan=False) = Field(  # type: ignore[valid-type]
        default=None,
        description="Probability the carrier pays its own liability for a lost parcel, for "
        "every channel; null = each channel's catalog value (by channel type: express 0.9, "
        "dedicated line 0.6, postal tracked 0.5).",
    )
    uninsurable_goods: tuple[GoodsCategory, ...] = Field(
        default=("documents",),
        max_length=len(GOODS_CATEGORIES),
        description="Goods categories no insurer covers (documents have no insurable value).",
    )
    refused_returned_share: optional(float, ge=0, le=1, allow_inf_nan=False) = Field(  # type: ignore[valid-type]
        default=None,
        description="Share of refused parcels that come back, for every channel; null = each "
        "channel's catalog value (by channel type: untracked 0.1, postal tracked 0.5, "
        "dedicated line 0.3, express 0.9). The rest are abandoned: the goods are lost.",
    )
    # -- issue 16: the complete cost model (docs/policy.md, "Cost terms"); appended --------
    risk_tolerance_usd: optional(float, gt=0, le=1e9, allow_inf_nan=False) = Field(  # type: ignore[valid-type]
        default=2000.0,
        description="Risk preference: R of the utility -exp(-profit / R) (constant absolute "
        "risk aversion). A loss of R costs the seller noticeably more than its expectation; "
        "null = risk-neutral (expected profit only).",
    )
    duties_rate: Number = Field(
        default=0.15,
        ge=0,
        le=2,
        allow_inf_nan=False,
        description="Import duties and taxes as a share of the declared value: lost on a "
        "refused DDP parcel, billed by couriers for a refused DDU parcel.",
    )
    untracked_claim_rate: Number = Field(
        default=0.02,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Share of delivered untracked parcels whose buyer claims 'item not "
        "received' and wins (no proof of delivery): refunded like a loss.",
    )
    defect_cost_usd: Number = Field(
        default=5.0,
        ge=0,
        le=10_000,
        allow_inf_nan=False,
        description="Marketplace account-health cost of each defect (a not-received claim, a "
        "lost parcel, a delivery after the promise), USD.",
    )
    cancel_cost_usd: Number = Field(
        default=5.0,
        ge=0,
        le=10_000,
        allow_inf_nan=False,
        description="Cost of declining (cancelling) an order: a seller cancellation is a "
        "marketplace defect, USD. Declining is chosen only when shipping is worth less.",
    )
    promised_days: optional(int, ge=1, le=365) = Field(  # type: ignore[valid-type]
        default=None,
        description="Delivery promise to the buyer (days). Later deliveries are defects and "
        "cost delay_cost_per_day_usd per day beyond it; null = no promise (then the delay "
        "cost counts every transit day, as before).",
    )
    postage_covered_share: Number = Field(
        default=1.0,
        ge=0,
        le=2,
        allow_inf_nan=False,
        description="Share of the standard postage (the cheapest channel's price for this "
        "order) that the buyer's payment covers: a shipping fee, or shipping priced into a "
        "'free shipping' listing. Added to the order's revenue whatever channel is chosen, so "
        "it never changes the channel, only whether the order pays. 1 = the price covers "
        "standard postage; 0 = postage comes out of the goods margin.",
    )
    action_min_saving_usd: Number = Field(
        default=ACTION_MIN_SAVING_USD,
        ge=0,
        le=10_000,
        allow_inf_nan=False,
        description="A seller action (verify the address, use a box, ship DDP, ...) is shown "
        "only when re-scoring the order with it lowers the expected cost by more than this, "
        "USD.",
    )


class Constraints(BaseModel):
    """The seller's hard limits on the recommendation (unset = no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    require_tracking: TrackingLevel = Field(
        default="none",
        description="Minimum tracking: 'partial' = any tracking number (postal registered, "
        "scans may stop at the destination), 'full' = end-to-end tracking.",
    )
    max_transit_days: optional(float, gt=0, le=365, allow_inf_nan=False) = Field(  # type: ignore[valid-type]
        default=None,
        description="Upper limit on the expected (mean) transit days, customs hold included.",
    )
    allowed_carriers: tuple[Carrier, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="Carriers the seller accepts (catalog carrier ids, e.g. 'dhl').",
    )
    max_price_usd: optional(float, gt=0, le=100_000, allow_inf_nan=False) = Field(  # type: ignore[valid-type]
        default=None,
        description="Upper limit on the shipping price (insurance premium excluded), USD.",
    )


TODAYS_COST_MODEL: dict[str, Any] = {
    "risk_tolerance_usd": None,
    "duties_rate": 0.0,
    "untracked_claim_rate": 0.0,
    "defect_cost_usd": 0.0,
    "cancel_cost_usd": 0.0,
    "promised_days": None,
    "liability_paid_probability": 0.8,
    "refused_returned_share": 1.0,
    "postage_covered_share": 0.0,
}
"""Settings that reproduce the cost model before issue 16 (risk-neutral, no duties, no claims,
80 % carrier payouts, every refused parcel returns); the decision evaluation's honesty check.
Today's model also had no "do not ship" verdict (``evaluate_decisions(decline=False)``)."""


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
