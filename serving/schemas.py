"""API request and response models, derived from the shipment contract.

``ScoreRequest`` *is* the contract's ``ShipmentRequest`` plus the seller's optional
constraints and cost overrides, so the API, the pipeline and file validation share one
schema. Responses are plain pydantic models (BentoML serialises them as JSON).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)

from shiprisk.data.catalogs import Tracking
from shiprisk.data.contract import ShipmentRequest
from shiprisk.data.outcomes import EVENT_KEYS, EVENTS
from shiprisk.decisions.costs import ACTION_MIN_SAVING_USD, Constraints, SellerCosts, cents

HARD_MAX_BATCH = 10_000
"""Schema-level ceiling; the configurable limit (smaller) answers 413 in the handler."""
EXAMPLE_FILE = Path(__file__).with_name("score_example.json")
"""A real ``/score`` answer (the README's request, the main job's model): the OpenAPI example."""
SCORE_EXAMPLE: dict[str, Any] = json.loads(EXAMPLE_FILE.read_text())


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
    sale_value: float | None = Field(
        default=None,
        gt=0,
        le=1e9,
        allow_inf_nan=False,
        description="What the buyer paid for the goods, in `currency`, when it differs from "
        "declared_value (an under-declared parcel): refunds are of the sale value, carrier "
        "liability and insurance pay on the declared value. Default: declared_value.",
    )
    extra: dict[str, StrictFloat | StrictInt | StrictStr] | None = Field(
        default=None,
        description="Seller extra features (declared in the history mapping's `extras`, "
        "docs/history.md): name -> a number, or one of the declared values. Checked against "
        "the served model's list: a name it lacks is a 400 (or ignored with a warning under "
        "SHIPRISK_UNKNOWN_FIELDS=ignore), a wrong type a 400; a name left out is unknown.",
        examples=[{"sales_channel": "web"}],
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    shipments: list[ScoreRequest] = Field(
        min_length=1,
        max_length=HARD_MAX_BATCH,
        description="The shipments to score (at most SHIPRISK_MAX_BATCH, default 100).",
    )


def _probabilities() -> dict[str, Any]:
    """One ``p_<event>`` field per event of the outcome spec (``data/outcomes.py``)."""
    return {
        o.probability: (
            float,
            Field(
                ge=0,
                le=1,
                description=f"Probability the parcel ends {o.label}: {o.description} "
                "(0 to 1, calibrated; not rounded).",
            ),
        )
        for o in EVENTS
    }


Money = Annotated[float, AfterValidator(cents)]
"""A USD amount in an answer: rounded to the cent where the answer is built."""


def _money(description: str) -> Any:
    return Field(description=f"{description} USD, rounded to the cent.")


_PRICE = "Shipping price on this channel (the quote sent, else the catalog price), in"
_PREMIUM = "Insurance premium for this parcel on this channel; null if it cannot be insured. In"
_EXPECTED = (
    "Expected cost to the seller of shipping on this channel: price, plus each outcome's "
    "probability x its cost, plus the delay cost, plus the premium when insured, minus the "
    "expected insurance payout (docs/policy.md); null if not scored. In"
)

ChannelScore = create_model(
    "ChannelScore",
    __doc__="One candidate channel for the shipment: eligibility, risks, price and cost.",
    channel_id=(str, Field(description="Channel id from the channel catalog (or as sent).")),
    name=(str | None, Field(None, description="Channel's display name; null if unknown.")),
    carrier=(str | None, Field(None, description="Carrier id (e.g. 'dhl'); null if unknown.")),
    requested=(
        bool,
        Field(description="The request named this channel (channel_id or candidates)."),
    ),
    eligible=(
        bool,
        Field(
            description="The channel accepts this shipment (weight, size, destination, goods, "
            "COD, value)."
        ),
    ),
    ineligible_reasons=(
        list[str],
        Field(
            [],
            description="Why the channel refuses the shipment, in plain words; empty if eligible.",
        ),
    ),
    allowed=(
        bool,
        Field(
            description="Eligible, scored and within the seller's constraints: can be recommended."
        ),
    ),
    blocked_reasons=(
        list[str],
        Field(
            [],
            description="Which of the seller's constraints rule this channel out; empty if none.",
        ),
    ),
    **_probabilities(),
    price_usd=(Money | None, _money(_PRICE)),
    price_estimated=(
        bool,
        Field(
            False,
            description="The price is an estimate: the request left out the weight or a side "
            "and quoted no price for this channel, so it is the catalog price at the "
            "channel's minimum chargeable weight (or the size or weight given).",
        ),
    ),
    premium_usd=(Money | None, _money(_PREMIUM)),
    insure=(
        bool,
        Field(
            description="Buy insurance on this channel: true when insuring raises the "
            "certainty equivalent (premium vs expected payout, weighed by the seller's "
            "risk_tolerance_usd; docs/policy.md)."
        ),
    ),
    expected_cost_usd=(Money | None, _money(_EXPECTED)),
    expected_cost_uninsured_usd=(
        Money | None,
        _money("Expected cost on this channel without insurance; null if not scored. In"),
    ),
    transit_days=(
        float | None,
        Field(
            None,
            description="Expected (mean) transit days, customs hold included; null if unknown.",
        ),
    ),
    tracking=(
        Tracking | None,
        Field(
            None,
            description="Tracking level: none, partial (a tracking number; scans may stop) "
            "or full.",
        ),
    ),
    expected_profit_usd=(
        Money | None,
        _money(
            "Margin on the sale minus expected_cost_usd (docs/policy.md); null if not scored. In"
        ),
    ),
    certainty_equivalent_usd=(
        Money | None,
        Field(
            None,
            description="The profit the seller values this channel at, given its risk "
            "tolerance (costs.risk_tolerance_usd); the recommendation is the allowed channel "
            "where it is highest. USD, rounded to the cent; null if not scored.",
        ),
    ),
    support=(
        int | None,
        Field(
            default=None,
            description="Training shipments the model saw in this channel's cell (same "
            "channel, declared-value band and destination risk tier); null: the model "
            "records no counts",
        ),
    ),
    support_events=(
        int | None,
        Field(
            default=None,
            description="The fewest training events of any outcome (e.g. losses) in that "
            "cell; null: the model records no counts",
        ),
    ),
    uncertain=(
        bool,
        Field(
            default=False,
            description="The estimate rests on few comparable training shipments: fewer "
            "than SHIPRISK_SUPPORT_MIN shipments or SHIPRISK_SUPPORT_MIN_EVENTS events in its "
            "cell; treat its risks with care",
        ),
    ),
)

Recommendation = create_model(
    "Recommendation",
    __doc__="The allowed channel the seller values most (highest certainty equivalent), "
    "with its insure decision.",
    channel_id=(str, Field(description="The recommended channel.")),
    insure=(bool, Field(description="Buy insurance on the recommended channel.")),
    **_probabilities(),
    price_usd=(Money, _money("Shipping price on the recommended channel, in")),
    premium_usd=(Money | None, _money("Insurance premium there; null if it cannot be insured. In")),
    expected_cost_usd=(
        Money,
        _money("Expected cost on the recommended channel (see channels), in"),
    ),
    cheapest_channel_id=(
        str | None,
        Field(
            description="The eligible channel with the lowest price (constraints aside); "
            "null if none."
        ),
    ),
    saving_vs_cheapest_usd=(
        Money | None,
        _money(
            "Expected cost of the cheapest channel minus the recommendation's (negative "
            "when the recommendation buys safety the seller's risk tolerance asks for, or the "
            "constraints rule the cheaper choice out); null if there is no cheapest channel. In"
        ),
    ),
    expected_profit_usd=(
        Money | None,
        _money("Margin on the sale minus expected_cost_usd on the recommended channel, in"),
    ),
    certainty_equivalent_usd=(
        Money | None,
        _money(
            "The profit the seller values the recommendation at, given its risk tolerance "
            "(costs.risk_tolerance_usd): what the recommendation maximises. In"
        ),
    ),
    support=(
        int | None,
        Field(default=None, description="The recommended channel's support (see ChannelScore)."),
    ),
    uncertain=(
        bool,
        Field(
            default=False,
            description="The recommendation rests on an uncertain estimate: the recommended "
            "channel's (see ChannelScore.uncertain); a warning says which",
        ),
    ),
)


class Reason(BaseModel):
    """One factor behind a risk on the recommended channel, in the seller's words."""

    outcome: Literal[EVENT_KEYS] = Field(  # type: ignore[valid-type]
        description="The outcome this factor raises (an event of the outcome spec)."
    )
    factor: str = Field(description="Factor name, e.g. 'destination', 'payment', 'address'.")
    fields: list[str] = Field(description="The request fields this factor stands for.")
    text: str = Field(description="The factor phrased from the shipment's own values.")
    contribution: float = Field(
        description="How much the factor raises the outcome's log-odds over a typical "
        "shipment's (always above 0; larger = stronger)."
    )


