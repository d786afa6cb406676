"""Seller actions: which order changes apply, and which are worth showing (a small table).

Each action changes one field of the order (``switch_channel`` changes the channel). The
table only says whether an action *applies*: the field is known and can be changed. Whether
it is *shown* depends on what it is worth, measured by scoring the changed order again
through the one scoring path (:func:`shiprisk.decisions.action_savings.measured_actions`):
shown when the expected cost falls by more than the seller's ``action_min_saving_usd``
(default :data:`~shiprisk.decisions.costs.ACTION_MIN_SAVING_USD`), with that saving. This
module needs no model: the table, the changed order and the arithmetic of the saving.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shiprisk.data.catalogs import Destination
from shiprisk.data.contract import SOFT_PACKAGING
from shiprisk.decisions.candidates import DUTIES_ABSORBED
from shiprisk.decisions.costs import cents


def _yes(value: Any) -> bool:
    """A true/false field that is known and true (absent: None or NaN, is not)."""
    return value is not None and value == value and bool(value)


@dataclass(frozen=True)
class Change:
    """An action that changes one field of the order; ``applies`` reads the order and its
    destination (None = a country the catalog does not know)."""

    code: str
    field: str
    value: Any
    text: str
    applies: Callable[[Mapping[str, Any], Destination | None], bool]


CHANGES: tuple[Change, ...] = (
    Change(
        "verify_address",
        "address_quality",
        "verified",
        "Confirm the address with the buyer before shipping: it was not verified or had to "
        "be corrected. This lowers the expected cost by {saving:.2f} USD.",
        lambda r, d: r.get("address_quality") in ("unverified", "corrected"),
    ),
    Change(
        "use_box",
        "packaging",
        "box",
        "Ship in a box instead of an envelope or poly mailer (same size and weight). This "
        "lowers the expected cost by {saving:.2f} USD.",
        lambda r, d: r.get("packaging") in SOFT_PACKAGING,
    ),
    Change(
        "remove_valuable_wording",
        "valuable_wording",
        False,
        "Remove words like 'gold', 'jewelry' or 'phone' from the outer label: they invite "
        "theft. This lowers the expected cost by {saving:.2f} USD.",
        lambda r, d: _yes(r.get("valuable_wording")),
    ),
    Change(
        "switch_to_prepaid",
        "payment_method",
        "prepaid",
        "Ask for prepayment instead of cash on delivery: buyers in {country} refuse COD "
        "parcels more often. This lowers the expected cost by {saving:.2f} USD.",
        lambda r, d: r.get("payment_method") == "cod",
    ),
    Change(
        "ship_ddp",
        "duties_terms",
        "DDP",
        "Ship DDP: you pay the duties (about {duties:.2f} USD) so the buyer in {country} owes "
        "nothing on delivery. Net of those duties this lowers the expected cost by "
        "{saving:.2f} USD.",
        lambda r, d: r.get("duties_terms") == "DDU",
    ),
    Change(
        "add_tax_id",
        "recipient_tax_id_present",
        True,
        "Add the recipient's tax id to the customs form: {country} customs return parcels "
        "without it. This lowers the expected cost by {saving:.2f} USD.",
        lambda r, d: (
            bool(d and d.requires_tax_id) and r.get("recipient_tax_id_present") in (False, 0)
        ),
    ),
)
"""The order changes, in the order shown when their savings are equal."""

SWITCH_CHANNEL = "switch_channel"
SWITCH_TEXT = (
    "Ship on {channel} as recommended instead of {chosen}: the expected cost is "
    "{saving:.2f} USD lower."
)
"""The 'another channel' action: only where the seller's channel is not the recommendation."""

ACTION_CODES: tuple[str, ...] = (*(c.code for c in CHANGES), SWITCH_CHANNEL)


@dataclass(frozen=True)
class Action:
    """A shown action: what to do, and how much expected cost it saves (USD, cents)."""

    code: str
    text: str
    saving_usd: float


def applicable(record: Mapping[str, Any], destination: Destination | None) -> list[Change]:
    """The changes that apply to this order (its field is known and can be changed)."""
    return [c for c in CHANGES if c.applies(record, destination)]


def changed_order(record: Mapping[str, Any], field: str, value: Any) -> dict[str, Any]:
    """``record`` with ``field`` set to ``value``, with the change's own cost: an order sold
    DDU and shipped DDP has the seller pay the duties (the buyer's price did not include
    them), so the changed order carries the cost-side flag ``duties_absorbed``."""
    out = {**record, field: value}
    if field == "duties_terms" and value == "DDP" and record.get(field) == "DDU":
        out[DUTIES_ABSORBED] = True
    return out


def saving_usd(before: float, after: float) -> float | None:
    """Expected cost before minus after, from the figures rounded to the cent (so it adds up
    with the expected costs an answer shows); None when either is not scored."""
    if not (math.isfinite(before) and math.isfinite(after)):
        return None
    return cents(cents(before) - cents(after))


def shown(saving: float | None, threshold: float) -> bool:
    """An action is shown when it saves more than the threshold (USD)."""
    return saving is not None and saving > threshold
