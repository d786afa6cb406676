"""Reasons: factors cover every feature once and point at what really raises the risk."""

from __future__ import annotations

from collections import Counter

import numpy as np

from shiprisk.data.contract import example_request
from shiprisk.features.pipeline import FEATURES
from shiprisk.serving.explain import FACTORS, explain, factor_contributions


def test_every_feature_belongs_to_exactly_one_factor() -> None:
    counts = Counter(f for _, features in FACTORS.values() for f in features)
    assert set(counts) == set(FEATURES)
    assert max(counts.values()) == 1


def test_the_typical_shipment_has_no_reasons(champion_model) -> None:
    x = np.asarray(champion_model.featurizer.reference_)
    for contributions in factor_contributions(champion_model, x).values():
        np.testing.assert_allclose(contributions, 0.0, atol=1e-12)


def test_cod_to_a_tier3_country_is_a_reason_for_rejection(champion_model) -> None:
    record = {
        **example_request(),
        "payment_method": "cod",
        "destination_country": "IN",
        "channel_id": "cod_line",
    }
    x = champion_model.featurizer.transform_records([record])[0]
    reasons = explain(champion_model, record, x)
    reject = [r for r in reasons if r.outcome == "reject"]
    assert reject and all(r.contribution > 0 for r in reasons)
    payment = [r for r in reject if r.factor == "payment"]
    assert payment and payment[0].text == "cash on delivery to a tier-3 destination"
    assert payment[0].fields == ("payment_method",)