class Action(BaseModel):
    """A step the seller can take that lowers the expected cost, measured by re-scoring."""

    code: str = Field(
        description="Stable id of the action: verify_address, use_box, "
        "remove_valuable_wording, switch_to_prepaid, ship_ddp, add_tax_id or switch_channel "
        "(ship on the recommended channel instead of the request's channel_id)."
    )
    text: str = Field(description="What to do and why, in one or two sentences.")
    saving_usd: Money = _money(
        "How much the action lowers the expected cost: the order scored again with the change "
        "on the recommended channel (switch_channel: the request's channel vs the "
        "recommendation), the expected costs rounded to the cent, then subtracted. Actions "
        "are shown only above costs.action_min_saving_usd (default "
        f"{ACTION_MIN_SAVING_USD:.2f}), largest first. In"
    )


class Alternative(BaseModel):
    """An order change (or declining it) with the expected profit the policy sees for it."""

    code: str = Field(
        description="Stable id: require_prepayment, confirm_with_buyer, ship_ddp or decline."
    )
    text: str = Field(description="What the seller would do, in one sentence.")
    expected_profit_usd: Money | None = Field(
        description="Expected profit on the changed order's best channel, USD rounded to the "
        "cent; null = still no channel accepts it."
    )
    channel_id: str | None = Field(
        None, description="The channel the changed order would ship on; null if none."
    )


