"""The outcomes a shipment can end in: the one home of their names.

A history's ``outcome`` column holds ``delivered`` or one of the events below; the events are
mutually exclusive. Each event names a model head (``key``), the probability the service
returns (``p_<key>``) and, for simulated histories, the column holding its true probability.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """One event a parcel can end in, besides being delivered."""

    key: str
    """Head and metric name (``loss``); the answer's probability is ``p_<key>``."""
    label: str
    """Its value in a history's ``outcome`` column (``lost``)."""
    truth_column: str
    """The simulator's column with the event's true probability."""

    @property
    def probability(self) -> str:
        return f"p_{self.key}"


DELIVERED = "delivered"
"""The ``outcome`` value of a parcel that arrived and was accepted: no event."""
EVENTS: tuple[Outcome, ...] = (
    Outcome("loss", "lost", "true_p_loss"),
    Outcome("reject", "rejected", "true_p_reject"),
)
EVENT_KEYS: tuple[str, ...] = tuple(o.key for o in EVENTS)
LABELS: tuple[str, ...] = (DELIVERED, *(o.label for o in EVENTS))
"""Every value of the ``outcome`` column; an event's position is its class code (0 = none)."""
LABEL_OF: dict[str, str] = {o.key: o.label for o in EVENTS}
TRUTH_COLUMNS: tuple[str, ...] = tuple(o.truth_column for o in EVENTS)
