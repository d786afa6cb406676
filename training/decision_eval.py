"""Decisions against an oracle: what the recommendations are worth in true expected cost.

The simulator knows each shipment's true p_loss and p_reject on every eligible channel.
The oracle is the decision policy fed those true probabilities; our policy is the same code
fed the model's. Every choice (channel + insure) is then costed with the TRUE
probabilities, and compared with naive rules a seller might follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shiprisk.data.catalogs import TRACKING_LEVELS, Catalog, load_catalog
from shiprisk.data.outcomes import EVENT_KEYS
from shiprisk.decisions.candidates import shipment_arrays
from shiprisk.decisions.costs import SellerCosts
from shiprisk.decisions.policy import decide
from shiprisk.decisions.scoring import score
from shiprisk.models.risk_model import RiskModel


@dataclass
class DecisionReport:
    n: int
    mean_cost: dict[str, float]
    share_of_oracle_saving: float
    """(cost_cheapest - cost_ours) / (cost_cheapest - cost_oracle), summed over shipments."""
    saving_vs: dict[str, float]
    """Mean saving per shipment of our policy against each naive policy (USD)."""


def evaluate_decisions(
    frame: pd.DataFrame,
    model: RiskModel,
    *,
    costs: SellerCosts | None = None,
    catalog: Catalog | None = None,
) -> DecisionReport:
    from shiprisk.data.physics import counterfactual_probabilities

    catalog = catalog or load_catalog()
    costs = costs or SellerCosts()
    keep = catalog.eligible(**shipment_arrays(catalog, frame)).any(axis=1)
    frame = frame[keep].reset_index(drop=True)
    # The one scoring path: our probabilities on every eligible pair, and our decision.
    scored = score(model, catalog, frame, costs, num_threads=0)
    table, ours = scored.table, scored.decision
    eligible = table.eligible
    n = len(eligible)

    counterfactual = counterfactual_probabilities(frame, catalog=catalog)
    truth = {o: np.nan_to_num(counterfactual[f"p_{o}"]) for o in EVENT_KEYS}
    oracle = true = decide(table, truth, costs)  # true costs of every choice, insured and not
    insured_cost = np.where(
        np.isnan(true.expected_cost_insured), np.inf, true.expected_cost_insured
    )
    uninsured_cost = true.expected_cost_uninsured

    def cost(channel: np.ndarray, insure: np.ndarray) -> np.ndarray:
        idx = np.arange(n)
        return np.where(insure, insured_cost[idx, channel], uninsured_cost[idx, channel])

    def pick(score: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        return np.where(allowed, score, np.inf).argmin(axis=1)

    price = np.where(eligible, table.price_usd, np.inf)
    cheapest = pick(price, eligible)
    tracked = eligible & (table.tracking_level >= TRACKING_LEVELS["partial"])
    has_tracked = tracked.any(axis=1)
    cheapest_tracked = np.where(has_tracked, pick(price, tracked), cheapest)
    express_ids = [i for i, c in enumerate(catalog.channels) if c.channel_type == "express"]
    express = eligible & np.isin(table.channel_index, express_ids)
    cheapest_express = np.where(express.any(axis=1), pick(price, express), cheapest)
    no = np.zeros(n, dtype=bool)
    idx = np.arange(n)
    choice_ours = ours.recommended
    choice_oracle = oracle.recommended
    costs_by_policy = {
        "oracle": cost(choice_oracle, oracle.insure[idx, choice_oracle]),
        "ours": cost(choice_ours, ours.insure[idx, choice_ours]),
        "cheapest_eligible": cost(cheapest, no),
        "cheapest_tracked": cost(cheapest_tracked, no),
        "cheapest_express": cost(cheapest_express, no),
        "insure_everything": cost(choice_ours, np.isfinite(insured_cost[idx, choice_ours])),
        "insure_nothing": cost(choice_ours, no),
    }
    base, best, got = (costs_by_policy[k].sum() for k in ("cheapest_eligible", "oracle", "ours"))
    share = float((base - got) / (base - best)) if base > best else float("nan")
    mean = {name: float(c.mean()) for name, c in costs_by_policy.items()}
    saving = {name: mean[name] - mean["ours"] for name in mean if name != "ours"}
    return DecisionReport(n, mean, share, saving)