class ModelRef(BaseModel):
    """The exact model that produced an answer."""

    name: str = Field(description="Registered model name.")
    version: str = Field(description="MLflow registry version of the model served.")
    digest: str = Field(description="Content digest of the model files (first 16 hex digits).")


class CatalogRef(BaseModel):
    """The catalog (channels, prices, destinations) an answer was priced and decided on."""

    version: str = Field(
        description="The catalog's declared version, else 'sha256:' + a content hash of its "
        "files (docs/catalog.md): a price change gives a new version, no retraining."
    )
    source: Literal["bundled", "seller"] = Field(
        description="'bundled' (the package's catalog) or 'seller' (SHIPRISK_CATALOG_DIR)."
    )
    origin: str = Field(description="ISO country the catalog's channels ship from.")


class ScoreResponse(BaseModel):
    """The answer for one shipment (docs/policy.md explains every figure)."""

    model_config = ConfigDict(json_schema_extra={"example": SCORE_EXAMPLE})

    order_id: str = Field(description="The request's order_id, echoed.")
    channels: list[ChannelScore] = Field(  # type: ignore[valid-type]
        description="Every candidate channel (the request's list, else every eligible one)."
    )
    recommendation: Recommendation | None = Field(  # type: ignore[valid-type]
        description="The channel to use and whether to insure; null when none is allowed."
    )
    no_recommendation_reason: str | None = Field(
        None, description="Why there is no recommendation; null when there is one."
    )
    reasons: list[Reason] = Field(
        description="Up to three factors per outcome that raise its risk most on the "
        "recommended channel; empty without a recommendation."
    )
    actions: list[Action] = Field(
        description="Seller actions that lower the expected cost by more than "
        "costs.action_min_saving_usd, each with its measured saving, largest first; empty "
        "without a recommendation."
    )
    warnings: list[str] = Field(
        description="Things to know about this answer (unknown country or channel, no "
        "recommendation); empty when none."
    )
    model: ModelRef = Field(description="The model that produced the answer.")
    catalog: CatalogRef | None = Field(
        default=None, description="The catalog the answer was priced and decided on."
    )
    sources: dict[str, Literal["model", "prior", "recalibrated"]] = Field(
        default={},
        description="Per outcome (e.g. 'loss', 'reject'): 'model' = the seller's trained model "
        "head; 'recalibrated' = the bundled base model's head recalibrated to the seller's "
        "history (a small history; docs/history.md); 'prior' = the documented prior (the "
        "history had too few such events to train a head; docs/history.md).",
    )
    verdict: Literal["ship", "do_not_ship_as_is", "no_channel"] | None = Field(
        default=None,
        description="ship; do_not_ship_as_is = every option loses money (see alternatives); "
        "no_channel = no channel accepts the shipment (see verdict_reason, alternatives).",
    )
    verdict_reason: str | None = Field(
        None, description="Why the verdict is not 'ship', in plain words; null when it is."
    )
    alternatives: list[Alternative] = Field(
        default=[],
        description="When the verdict is not 'ship': order changes and declining, each with "
        "its expected profit, best first; empty otherwise.",
    )


class BatchResponse(BaseModel):
    """The answers for a batch, in request order."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"results": [SCORE_EXAMPLE], "model": SCORE_EXAMPLE["model"]}}
    )

    results: list[ScoreResponse] = Field(description="One answer per shipment, in the order sent.")
    model: ModelRef = Field(description="The model that produced the answers.")


class FieldError(BaseModel):
    """One problem with the request."""

    field: str = Field(
        description="Dotted path of the contract field at fault (e.g. 'candidates.0.channel_id'); "
        "'body' for the body as a whole or an unknown key."
    )
    reason: str = Field(description="What is wrong with it, never quoting the value sent.")


class ErrorBody(BaseModel):
    """Every 4xx answer: what went wrong and, for bad input, which fields and why."""

    error: str = Field(description="What went wrong, one fixed text per status.")
    fields: list[FieldError] = Field(
        [], description="For bad input, each field at fault and why; empty otherwise."
    )
