"""Decisions against an oracle: what the recommendations are worth in the seller's utility.

The simulator knows each shipment's true probabilities on every eligible channel
(``data.physics.counterfactual_probabilities``). The oracle is the decision policy fed those
true probabilities; our policy is the same code fed the model's (the one scoring path).
Every choice - a channel, insured or not, or "decline the order" (worth -cancel_cost_usd) - is
then valued with the TRUE probabilities by the same ``policy.decide`` (one cost code path): the
seller's certainty-equivalent profit under the given ``SellerCosts`` (docs/policy.md). Naive
rules a seller might follow are valued the same way.

``share_of_oracle_saving`` = sum(U_ours - U_cheapest) / sum(U_oracle - U_cheapest), overall
and per segment (declared-value band, destination risk tier, payment method).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pandas as pd

from shiprisk.data.catalogs import TRACKING_LEVELS, Catalog, load_catalog
from shiprisk.data.outcomes import EVENT_KEYS
from shiprisk.decisions.candidates import shipment_arrays
from shiprisk.decisions.costs import SellerCosts
from shiprisk.decisions.policy import decide
from shiprisk.decisions.scoring import score
from shiprisk.models.risk_model import RiskModel

VALUE_BANDS_USD: tuple[float, ...] = (0.0, 20.0, 50.0, 100.0, 250.0, 500.0, np.inf)
"""Declared-value bands (USD, lower bound exclusive) of the per-segment shares."""
NAIVE_RULES: tuple[str, ...] = (
    "cheapest_eligible",
    "cheapest_tracked",
    "express",
    "insure_all",
    "tracked_insure_above_50",
)
"""Rules a seller might follow without a model: always ship, by list price (docs/policy.md)."""


@dataclass
class DecisionReport:
    n: int
    mean_utility: dict[str, float]
    """Mean true certainty-equivalent profit per shipment (USD) of each policy."""
    share_of_oracle_saving: float
    """sum(U_ours - U_cheapest) / sum(U_oracle - U_cheapest) over shipments."""
    saving_vs: dict[str, float]
    """Mean gain per shipment of our policy over each other policy (USD of utility)."""
    share_by_segment: dict[str, float] = field(default_factory=dict)
    """Same share within each segment ('value 50-100', 'risk tier 2', 'payment cod', ...)."""
    segment_sizes: dict[str, int] = field(default_factory=dict)
    same_choice_as_oracle: float = float("nan")
    """Share of shipments where ours = oracle (channel, insure and ship/decline)."""
    do_not_ship: dict[str, float] = field(default_factory=dict)
    """Share of shipments declined by ours and by the oracle."""
    mean_cost: dict[str, float] = field(default_factory=dict)
    """Mean true expected cost (USD) of each policy's choice where it ships (legacy view)."""


