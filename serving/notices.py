"""The warnings an answer carries, written once for ``POST /score`` and ``shiprisk score-open``.

A value the catalogs or the training data do not know is scored anyway (generic attributes,
an unseen category) and flagged, online and in batch alike, with the same words.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shiprisk.data.catalogs import Catalog


def shipment_warnings(
    catalog: Catalog, featurizer: Any, country: str, channel_ids: Iterable[str | None]
) -> list[str]:
    """Warnings for one shipment to ``country`` on the listed channels (chosen first)."""
    out = []
    if country not in catalog.country_index:
        out.append(
            f"destination_country {country} is not in the destination catalog: scored as "
            "an unknown destination (zone 5, risk tier 2); treat the figures with care"
        )
    for cid in dict.fromkeys(c for c in channel_ids if c is not None):
        if cid not in catalog.channel_index:
            out.append(
                f"channel_id {cid} is not in the channel catalog: scored with generic "
                "channel attributes and never recommended"
            )
        elif not featurizer.is_known("channel_id", cid):
            out.append(
                f"channel_id {cid} did not occur in the training data: scored from its catalog "
                "attributes (type, tracking, liability, transit) until a model has seen it"
            )
    if country in catalog.country_index and not featurizer.is_known("destination_country", country):
        out.append(
            f"destination_country {country} did not occur in the training data: scored from "
            "its catalog attributes (zone, tiers, COD share)"
        )
    return out


def no_recommendation_warning(reason: str) -> str:
    """The warning added when no channel can be recommended (``reason`` says why)."""
    return f"no recommendation: {reason}"


def uncertain_warning(
    channel_id: str,
    support: int,
    events: int,
    value_usd: float,
    tier: int,
    support_min: int,
    support_min_events: int,
) -> str:
    """The warning added when the recommended channel's estimate rests on few comparable
    training shipments (its cell: channel x declared-value band x destination risk tier)."""
    from shiprisk.models.support import VALUE_BANDS, value_band

    band = VALUE_BANDS[int(value_band(value_usd))]
    return (
        f"the recommendation rests on an uncertain estimate: the model saw only "
        f"{support} training shipments ({events} losses or rejections "
        f"at the fewest) on {channel_id} with a declared value of {band} USD to a "
        f"risk tier-{tier} destination (uncertain below {support_min} shipments or "
        f"{support_min_events} events); its risks there lean on other channels "
        "and values"
    )
