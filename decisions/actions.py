"""Seller actions that lower a shipment's risk, from its own fields (a small rule table).

Each rule is data: a code, a plain-words text and a predicate over a :class:`Facts` view of
the shipment, its destination and the recommended channel. :func:`mitigations` returns the
rules that apply, in table order (address first: it causes most failed deliveries).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shiprisk.data.catalogs import UNKNOWN_DESTINATION, Channel, Destination, load_catalog
from shiprisk.data.contract import SOFT_PACKAGING, VALUABLE_GOODS

TRACKED_CHANNEL_ABOVE_USD = 50.0
"""Above this declared value (USD) an untracked recommendation gets a 'use tracking' action."""


def _yes(value: Any) -> bool:
    """A true/false field that is known and true (absent: None or NaN, is not)."""
    return value is not None and value == value and bool(value)


@dataclass(frozen=True)
class Facts:
    """What the rules look at: the shipment record plus destination and channel facts."""

    record: Mapping[str, Any]
    country: str
    risk_tier: int
    customs_tier: int
    requires_tax_id: bool
    channel_tracking: str | None
    channel_name: str
    value_usd: float


@dataclass(frozen=True)
class Rule:
    code: str
    text: str
    applies: Callable[[Facts], bool]


RULES: tuple[Rule, ...] = (
    Rule(
        "verify_address",
        "Confirm the address with the buyer before shipping: it was not verified or had to "
        "be corrected, and address errors cause most failed deliveries.",
        lambda f: f.record.get("address_quality") in ("unverified", "corrected"),
    ),
    Rule(
        "use_box",
        "Ship in a box instead of an envelope or poly mailer: valuable or fragile goods in "
        "soft packaging are damaged and lost more often.",
        lambda f: (
            f.record.get("packaging") in SOFT_PACKAGING
            and (f.record.get("goods_category") in VALUABLE_GOODS or _yes(f.record.get("fragile")))
        ),
    ),
    Rule(
        "remove_valuable_wording",
        "Remove words like 'gold', 'jewelry' or 'phone' from the outer label: they invite theft.",
        lambda f: _yes(f.record.get("valuable_wording")),
    ),
    Rule(
        "switch_to_prepaid",
        "Ask for prepayment instead of cash on delivery: buyers in {country} often refuse "
        "COD parcels.",
        lambda f: f.record.get("payment_method") == "cod" and f.risk_tier >= 2,
    ),
    Rule(
        "ship_ddp",
        "Ship DDP (pay the duties yourself): in {country} buyers often refuse parcels with "
        "duties to pay on delivery.",
        lambda f: f.record.get("duties_terms") == "DDU" and f.customs_tier >= 2,
    ),
    Rule(
        "add_tax_id",
        "Add the recipient's tax id to the customs form: {country} customs return parcels "
        "without it.",
        lambda f: f.requires_tax_id and f.record.get("recipient_tax_id_present") in (False, 0),
    ),
    Rule(
        "use_tracked_channel",
        "Choose a tracked channel instead of {channel}: a parcel worth {value:.0f} USD "
        "cannot be traced or claimed without tracking.",
        lambda f: f.channel_tracking == "none" and f.value_usd > TRACKED_CHANNEL_ABOVE_USD,
    ),
)


def mitigations(
    record: Mapping[str, Any],
    *,
    destination: Destination | None,
    recommended_channel: Channel | None,
    value_usd: float | None = None,
) -> list[dict[str, str]]:
    """The actions that apply to this shipment, as ``{"code", "text"}`` dicts.

    ``destination`` None means a country the catalog does not know (scored with the
    catalog's unknown-destination tiers); ``recommended_channel`` None means no
    recommendation. ``value_usd`` defaults to the declared value converted at catalog rates.
    """
    if value_usd is None:
        rate = load_catalog().usd_rate([record["currency"]])[0]
        value_usd = float(record["declared_value"]) * float(rate)
    facts = Facts(
        record=record,
        country=destination.name if destination else str(record["destination_country"]),
        risk_tier=destination.risk_tier if destination else UNKNOWN_DESTINATION["risk_tier"],
        customs_tier=(
            destination.customs_tier if destination else UNKNOWN_DESTINATION["customs_tier"]
        ),
        requires_tax_id=bool(destination and destination.requires_tax_id),
        channel_tracking=recommended_channel.tracking if recommended_channel else None,
        channel_name=recommended_channel.name if recommended_channel else "",
        value_usd=value_usd,
    )
    words = {"country": facts.country, "channel": facts.channel_name, "value": value_usd}
    return [{"code": r.code, "text": r.text.format(**words)} for r in RULES if r.applies(facts)]