def evaluate_decisions(
    frame: pd.DataFrame,
    model: RiskModel | None,
    *,
    costs: SellerCosts | None = None,
    catalog: Catalog | None = None,
    decline: bool = True,
    probs: dict[str, np.ndarray] | None = None,
) -> DecisionReport:
    """Value ours, the oracle and the naive rules on ``frame`` with the true probabilities.

    ``decline=False`` removes the "do not ship" option from ours and the oracle (the cost
    model before issue 16 had none). ``probs`` (n, C) per event replaces the model (tests)."""
    from shiprisk.data.physics import counterfactual_probabilities

    catalog = catalog or load_catalog()
    costs = costs or SellerCosts()
    keep = catalog.eligible(**shipment_arrays(catalog, frame)).any(axis=1)
    frame = frame[keep].reset_index(drop=True)
    if probs is not None:
        probs = {o: p[keep] for o, p in probs.items()}
    scored = _our_decision(model, catalog, frame, costs, probs)
    table, ours = scored
    eligible = table.eligible
    n = len(eligible)
    idx = np.arange(n)

    counterfactual = counterfactual_probabilities(frame, catalog=catalog)
    truth = {o: np.nan_to_num(counterfactual[f"p_{o}"]) for o in EVENT_KEYS}
    true = decide(table, truth, costs)  # the oracle, and the true value of every option
    decline_value = float(costs.cancel_cost_usd)
    u_plain = np.where(eligible, true.utility_uninsured, -np.inf)
    u_insured = np.where(eligible & table.insurable, true.utility_insured, -np.inf)
    c_plain, c_insured = true.expected_cost_uninsured, true.expected_cost_insured

    def value(channel: np.ndarray, insure: np.ndarray, ship: np.ndarray) -> np.ndarray:
        insure = insure & table.insurable[idx, channel]
        u = np.where(insure, u_insured[idx, channel], u_plain[idx, channel])
        return np.where(ship, u, -decline_value)

    def cost(channel: np.ndarray, insure: np.ndarray) -> np.ndarray:
        insure = insure & table.insurable[idx, channel]
        return np.where(insure, c_insured[idx, channel], c_plain[idx, channel])

    def pick(allowed: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
        chosen = np.where(allowed, table.price_usd, np.inf).argmin(axis=1)
        return chosen if fallback is None else np.where(allowed.any(axis=1), chosen, fallback)

    cheapest = pick(eligible)
    tracked = pick(eligible & (table.tracking_level >= TRACKING_LEVELS["partial"]), cheapest)
    express_ids = [i for i, c in enumerate(catalog.channels) if c.channel_type == "express"]
    express = pick(eligible & np.isin(table.channel_index, express_ids), cheapest)
    above_50 = table.value_usd > 50.0
    yes, no = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    oracle_ship = true.ship if decline else yes
    ours_ship = ours.ship if decline else yes
    choices = {
        "oracle": (true.recommended, true.insure[idx, true.recommended], oracle_ship),
        "ours": (ours.recommended, ours.insure[idx, ours.recommended], ours_ship),
        "cheapest_eligible": (cheapest, no, yes),
        "cheapest_tracked": (tracked, no, yes),
        "express": (express, no, yes),
        "insure_all": (cheapest, yes, yes),
        "tracked_insure_above_50": (np.where(above_50, tracked, cheapest), above_50, yes),
    }
    utility = {name: value(*c) for name, c in choices.items()}
    base, best, got = (utility[k] for k in ("cheapest_eligible", "oracle", "ours"))
    segments = _segments(frame, table.value_usd, catalog)
    share_by, sizes = {}, {}
    for name, mask in segments.items():
        sizes[name] = int(mask.sum())
        share_by[name] = _share(base[mask], best[mask], got[mask])
    mean = {name: float(u.mean()) for name, u in utility.items()}
    same = (
        (true.recommended == ours.recommended)
        & (choices["oracle"][1] == choices["ours"][1])
        & (oracle_ship == ours_ship)
    )
    return DecisionReport(
        n=n,
        mean_utility=mean,
        share_of_oracle_saving=_share(base, best, got),
        saving_vs={k: mean["ours"] - v for k, v in mean.items() if k != "ours"},
        share_by_segment=share_by,
        segment_sizes=sizes,
        same_choice_as_oracle=float((same | (~oracle_ship & ~ours_ship)).mean()),
        do_not_ship={"ours": float((~ours_ship).mean()), "oracle": float((~oracle_ship).mean())},
        mean_cost={
            name: float(np.where(c[2], cost(c[0], c[1]), 0.0).sum() / max(c[2].sum(), 1))
            for name, c in choices.items()
        },
    )


def _our_decision(model, catalog, frame, costs, probs):  # type: ignore[no-untyped-def]
    """The one scoring path (model probabilities), or the same decide() on given ones."""
    if probs is None:
        scored = score(model, catalog, frame, costs, num_threads=0)
        return scored.table, scored.decision
    from shiprisk.decisions.candidates import build_candidates, shipment_terms

    arrays = shipment_arrays(catalog, frame)
    arrays.update(shipment_terms(catalog, frame, arrays["value_usd"]))
    table = build_candidates(catalog, **arrays, costs=costs)
    return table, decide(table, probs, costs)


def _share(base: np.ndarray, best: np.ndarray, got: np.ndarray) -> float:
    room = float((best - base).sum())
    return float((got - base).sum()) / room if room > 0 else float("nan")


def _segments(frame: pd.DataFrame, value_usd: np.ndarray, catalog: Catalog) -> dict:
    """Boolean masks of the reported segments."""
    out: dict[str, np.ndarray] = {}
    for lo, hi in pairwise(VALUE_BANDS_USD):
        label = f"value {lo:g}-{hi:g}" if np.isfinite(hi) else f"value >{lo:g}"
        out[label] = (value_usd > lo) & (value_usd <= hi)
    tier = catalog.destination_column("risk_tier")[
        catalog.country_codes(frame["destination_country"].tolist())
    ]
    for t in (1, 2, 3):
        out[f"risk tier {t}"] = tier == t
    for method in ("prepaid", "cod"):
        out[f"payment {method}"] = frame["payment_method"].to_numpy() == method
    return out


__all__ = ["NAIVE_RULES", "DecisionReport", "evaluate_decisions"]


# -- honesty checks: the chosen cost terms at x0.5 and x1.5 -----------------------------------

CHOSEN_TERMS: tuple[str, ...] = (
    "goods_cost_ratio",
    "unrecoverable_share",
    "claim_paid_probability",
    "duties_rate",
    "untracked_claim_rate",
    "defect_cost_usd",
    "cancel_cost_usd",
    "risk_tolerance_usd",
    "liability_paid_probability",
    "refused_returned_share",
    "postage_covered_share",
)
"""Cost terms whose default is "chosen" (docs/policy.md); liability_paid_probability and
refused_returned_share are per-channel catalog columns (defaults by channel type), scaled
channel by channel."""
_CATALOG_TERMS = ("liability_paid_probability", "refused_returned_share")
_AT_MOST_ONE = ("goods_cost_ratio", "unrecoverable_share", "claim_paid_probability")


def scaled_costs(
    costs: SellerCosts, catalog: Catalog, term: str, factor: float
) -> tuple[SellerCosts, Catalog]:
    """``costs`` and ``catalog`` with one chosen term multiplied by ``factor`` (probabilities
    and shares capped at 1)."""
    if term in _CATALOG_TERMS:
        channels = []
        for j, ch in enumerate(catalog.channels):
            current = float(catalog.channel_column(term)[j])
            channels.append(ch.model_copy(update={term: min(1.0, current * factor)}))
        scaled = Catalog(tuple(channels), catalog.destinations, catalog.currencies, catalog.as_of)
        return costs, scaled
    value = getattr(costs, term) * factor
    if term in _AT_MOST_ONE:
        value = min(1.0, value)
    return costs.model_copy(update={term: value}), catalog


def model_probabilities(
    model: RiskModel, catalog: Catalog, frame: pd.DataFrame
) -> dict[str, np.ndarray]:
    """The model's (n, C) probabilities on every eligible pair, by the one scoring path (so
    several cost settings can be evaluated on one model call)."""
    return score(model, catalog, frame, SellerCosts(), num_threads=0).probs
