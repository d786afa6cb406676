"""Heads where the labels allow: which outcomes a history can train, and the priors of the
others (docs/history.md, "Heads where the labels allow").

A marketplace export often records returns (rejections) but no losses; a carrier claims
export the reverse. Such a history trains a head for every outcome with at least
``MIN_EVENTS`` events in the training slice; each other outcome is scored from a prior
(``models/priors.py``): the catalog row's ``prior_<outcome>_rate`` if the catalog gives one,
else the simulated default world's rate for channels of the same type and tracking level
(``WORLD_PRIOR_ROWS`` shipments drawn with seed ``WORLD_PRIOR_SEED`` on the bundled catalog).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import pandas as pd

from shiprisk.data.catalogs import CHANNEL_TYPES, TRACKING_LEVELS, Catalog, bundled_catalog
from shiprisk.features.pipeline import ShipmentFeaturizer
from shiprisk.models.priors import OutcomePrior
from shiprisk.models.risk_model import OUTCOME_LABEL, OUTCOMES

WORLD_PRIOR_ROWS = 200_000
WORLD_PRIOR_SEED = 0


def trainable_heads(train: pd.DataFrame, min_events: int) -> tuple[list[str], list[str]]:
    """(outcomes with enough events in the training slice, the others)."""
    counts = train["outcome"].value_counts()
    heads = [o for o in OUTCOMES if int(counts.get(OUTCOME_LABEL[o], 0)) >= min_events]
    return heads, [o for o in OUTCOMES if o not in heads]


@lru_cache(maxsize=1)
def world_rates() -> dict[str, dict[str, dict[str, float]]]:
    """Per outcome: the default world's rate by channel type/tracking, by type, overall.

    Keys are the featurizer's codes (``channel_type``: index in ``CHANNEL_TYPES`` + 1;
    tracking: ``TRACKING_LEVELS``), so the prior reads them straight from a feature row."""
    from shiprisk.data.simulator import simulate

    catalog = bundled_catalog()
    frame = simulate(WORLD_PRIOR_ROWS, seed=WORLD_PRIOR_SEED, catalog=catalog)
    by_id = {c.id: c for c in catalog.channels}
    kind = frame["channel_id"].map(lambda c: CHANNEL_TYPES.index(by_id[c].channel_type) + 1)
    level = frame["channel_id"].map(lambda c: TRACKING_LEVELS[by_id[c].tracking])
    out = {}
    for outcome in OUTCOMES:
        hit = frame["outcome"] == OUTCOME_LABEL[outcome]
        if not hit.any():
            continue  # an outcome the world does not draw: no prior for it
        pair = hit.groupby([kind, level]).mean()
        out[outcome] = {
            "by_type_tracking": {f"{t}/{lv}": float(v) for (t, lv), v in pair.items()},
            "by_type": {str(t): float(v) for t, v in hit.groupby(kind).mean().items()},
            "default": {"all": float(hit.mean())},
        }
    return out


def build_priors(
    outcomes: Sequence[str], featurizer: ShipmentFeaturizer, catalog: Catalog
) -> dict[str, OutcomePrior]:
    """The prior of each outcome in ``outcomes`` (raises ValueError for one without any)."""
    world = world_rates()
    # The channel_id feature code of a channel seen in training: 1 + its position.
    codes = {c: i + 1 for i, c in enumerate(featurizer.categories_["channel_id"])}
    priors = {}
    for outcome in outcomes:
        if outcome not in world:
            raise ValueError(
                f"no '{OUTCOME_LABEL[outcome]}' events to train on and no prior for them"
            )
        rates = world[outcome]
        own = {
            str(codes[c.id]): float(rate)
            for c in catalog.channels
            if c.id in codes and (rate := getattr(c, f"prior_{outcome}_rate", None)) is not None
        }
        priors[outcome] = OutcomePrior(
            rates["default"]["all"], own, rates["by_type_tracking"], rates["by_type"]
        )
    return priors
