"""'Do not ship as is': what the seller can do instead, each valued by the one scoring path.

When every channel's expected profit is negative (or no channel accepts the shipment), the
answer lists alternatives with their expected profit: ask for prepayment instead of cash on
delivery, confirm the order and address with the buyer, ship DDP, and decline the order.
Each changed order is scored again by :func:`shiprisk.decisions.scoring.score` (model and
policy), so an alternative's figure is what the same policy expects for that order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shiprisk.data.catalogs import Catalog
from shiprisk.decisions.actions import changed_order
from shiprisk.decisions.candidates import shipment_arrays
from shiprisk.decisions.costs import Constraints, SellerCosts
from shiprisk.models.risk_model import RiskModel

VERDICTS = ("ship", "do_not_ship_as_is", "no_channel")
"""``ship``: the recommendation earns >= 0 in the seller's utility; ``do_not_ship_as_is``:
every option loses money (the alternatives say what to do); ``no_channel``: no channel
accepts the shipment (the reason and the change that makes it shippable are listed)."""

CHANGES: tuple[tuple[str, str, Any, str], ...] = (
    # code, record field, new value, text
    (
        "require_prepayment",
        "payment_method",
        "prepaid",
        "Ask the buyer to pay before shipping instead of cash on delivery.",
    ),
    (
        "confirm_with_buyer",
        "address_quality",
        "verified",
        "Confirm the order and the address with the buyer before shipping. The figure "
        "assumes a verified address; the model measures no other effect of a confirmation.",
    ),
    (
        "ship_ddp",
        "duties_terms",
        "DDP",
        "Ship DDP (prepay the duties) so the buyer owes nothing on delivery. The figure "
        "counts the duties you then pay.",
    ),
)

REFUSAL_TEXT = {
    "weight": "weight above their limit",
    "length": "longest side above their limit",
    "girth": "length + girth above their limit",
    "value": "value above their limit",
    "destination": "no delivery to {country}",
    "goods": "{goods} not accepted",
    "cod": "no cash on delivery",
}
"""How :func:`no_channel_reason` names each check of ``Catalog.refusals``."""


@dataclass(frozen=True)
class Alternative:
    code: str
    text: str
    expected_profit_usd: float | None
    """Expected profit of the order with this change on its best channel (None = still no
    channel accepts it); for ``decline``, minus the cancellation cost."""
    channel_id: str | None = None


def verdicts(best_utility: np.ndarray) -> np.ndarray:
    """Per shipment, from its recommendation's certainty-equivalent profit (NaN = none):
    ``ship`` (>= 0), ``do_not_ship_as_is`` (< 0) or ``no_channel``."""
    best = np.asarray(best_utility, dtype=float)
    out = np.full(best.shape, "no_channel", dtype=object)
    finite = np.isfinite(best)
    out[finite] = np.where(best[finite] >= 0, "ship", "do_not_ship_as_is")
    return out


def verdict(ship_utility: float | None) -> str:
    """The verdict of one shipment (:func:`verdicts` of one)."""
    return str(verdicts(np.array([np.nan if ship_utility is None else ship_utility]))[0])


def no_channel_reason(catalog: Catalog, record: Mapping[str, Any]) -> str:
    """Why no catalog channel accepts ``record``: the refusals, counted over the channels."""
    refused = catalog.refusals(**shipment_arrays(catalog, [record]))
    counts: Counter[str] = Counter()
    for check, mask in refused.items():
        counts[check] = int(mask[0].sum())
    words = {"country": record["destination_country"], "goods": record["goods_category"]}
    total = len(catalog.channel_ids)
    parts = [
        f"{REFUSAL_TEXT[c].format(**words)} on {n} of {total}" for c, n in counts.most_common() if n
    ]
    return f"no channel accepts this shipment: {'; '.join(parts)}"


def alternatives(
    model: RiskModel,
    catalog: Catalog,
    records: Sequence[Mapping[str, Any]],
    costs: SellerCosts,
    constraints: Constraints | None = None,
) -> list[list[Alternative]]:
    """Per record: the changes that apply, each scored, plus declining the order, best
    expected profit first (declining after a change of equal profit). Every changed order of
    every record goes through ONE call of the scoring path (one model call)."""
    from shiprisk.decisions.scoring import score  # scoring is this module's caller's path

    changed: list[tuple[int, str, str, dict[str, Any]]] = [
        (i, code, text, changed_order(record, field, value))
        for i, record in enumerate(records)
        for code, field, value, text in CHANGES
        if record.get(field) != value or code == "confirm_with_buyer"  # always worth asking
    ]
    out: list[list[Alternative]] = [[] for _ in records]
    if changed:
        scored = score(model, catalog, [r for *_, r in changed], costs, constraints=constraints)
        d = scored.decision
        for row, (i, code, text, _) in enumerate(changed):
            rec = int(d.recommended[row])
            profit = float(d.expected_profit[row, rec]) if rec >= 0 else None
            channel = str(scored.channel_ids[row, rec]) if rec >= 0 else None
            out[i].append(Alternative(code, text, profit, channel))
    decline = Alternative(
        "decline",
        "Decline (cancel) the order: a seller cancellation is a marketplace defect.",
        -float(costs.cancel_cost_usd),
    )
    for options in out:
        options.append(decline)
        options.sort(
            key=lambda a: np.inf if a.expected_profit_usd is None else -a.expected_profit_usd
        )
    return out
