"""The decision evaluation under the issue-16 cost model, at a size CI can afford.

``benchmarks/decisions_cost_model.py`` measures the same on 100 000 fresh shipments with the
main job's model (BENCHMARKS.md); here 20 000 fresh shipments (a seed no other test uses) and
the 150 000-row ``decision_model``. Segments with fewer than 500 shipments here (the top value
band) are too small to hold a 0.90 bar at this size; the benchmark reports them.
"""

from __future__ import annotations

import numpy as np
import pytest

from shiprisk.data.catalogs import load_catalog
from shiprisk.data.physics import counterfactual_probabilities
from shiprisk.data.simulator import simulate
from shiprisk.decisions.costs import TODAYS_COST_MODEL, SellerCosts
from shiprisk.training.decision_eval import (
    NAIVE_RULES,
    evaluate_decisions,
    model_probabilities,
    scaled_costs,
)

FRESH_SEED = 3_116
SEGMENT_MIN_SHIPMENTS = 500


@pytest.fixture(scope="module")
def fresh():
    return simulate(20_000, seed=FRESH_SEED)


def test_recommendation_captures_the_oracle_saving_under_the_new_cost_model(
    fresh, decision_model
) -> None:
    # The bars, on the cost model as the issue measured it: the seller pays the
    # postage out of the goods margin (postage_covered_share 0).
    costs = SellerCosts(postage_covered_share=0.0)
    report = evaluate_decisions(fresh, decision_model, costs=costs)  # the one scoring path
    print(report)
    assert report.share_of_oracle_saving >= 0.95
    for name, share in report.share_by_segment.items():
        if name.startswith("value 0-20") or report.segment_sizes[name] < SEGMENT_MIN_SHIPMENTS:
            continue
        assert share >= 0.90, (name, share)
    for rule in NAIVE_RULES:  # strictly better than every rule a seller might follow
        assert report.saving_vs[rule] > 0, rule
    assert report.mean_utility["oracle"] >= report.mean_utility["ours"]


def test_with_the_postage_covered_by_the_price_the_saving_left_is_channel_choice(
    fresh, decision_model
) -> None:
    # The default: the order's price covers the cheapest postage, so far fewer orders are
    # worth declining and the oracle's saving over "cheapest" is mostly the channel and
    # insurance choice, the hard part. The bars under this default are measured on the
    # main job's model in BENCHMARKS.md. This smaller model (50k rows) is held to regression
    # floors well under what it measured: 20-50 USD is tracked vs untracked, where the
    # expected costs differ by cents, so its floor is the lowest.
    report = evaluate_decisions(fresh, decision_model)
    print(report)
    assert report.do_not_ship["oracle"] < 0.05
    assert report.share_of_oracle_saving >= 0.90
    for name, share in report.share_by_segment.items():
        if name.startswith("value 0-20") or report.segment_sizes[name] < SEGMENT_MIN_SHIPMENTS:
            continue
        assert share >= (0.60 if name == "value 20-50" else 0.80), (name, share)
    for rule in NAIVE_RULES:
        assert report.saving_vs[rule] > 0, rule


def test_todays_cost_model_share_stays_high(fresh, decision_model) -> None:
    catalog = load_catalog()
    probs = model_probabilities(decision_model, catalog, fresh)
    today = evaluate_decisions(
        fresh, None, costs=SellerCosts(**TODAYS_COST_MODEL), probs=probs, decline=False
    )
    # 0.933 is the main job's model on 50 000 shipments (BENCHMARKS.md); this smaller model
    # reached 0.89 under the old model too (the bar the old test held at this size: 0.80).
    assert today.share_of_oracle_saving >= 0.85
    assert today.do_not_ship == {"ours": 0.0, "oracle": 0.0}


def test_the_oracle_fed_true_probabilities_is_unbeatable(fresh) -> None:
    # Fed the true probabilities, "ours" is the oracle: share 1, and no naive rule - nor any
    # cost setting scaled x0.5 / x1.5 - does better than the oracle in the same utility.
    sample = fresh.head(4000)
    truth = counterfactual_probabilities(sample)
    probs = {o: truth[f"p_{o}"] for o in ("loss", "reject")}
    report = evaluate_decisions(sample, None, probs=probs)
    assert report.share_of_oracle_saving == pytest.approx(1.0)
    assert report.same_choice_as_oracle == 1.0
    best = report.mean_utility["oracle"]
    assert all(best >= u - 1e-9 for u in report.mean_utility.values())
    costs, catalog = scaled_costs(SellerCosts(), load_catalog(), "refused_returned_share", 1.5)
    assert np.all(catalog.channel_column("refused_returned_share") <= 1.0)
    scaled = evaluate_decisions(sample, None, costs=costs, catalog=catalog, probs=probs)
    assert scaled.share_of_oracle_saving == pytest.approx(1.0)
    assert scaled.mean_utility["oracle"] != pytest.approx(best)  # the term does something
