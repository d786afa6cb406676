"""The two-cause head: its combination, its gradients, its fit, and the trained reject head
keeping each cause to its own features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shiprisk.features.definitions import CHANNEL_FEATURES
from shiprisk.models.risk_model import FORMAT_VERSION, FORMAT_WITH_CAUSES, MANIFEST, RiskModel
from shiprisk.models.two_causes import (
    _gradients,
    _log_loss,
    cause_exclude,
    combined_logit,
    fit_two_causes,
)
from shiprisk.training.config import load_config


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_combined_logit_is_the_log_odds_of_either_cause() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(-2.0, 2.0, 1000), rng.normal(-2.0, 2.0, 1000)
    p = 1.0 - (1.0 - _sigmoid(a)) * (1.0 - _sigmoid(b))
    np.testing.assert_allclose(_sigmoid(combined_logit(a, b)), p, rtol=1e-10)
    # far tails stay finite: a certain cause dominates, two impossible ones add up
    extreme = combined_logit(np.array([800.0, -800.0, -40.0]), np.array([-800.0, -800.0, -40.0]))
    assert np.isfinite(extreme).all()
    assert extreme[0] > 30 and extreme[1] < -600  # p below 1e-260: clamped, still finite
    assert extreme[2] == pytest.approx(-40.0 + np.log(2.0), abs=1e-9)


def test_gradients_match_finite_differences_of_the_log_loss() -> None:
    rng = np.random.default_rng(1)
    own, other = rng.normal(-2.0, 1.5, 50), rng.normal(-2.0, 1.5, 50)
    y = (rng.random(50) < 0.3).astype(float)
    grad, hess = _gradients(y, own, other)
    h = 1e-6
    for i in range(50):
        up, down = own.copy(), own.copy()
        up[i] += h
        down[i] -= h
        numeric = (_log_loss(y, up, other) - _log_loss(y, down, other)) * 50 / (2 * h)
        assert grad[i] == pytest.approx(numeric, rel=1e-4, abs=1e-8)
    assert (hess > 0).all()


def test_each_cause_learns_from_its_own_features_only() -> None:
    """Cause one rises with column 0, cause two with column 1; each is barred from the
    other's column and from the noise column 2. The fit splits them and the combined
    probability is calibrated."""
    rng = np.random.default_rng(2)
    n = 20_000
    X = rng.normal(size=(n, 3))
    p1, p2 = _sigmoid(-3.0 + 1.5 * X[:, 0]), _sigmoid(-2.5 + 1.2 * X[:, 1])
    p = 1.0 - (1.0 - p1) * (1.0 - p2)
    y = (rng.random(n) < p).astype(float)
    base = {"learning_rate": 0.2, "num_leaves": 7, "min_data_in_leaf": 50, "verbose": -1}
    params = [
        {**base, "feature_contri": [1.0, 0.0, 0.0]},
        {**base, "feature_contri": [0.0, 1.0, 0.0]},
    ]
    cut = int(n * 0.8)
    first, second, best = fit_two_causes(
        params, [], (X[:cut], y[:cut]), (X[cut:], y[cut:]), 300, 20, ("one", "two")
    )
    assert 0 < best < 300
    assert first.feature_importance("split")[1:].sum() == 0
    assert second.booster.feature_importance("split")[[0, 2]].sum() == 0
    z1 = first.predict(X, raw_score=True) + second.offsets[0]
    z2 = second.booster.predict(X, raw_score=True) + second.offsets[1]
    # each learned cause follows its true cause, and together they reproduce p
    assert np.corrcoef(_sigmoid(z1), p1)[0, 1] > 0.95
    assert np.corrcoef(_sigmoid(z2), p2)[0, 1] > 0.95
    combined = _sigmoid(second.combine(first.predict(X, raw_score=True), X))
    assert combined.mean() == pytest.approx(y.mean(), rel=0.03)
    assert np.abs(combined - p).mean() < 0.1 * p.mean()


def test_the_reject_head_keeps_customs_apart_from_the_channel(champion_model) -> None:
    """The trained reject head's customs cause never splits on a channel feature, its buyer
    cause never on the customs paperwork (configs/train.yaml)."""
    causes = load_config().lightgbm["reject"]["two_causes"]
    second = champion_model.causes["reject"]
    assert second.names == tuple(c["name"] for c in causes)
    names = champion_model.featurizer.feature_names_
    boosters = {"first": champion_model.boosters["reject"], "second": second.booster}
    splits = {
        part: dict(zip(names, booster.feature_importance("split"), strict=True))
        for part, booster in boosters.items()
    }
    for part, cause in zip(("first", "second"), causes, strict=True):
        barred = [f for f in cause_exclude(cause) if f in names]
        assert barred and all(splits[part][f] == 0 for f in barred)
        assert sum(splits[part].values()) > 0
    assert any(f in cause_exclude(causes[1]) for f in CHANNEL_FEATURES)


def test_a_two_cause_model_is_refused_by_code_that_reads_one_ensemble(
    champion_model, tmp_path
) -> None:
    """Its manifest says format 2: code from before two-cause heads reads format 1 only, so
    it refuses the model rather than score the first cause alone; this code reads both."""
    path = champion_model.save(tmp_path / "model")
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["format_version"] == FORMAT_WITH_CAUSES != FORMAT_VERSION
    X = np.asarray([champion_model.featurizer.reference_], dtype=np.float64)
    reloaded = RiskModel.load(path)
    np.testing.assert_array_equal(
        reloaded.raw_scores(X, "reject"), champion_model.raw_scores(X, "reject")
    )
    first_only = reloaded.boosters["reject"].predict(X, raw_score=True)
    assert not np.allclose(first_only, reloaded.raw_scores(X, "reject"))
