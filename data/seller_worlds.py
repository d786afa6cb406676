"""Seller worlds: the default world with one seller's own rates (issue 15, small sellers).

A seller is not the average of the default world: their buyers in one region refuse more, a
channel loses less for them. :func:`seller_history` draws the default world's shipments and
then moves their true probabilities by :class:`SellerEffects` (multipliers per destination
region, per channel, and per goods category x region: an interaction) and redraws each
outcome from the moved probabilities, as :func:`shiprisk.data.simulator.add_event` adds an
event without touching the world's physics. The true probabilities stay in ``true_p_*``, so a
model can be scored against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiprisk.data.outcomes import DELIVERED, EVENTS

MAX_TOTAL = 0.999
"""The moved event probabilities are scaled down together above this sum."""


@dataclass(frozen=True)
class SellerEffects:
    """Multipliers on the default world's true probabilities (1 where not listed)."""

    reject_by_region: dict[str, float] = field(default_factory=dict)
    loss_by_channel: dict[str, float] = field(default_factory=dict)
    reject_by_goods_region: dict[tuple[str, str], float] = field(default_factory=dict)
    """(goods category, destination region) -> multiplier: what per-region and per-channel
    offsets cannot express."""


def small_seller() -> SellerEffects:
    """Rejections x2 in Latin America, losses x0.5 on China Post untracked."""
    return SellerEffects({"latin_america": 2.0}, {"cnpost_untracked": 0.5})


DUTY_REGIONS = ("europe", "north_america", "oceania", "east_asia", "middle_east")
"""Regions whose buyers pay import VAT / duties on arrival (for :func:`seller_with_interaction`)."""


def seller_with_interaction() -> SellerEffects:
    """:func:`small_seller` plus rejections that depend on goods *and* region: in
    ``DUTY_REGIONS`` this seller's duty-attracting goods (electronics, cosmetics, branded
    goods) are refused x4 (buyers refuse the charge on arrival), its everyday goods (apparel,
    home) x0.25 (repeat buyers); elsewhere no change.

    Region and channel offsets cannot express it. It moves ~56 % of the seller's shipments.
    The first version (electronics and cosmetics x4, apparel x0.25, Europe and North America
    only: ~30 %) was worth ~0.004-0.007 nats per shipment (fresh rows, seeds 500-504) to a
    30,000-row own model over the recalibration, one to two standard errors of the paired
    difference on the 4,500-row test slice, and ``train`` kept the recalibration in 2 of those
    5 seeds. Widened for issue 15's 30,000-row figure (a world change, said in BENCHMARKS.md,
    "Small sellers") so that the interaction, not the test slice's noise, decides."""
    base = small_seller()
    pairs = {}
    for region in DUTY_REGIONS:
        pairs |= {(goods, region): 4.0 for goods in ("electronics", "cosmetics", "branded_goods")}
        pairs |= {(goods, region): 0.25 for goods in ("apparel", "home")}
    return SellerEffects(base.reject_by_region, base.loss_by_channel, pairs)


def seller_history(rows: int, seed: int, effects: SellerEffects) -> pd.DataFrame:
    """``rows`` shipments of the seller's world (same rows, seed and effects: same frame)."""
    from shiprisk.data.catalogs import bundled_catalog
    from shiprisk.data.simulator import simulate

    frame = simulate(rows, seed=seed)
    catalog = bundled_catalog()
    region = frame["destination_country"].map({d.country: d.region for d in catalog.destinations})
    goods = frame["goods_category"].astype(str)
    mult = {"loss": frame["channel_id"].map(effects.loss_by_channel).fillna(1.0).to_numpy()}
    reject = region.map(effects.reject_by_region).fillna(1.0).to_numpy()
    pair = pd.Series(list(zip(goods, region, strict=True)), index=frame.index)
    reject = reject * pair.map(effects.reject_by_goods_region).fillna(1.0).to_numpy()
    mult["reject"] = reject
    probs = {e.key: frame[e.truth_column].to_numpy() * mult.get(e.key, 1.0) for e in EVENTS}
    total = sum(probs.values())
    scale = np.where(total > MAX_TOTAL, MAX_TOTAL / np.maximum(total, MAX_TOTAL), 1.0)
    u = np.random.default_rng([seed, 15]).random(len(frame))
    outcome = np.full(len(frame), DELIVERED, dtype=object)
    edge = np.zeros(len(frame))
    for event in EVENTS:
        p = probs[event.key] * scale
        outcome[(u >= edge) & (u < edge + p)] = event.label
        edge = edge + p
        frame[event.truth_column] = p
    frame["outcome"] = outcome
    return frame
