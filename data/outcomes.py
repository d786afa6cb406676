"""The outcomes a shipment can end in: data, read from one file, the home of their names.

A history's ``outcome`` column holds ``delivered`` or one of the events listed in
``data/reference/outcomes.json`` (``SHIPRISK_OUTCOMES_FILE`` points elsewhere). The events are
mutually exclusive. Each names a model head (``key``), the probability the service returns
(``p_<key>``), the simulator's column with its true probability, and its role in the cost
model (``decisions/costs.py`` prices each role). Model heads, API fields, batch columns,
metrics, plots and the promotion gate all derive from this list.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from shiprisk.settings import OutcomeSpecError

CostRole = Literal["goods_lost", "returned"]
COST_ROLES: tuple[str, ...] = ("goods_lost", "returned")
"""``goods_lost``: the goods are gone (carrier liability and insurance pay out);
``returned``: the parcel comes back or is abandoned (return shipping, unrecoverable goods)."""
FILE_ENV = "SHIPRISK_OUTCOMES_FILE"


@dataclass(frozen=True)
class Outcome:
    """One event a parcel can end in, besides being delivered."""

    key: str
    """Head and metric name (``loss``); the answer's probability is ``p_<key>``."""
    label: str
    """Its value in a history's ``outcome`` column (``lost``)."""
    truth_column: str
    """The simulator's column with the event's true probability."""
    cost_role: str
    """How the decision prices the event (one of ``COST_ROLES``)."""
    description: str = ""

    @property
    def probability(self) -> str:
        return f"p_{self.key}"


def _spec_file() -> Path:
    override = os.environ.get(FILE_ENV)
    if override:
        return Path(override)
    return Path(str(resources.files("shiprisk.data") / "reference" / "outcomes.json"))


def _load() -> tuple[str, tuple[Outcome, ...]]:
    path = _spec_file()
    where = f"outcome spec {path} ({FILE_ENV})" if os.environ.get(FILE_ENV) else str(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        events = tuple(Outcome(**e) for e in raw["events"])
        delivered = str(raw["delivered"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutcomeSpecError(
            f"{where}: cannot be read as an outcome spec ({type(exc).__name__}: {exc}); "
            "see data/README.md, 'outcomes.json'"
        ) from None
    keys = [o.key for o in events]
    labels = [delivered, *(o.label for o in events)]
    problems = [
        *(f"duplicate key {k!r}" for k in set(keys) if keys.count(k) > 1),
        *(f"duplicate label {v!r}" for v in set(labels) if labels.count(v) > 1),
        *(
            f"{o.key}: unknown cost_role {o.cost_role!r}"
            for o in events
            if o.cost_role not in COST_ROLES
        ),
        *(f"{o.key}: key must be a lower-case word" for o in events if not o.key.isidentifier()),
    ]
    if not events or problems:
        raise OutcomeSpecError(f"{where}: " + ("; ".join(problems) or "no events listed"))
    return delivered, events


DELIVERED, EVENTS = _load()
"""``DELIVERED``: the ``outcome`` value of a parcel that arrived (no event)."""
EVENT_KEYS: tuple[str, ...] = tuple(o.key for o in EVENTS)
LABELS: tuple[str, ...] = (DELIVERED, *(o.label for o in EVENTS))
"""Every value of the ``outcome`` column; an event's position is its class code (0 = none)."""
LABEL_OF: dict[str, str] = {o.key: o.label for o in EVENTS}
TRUTH_COLUMNS: tuple[str, ...] = tuple(o.truth_column for o in EVENTS)
PROBABILITIES: tuple[str, ...] = tuple(o.probability for o in EVENTS)
"""The per-outcome probability names of answers and batch outputs (``p_loss``, ...)."""
