"""Actions with a measured effect: every applicable change re-scored by the one scoring path.

For each recommended shipment, every order change that applies
(:data:`shiprisk.decisions.actions.CHANGES`) is applied and the changed orders of ALL the
shipments (one request, a batch group or a batch chunk) go through ONE call of
:func:`shiprisk.decisions.scoring.score`. The saving is the recommended channel's expected
cost as is minus with the change (the cost model's own figure, with the insure choice the
policy makes for each order; docs/policy.md, "Seller actions"). ``switch_channel`` compares
the seller's own channel with the recommendation, both scored already.

Why the changed orders are scored on the recommended channel only: an action is advice on
top of the recommendation ("ship on X, and also do this"), so its figure is X's. Re-deciding
the channel would put a channel switch into the action's figure and could advise leaving the
recommended channel. It also keeps the request path cheap: one more model row per applicable
change (at most six), not one per change and eligible channel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from shiprisk.data.catalogs import Catalog
from shiprisk.decisions.actions import (
    CHANGES,
    SWITCH_CHANNEL,
    SWITCH_TEXT,
    Action,
    applicable,
    changed_order,
    saving_usd,
    shown,
)
from shiprisk.decisions.costs import SellerCosts, cents
from shiprisk.decisions.scoring import Scored, score
from shiprisk.models.risk_model import RiskModel


@dataclass(frozen=True)
class Recommended:
    """One recommended shipment, as the actions need it."""

    record: Mapping[str, Any]
    """The contract record as scored (with ``extra`` and ``sale_value`` where given)."""
    channel: Mapping[str, Any] | BaseModel
    """The recommended candidate as listed (``channel_id`` plus any quotes)."""
    expected_cost: float
    """Its exact expected cost (USD) on the recommended channel."""
    value_usd: float
    chosen_id: str | None = None
    """The seller's own channel when it is scored, allowed and not the recommendation."""
    chosen_expected_cost: float = math.nan
    price_usd: float = math.nan
    """The recommended channel's price."""
    sale_usd: float = math.nan
    """What the buyer paid (USD; the declared value when not given)."""

    def at_stake(self, costs: SellerCosts) -> float:
        """The most any order change can save: the expected cost minus the price. Under
        refunds with the sale worth at least the declared value every outcome costs >= 0
        (docs/policy.md, "Outcomes"), so no change brings the expected cost below the price;
        inf where that does not hold (reship, an over-declared parcel)."""
        if costs.reship_policy == "refund" and self.sale_usd >= self.value_usd:
            return self.expected_cost - self.price_usd
        return math.inf

    @property
    def channel_id(self) -> str:
        c = self.channel
        return str(c.channel_id if isinstance(c, BaseModel) else c["channel_id"])


def recommended_shipments(
    scored: Scored,
    records: Sequence[Mapping[str, Any]],
    *,
    chosen: Sequence[str | None] | None = None,
    candidates: Sequence[Sequence[Mapping[str, Any] | BaseModel] | None] | None = None,
) -> dict[int, Recommended]:
    """The shipments of ``scored`` that have a recommendation, by row: what
    :func:`measured_actions` needs, read the same way online (records) and in batch (frame).

    ``chosen``: each row's own channel (the request's ``channel_id``, the file's channel);
    it is compared when scored, allowed and not the recommendation. ``candidates``: the
    request's listed candidates (their quotes price the changed orders too)."""
    d = scored.decision
    out: dict[int, Recommended] = {}
    for i in np.flatnonzero(d.recommended >= 0).tolist():
        k = int(d.recommended[i])
        ids = scored.ids_of(i)
        listed = candidates[i] if candidates is not None else None
        entry = listed[k] if listed is not None else {"channel_id": ids[k]}
        own = chosen[i] if chosen is not None else None
        j = ids.index(own) if own and own in ids else -1
        compared = j >= 0 and j != k and bool(d.allowed[i, j])
        expected = float(d.expected_cost[i, k])
        value = float(scored.table.value_usd[i])
        sale = value if scored.table.sale_usd is None else float(scored.table.sale_usd[i])
        out[i] = Recommended(
            record=records[i],
            channel=entry,
            expected_cost=expected,
            value_usd=value,
            chosen_id=own if compared else None,
            chosen_expected_cost=float(d.expected_cost[i, j]) if compared else math.nan,
            price_usd=float(scored.table.price_usd[i, k]),
            sale_usd=sale,
        )
    return out


def measured_actions(
    model: RiskModel,
    catalog: Catalog,
    shipments: Sequence[Recommended],
    costs: SellerCosts,
    *,
    num_threads: int = 1,
) -> list[list[Action]]:
    """Per shipment, the actions worth more than ``costs.action_min_saving_usd``, largest
    saving first (table order on a tie). One scoring-path call for every change of every
    shipment (none when no change applies)."""
    threshold = float(costs.action_min_saving_usd)
    todo = [
        (i, change)
        for i, s in enumerate(shipments)
        if s.at_stake(costs) + _ROUNDING > threshold  # else no change can save more
        for change in applicable(s.record, catalog.destination_by_country.get(_country(s)))
    ]
    after: list[float] = []
    if todo:
        scored = score(
            model,
            catalog,
            [changed_order(shipments[i].record, c.field, c.value) for i, c in todo],
            costs,
            candidates=[[shipments[i].channel] for i, _ in todo],
            num_threads=num_threads,
        )
        after = scored.decision.expected_cost[:, 0].tolist()
    out: list[list[Action]] = [[] for _ in shipments]
    for (i, change), cost in zip(todo, after, strict=True):
        s = shipments[i]
        saving = saving_usd(s.expected_cost, cost)
        if shown(saving, threshold):
            words = {
                "saving": saving,
                "country": _country_name(catalog, s),
                "duties": cents(float(costs.duties_rate) * s.value_usd),
            }
            out[i].append(Action(change.code, change.text.format(**words), saving))
    for i, s in enumerate(shipments):
        if s.chosen_id is None or s.chosen_id == s.channel_id:
            continue
        saving = saving_usd(s.chosen_expected_cost, s.expected_cost)
        if shown(saving, threshold):
            words = {
                "channel": _channel_name(catalog, s.channel_id),
                "chosen": _channel_name(catalog, s.chosen_id),
                "saving": saving,
            }
            out[i].append(Action(SWITCH_CHANNEL, SWITCH_TEXT.format(**words), saving))
    order = {c.code: k for k, c in enumerate(CHANGES)}
    for found in out:
        found.sort(key=lambda a: (-a.saving_usd, order.get(a.code, len(order))))
    return out


_ROUNDING = 0.02
"""More than the two cent roundings a saving's figure can add (its expected costs are
rounded to the cent before they are subtracted)."""


def _country(s: Recommended) -> str:
    return str(s.record["destination_country"])


def _country_name(catalog: Catalog, s: Recommended) -> str:
    destination = catalog.destination_by_country.get(_country(s))
    return destination.name if destination else _country(s)


def _channel_name(catalog: Catalog, channel_id: str) -> str:
    index = catalog.channel_index.get(channel_id)
    return channel_id if index is None else f"{catalog.channels[index].name} ({channel_id})"
