"""API request and response models, derived from the shipment contract.

``ScoreRequest`` *is* the contract's ``ShipmentRequest`` plus the seller's optional
constraints and cost overrides, so the API, the pipeline and file validation share one
schema. Responses are plain pydantic models (BentoML serialises them as JSON).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from shiprisk.data.catalogs import Tracking
from shiprisk.data.contract import ShipmentRequest
from shiprisk.data.outcomes import EVENT_KEYS, EVENTS
from shiprisk.decisions.costs import Constraints, SellerCosts

HARD_MAX_BATCH = 10_000
"""Schema-level ceiling; the configurable limit (smaller) answers 413 in the handler."""


class ScoreRequest(ShipmentRequest):
    """One shipment to score, optionally with candidate channels, constraints and costs."""

    # BentoML logs every validation error's text; without this, the text quotes the values
    # sent (a client's extra "buyer_name" field would land in the server log).
    model_config = ConfigDict(hide_input_in_errors=True)

    constraints: Constraints | None = Field(
        default=None, description="Seller's hard limits on the recommended channel."
    )
    costs: SellerCosts | None = Field(
        default=None, description="Overrides of the seller cost settings for this request."
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    shipments: list[ScoreRequest] = Field(min_length=1, max_length=HARD_MAX_BATCH)


def _probabilities() -> dict[str, Any]:
    """One ``p_<event>`` field per event of the outcome spec (``data/outcomes.py``)."""
    return {
        o.probability: (
            float,
            Field(
                ge=0, le=1, description=f"Probability the parcel ends {o.label}: {o.description}"
            ),
        )
        for o in EVENTS
    }


ChannelScore = create_model(
    "ChannelScore",
    channel_id=(str, ...),
    name=(str | None, None),
    carrier=(str | None, None),
    requested=(bool, Field(description="the request named this channel")),
    eligible=(bool, ...),
    ineligible_reasons=(list[str], []),
    allowed=(bool, Field(description="eligible and within the seller's constraints")),
    blocked_reasons=(list[str], []),
    **_probabilities(),
    price_usd=(float | None, None),
    premium_usd=(float | None, None),
    insure=(bool, ...),
    expected_cost_usd=(float | None, None),
    expected_cost_uninsured_usd=(float | None, None),
    transit_days=(float | None, None),
    tracking=(Tracking | None, None),
    support=(
        int | None,
        Field(
            default=None,
            description="training shipments the model saw in this channel's cell (same "
            "channel, declared-value band and destination risk tier); null: the model "
            "records no counts",
        ),
    ),
    support_events=(
        int | None,
        Field(
            default=None,
            description="the fewest training events of any outcome (e.g. losses) in that "
            "cell; null: the model records no counts",
        ),
    ),
    uncertain=(
        bool,
        Field(
            default=False,
            description="the estimate rests on few comparable training shipments: fewer "
            "than SHIPRISK_SUPPORT_MIN shipments or SHIPRISK_SUPPORT_MIN_EVENTS events in its "
            "cell; treat its risks with care",
        ),
    ),
)

Recommendation = create_model(
    "Recommendation",
    channel_id=(str, ...),
    insure=(bool, ...),
    **_probabilities(),
    price_usd=(float, ...),
    premium_usd=(float | None, ...),
    expected_cost_usd=(float, ...),
    cheapest_channel_id=(str | None, ...),
    saving_vs_cheapest_usd=(
        float | None,
        Field(
            description="expected cost of the cheapest eligible channel minus the recommendation's"
        ),
    ),
    support=(
        int | None,
        Field(default=None, description="the recommended channel's support (see ChannelScore)"),
    ),
    uncertain=(
        bool,
        Field(
            default=False,
            description="the recommendation rests on an uncertain estimate: the recommended "
            "channel's (see ChannelScore.uncertain); a warning says which",
        ),
    ),
)


class Reason(BaseModel):
    outcome: Literal[EVENT_KEYS]  # type: ignore[valid-type]
    factor: str
    fields: list[str]
    text: str
    contribution: float = Field(description="raise in the outcome's log-odds")


class Action(BaseModel):
    code: str
    text: str


class ModelRef(BaseModel):
    name: str
    version: str
    digest: str


class ScoreResponse(BaseModel):
    order_id: str
    channels: list[ChannelScore]  # type: ignore[valid-type]
    recommendation: Recommendation | None  # type: ignore[valid-type]
    no_recommendation_reason: str | None = None
    reasons: list[Reason]
    actions: list[Action]
    warnings: list[str]
    model: ModelRef


class BatchResponse(BaseModel):
    results: list[ScoreResponse]
    model: ModelRef


class FieldError(BaseModel):
    field: str
    reason: str


class ErrorBody(BaseModel):
    """Every 4xx answer: what went wrong and, for bad input, which fields and why."""

    error: str
    fields: list[FieldError] = []
