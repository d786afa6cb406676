"""The catalog attributes the features read, per channel and per destination.

Training snapshots them into the pipeline (a stored model keeps meaning the same thing when
the catalog changes); at load, a channel or country of today's catalog that the snapshot
lacks is encoded from today's attributes (:func:`live_attributes`): a seller's new channel is
scored from its type, tracking, liability and transit, with a warning, until a model has
seen it (docs/catalog.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from shiprisk.data.catalogs import Catalog
from shiprisk.features.definitions import (
    CHANNEL_ATTRS,
    DESTINATION_ATTRS,
    UNKNOWN_CHANNEL,
    ZONE_SLOTS,
)


def destination_attributes(catalog: Catalog) -> dict[str, list[float]]:
    """Country -> the destination attributes the features use (``DESTINATION_ATTRS``)."""
    return {
        d.country: [float(getattr(d, a)) for a in DESTINATION_ATTRS] for d in catalog.destinations
    }


def channel_attributes(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """Channel id -> the channel attributes the features use, transit by zone slot."""
    tmin, tmax = catalog.transit_days(np.arange(ZONE_SLOTS))  # (zones, C)
    return {
        ch: {
            **{a: float(catalog.channel_column(a)[j]) for a in CHANNEL_ATTRS},
            "transit_min": [
                _nan_to(tmin[z, j], UNKNOWN_CHANNEL["transit_min"]) for z in range(ZONE_SLOTS)
            ],
            "transit_max": [
                _nan_to(tmax[z, j], UNKNOWN_CHANNEL["transit_max"]) for z in range(ZONE_SLOTS)
            ],
        }
        for j, ch in enumerate(catalog.channel_ids)
    }


def live_attributes(
    catalog: Catalog, channels: Mapping[str, Any], destinations: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Today's attributes of the channels and countries a stored snapshot lacks."""
    return {
        "channels": {c: a for c, a in channel_attributes(catalog).items() if c not in channels},
        "destinations": {
            c: a for c, a in destination_attributes(catalog).items() if c not in destinations
        },
    }


def _nan_to(value: float, default: float) -> float:
    return default if np.isnan(value) else float(value)
