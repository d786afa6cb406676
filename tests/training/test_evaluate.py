"""Evaluation metrics, the decision-regret helper, the logistic baseline and the figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from shiprisk.training.baseline import LogisticBaseline
from shiprisk.training.evaluate import (
    METRIC_ORDER,
    binary_log_loss,
    calibration_bins,
    evaluate_frame,
    evaluate_model,
    expected_calibration_error,
    expected_cost_regret,
    flatten_metrics,
    metrics_table,
    outcome_metrics,
)
from shiprisk.training.plots import (
    LOG_AXES_BELOW,
    calibration_figure,
    importance_by_field,
    importance_figure,
)


def _world(n: int, seed: int, scale: float = -3.5) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities spread over a rare-outcome range, and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p_true = 1 / (1 + np.exp(-(scale + rng.normal(0, 1.0, n))))
    y = (rng.random(n) < p_true).astype(int)
    return y, p_true


def test_log_loss_matches_sklearn_and_clips_extremes():
    y, p = _world(5_000, 1)
    assert binary_log_loss(y, p) == pytest.approx(log_loss(y, p), rel=1e-12)
    # A confident miss is clipped at 1e-7 instead of becoming infinite.
    assert binary_log_loss(np.array([1]), np.array([0.0])) == pytest.approx(-np.log(1e-7))


def test_gain_captured_is_one_for_truth_and_zero_for_the_base_rate():
    y, p_true = _world(50_000, 2)
    rate = y.mean()
    truth = outcome_metrics(y, p_true, prior=rate, p_true=p_true)
    assert truth["gain_captured"] == pytest.approx(1.0)
    assert truth["ll_ratio_to_bayes"] == pytest.approx(1.0)
    assert truth["ll_bayes"] == pytest.approx(truth["log_loss"])
    const = outcome_metrics(y, np.full_like(p_true, rate), prior=rate, p_true=p_true)
    assert const["gain_captured"] == pytest.approx(0.0, abs=1e-12)
    assert const["ll_prior"] == pytest.approx(const["log_loss"])
    assert const["ll_ratio_to_bayes"] > 1.0
    # A half-way model (shrunk towards the prior on the logit scale) lands in between.
    logit = np.log(p_true / (1 - p_true))
    half = 1 / (1 + np.exp(-(0.5 * logit + 0.5 * np.log(rate / (1 - rate)))))
    mid = outcome_metrics(y, half, prior=rate, p_true=p_true)["gain_captured"]
    assert 0.2 < mid < 0.95


def test_expected_gain_has_the_same_meaning_without_sampling_noise():
    y, p_true = _world(50_000, 2)
    rate = y.mean()
    assert outcome_metrics(y, p_true, prior=rate, p_true=p_true)["gain_expected"] == 1.0
    const = outcome_metrics(y, np.full_like(p_true, rate), prior=rate, p_true=p_true)
    assert const["gain_expected"] == pytest.approx(0.0, abs=1e-12)
    logit = np.log(p_true / (1 - p_true))
    half = 1 / (1 + np.exp(-(0.5 * logit + 0.5 * np.log(rate / (1 - rate)))))
    # Same model, two independent draws of the outcomes: the expected gain does not move
    # (it never looks at y), the sampled one does.
    rng = np.random.default_rng(5)
    y2 = (rng.random(len(p_true)) < p_true).astype(float)
    first = outcome_metrics(y, half, prior=rate, p_true=p_true)
    second = outcome_metrics(y2, half, prior=rate, p_true=p_true)
    assert first["gain_expected"] == second["gain_expected"]
    assert first["gain_captured"] != second["gain_captured"]
    assert abs(first["gain_expected"] - first["gain_captured"]) < 0.1
    with pytest.raises(ValueError, match="probabilities"):
        binary_log_loss(np.array([1.5]), np.array([0.5]))


def test_ll_prior_uses_the_given_prior_not_the_sample_rate():
    y, p_true = _world(20_000, 3)
    at_rate = outcome_metrics(y, p_true, prior=y.mean())["ll_prior"]
    off = outcome_metrics(y, p_true, prior=3 * y.mean())["ll_prior"]
    assert off > at_rate  # the sample rate is the best constant; any other prior costs more
    assert "ll_bayes" not in outcome_metrics(y, p_true, prior=y.mean())


def test_ece_small_when_calibrated_and_large_when_doubled():
    y, p_true = _world(400_000, 4)
    calibrated = expected_calibration_error(y, p_true)
    twice = np.minimum(2 * p_true, 1.0)
    doubled = expected_calibration_error(y, twice)
    rate = y.mean()
    assert calibrated / rate < 0.05
    assert doubled / rate > 0.8  # doubling p is off by about one base rate on average
    m = outcome_metrics(y, twice, prior=rate)
    assert m["ece"] == pytest.approx(doubled)
    assert m["ece_over_base_rate"] == pytest.approx(doubled / rate)


def test_calibration_bins_have_equal_mass():
    y, p = _world(10_003, 5)
    mean_p, mean_y, count = calibration_bins(y, p, n_bins=10)
    assert count.sum() == 10_003
    assert count.max() - count.min() <= 1
    assert np.all(np.diff(mean_p) >= 0)
    assert np.average(mean_y, weights=count) == pytest.approx(y.mean())


def test_ranking_scores_match_sklearn():
    y, p_true = _world(30_000, 6)
    noisy = np.clip(p_true * np.exp(np.random.default_rng(0).normal(0, 0.5, y.size)), 0, 1)
    m = outcome_metrics(y, noisy, prior=y.mean())
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, noisy))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, noisy))
    assert m["brier"] == pytest.approx(np.mean((noisy - y) ** 2))
    assert m["base_rate"] == pytest.approx(y.mean())


def test_single_class_window_scores_without_error():
    m = outcome_metrics(np.zeros(100), np.full(100, 0.01), prior=0.01)
    assert np.isnan(m["roc_auc"]) and np.isnan(m["pr_auc"]) and np.isnan(m["ece_over_base_rate"])
    assert m["log_loss"] == pytest.approx(-np.log(0.99))


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="0 and 1"):
        outcome_metrics(np.array([0, 2]), np.array([0.1, 0.2]), prior=0.1)
    with pytest.raises(ValueError, match="probabilities"):
        outcome_metrics(np.array([0, 1]), np.array([0.1, 1.2]), prior=0.1)
    with pytest.raises(ValueError, match="rows"):
        outcome_metrics(np.array([0, 1]), np.array([0.1]), prior=0.1)


def test_evaluate_model_flatten_and_table():
    y_loss, p_loss = _world(5_000, 7, scale=-5.0)
    y_rej, p_rej = _world(5_000, 8, scale=-3.0)
    priors = {"loss": float(y_loss.mean()), "reject": float(y_rej.mean())}
    metrics = evaluate_model(
        {"loss": y_loss, "reject": y_rej},
        {"loss": p_loss, "reject": p_rej},
        priors=priors,
        true={"loss": p_loss, "reject": p_rej},
    )
    assert set(metrics) == {"loss", "reject"}
    assert metrics["loss"]["base_rate"] == pytest.approx(y_loss.mean())
    assert metrics["reject"]["gain_captured"] == pytest.approx(1.0)

    flat = flatten_metrics(metrics, model="model")
    assert flat["loss/log_loss_model"] == metrics["loss"]["log_loss"]
    assert flat["reject/gain_captured_model"] == metrics["reject"]["gain_captured"]
    assert len(flat) == sum(len(v) for v in metrics.values())
    assert all(k.startswith(("loss/", "reject/")) for k in flat)
    # grouped by outcome, model and baseline of one metric sort next to each other
    both = sorted([*flat, *flatten_metrics(metrics, model="baseline")])
    at = both.index("loss/log_loss_baseline")
    assert both[at + 1] == "loss/log_loss_model"

    const = evaluate_model(
        {"loss": y_loss, "reject": y_rej},
        {"loss": np.full(5_000, priors["loss"]), "reject": np.full(5_000, priors["reject"])},
        priors=priors,
    )
    table = metrics_table({"model": metrics, "baseline": const})
    assert [c.header for c in table.columns] == ["outcome", "metric", "model", "baseline"]
    assert table.row_count == len(metrics["loss"]) + len(metrics["reject"])
    console = Console(record=True, width=120)
    console.print(table)
    text = console.export_text()
    assert "gain_captured" in text and "baseline" in text
    names = list(table.columns[1].cells)
    assert names[: len(metrics["loss"])] == [n for n in METRIC_ORDER if n in metrics["loss"]]


def test_evaluate_frame_reads_outcome_and_truth_columns():
    y_loss, p_loss = _world(4_000, 9, scale=-4.0)
    y_rej, p_rej = _world(4_000, 10, scale=-3.0)
    y_rej[y_loss == 1] = 0  # one outcome per shipment
    outcome = np.where(y_loss == 1, "lost", np.where(y_rej == 1, "rejected", "delivered"))
    frame = pd.DataFrame({"outcome": outcome, "true_p_loss": p_loss, "true_p_reject": p_rej})
    priors = {"loss": 0.02, "reject": 0.05}
    probs = {"loss": p_loss, "reject": p_rej}
    got = evaluate_frame(frame, probs, priors=priors)
    want = evaluate_model({"loss": y_loss, "reject": y_rej}, probs, priors=priors, true=probs)
    assert got == want
    no_truth = evaluate_frame(frame[["outcome"]], probs, priors=priors)
    assert "gain_captured" not in no_truth["loss"]


def test_expected_cost_regret_hand_computed():
    inf = np.inf
    cost = np.array(
        [
            [10.0, 4.0, np.nan],  # option 2 ineligible
            [3.0, 6.0, 5.0],
            [8.0, inf, 2.0],  # option 1 ineligible
        ]
    )
    reference = np.array([0, 1, 0])  # 10 + 6 + 8 = 24
    oracle = np.array([1, 0, 2])  # 4 + 3 + 2 = 9
    chosen = np.array([1, 2, 0])  # 4 + 5 + 8 = 17
    out = expected_cost_regret(cost, chosen, reference, oracle)
    assert out["cost_reference"] == pytest.approx(24 / 3)
    assert out["cost_oracle"] == pytest.approx(9 / 3)
    assert out["cost_chosen"] == pytest.approx(17 / 3)
    assert out["regret_chosen"] == pytest.approx((17 - 9) / 3)
    assert out["share_of_oracle_saving"] == pytest.approx((24 - 17) / (24 - 9))
    assert expected_cost_regret(cost, oracle, reference, oracle)["share_of_oracle_saving"] == 1.0
    with pytest.raises(ValueError, match="ineligible"):
        expected_cost_regret(cost, np.array([2, 0, 0]), reference, oracle)
    with pytest.raises(ValueError, match="integer"):
        expected_cost_regret(cost, chosen.astype(float), reference, oracle)


def _logistic_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column 0 is a category code (0 = unknown) with its own effect; 1-3 are numeric."""
    rng = np.random.default_rng(seed)
    code = rng.integers(0, 6, n)
    numeric = rng.normal(size=(n, 3)) * np.array([1.0, 30.0, 0.01])  # mixed scales
    numeric[rng.random(n) < 0.05, 0] = np.nan  # missing values, as the boosted model allows
    effect = np.array([0.0, 1.5, -1.0, 0.5, 2.0, -0.5])
    logit = -3.0 + effect[code] + np.nan_to_num(numeric[:, 0]) + numeric[:, 1] / 30.0
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p).astype(int)
    return np.column_stack([code, numeric]).astype(float), y, p


def test_baseline_beats_a_constant_and_picks_c_from_grid():
    X, y, _ = _logistic_problem(12_000, 11)
    X_val, y_val, _ = _logistic_problem(4_000, 12)
    X_test, y_test, p_test = _logistic_problem(8_000, 13)
    grid = (0.001, 0.1, 10.0)
    model = LogisticBaseline(Cs=grid).fit(X, y, [0], X_val, y_val)
    assert model.C_ in grid
    assert set(model.val_log_loss_) == set(grid)
    assert model.val_log_loss_[model.C_] == min(model.val_log_loss_.values())
    p = model.predict_proba(X_test)
    assert p.shape == (8_000,) and np.all((p > 0) & (p < 1))
    ll_model = binary_log_loss(y_test, p)
    ll_const = binary_log_loss(y_test, np.full(y_test.size, y.mean()))
    ll_true = binary_log_loss(y_test, p_test)
    # The model is (up to noise) the true one, so it should capture most of the gain.
    assert (ll_const - ll_model) / (ll_const - ll_true) > 0.8
    # One-hot: each category's fitted rate follows the true per-category rate.
    for code in range(6):
        rows = X_test[:, 0] == code
        assert p[rows].mean() == pytest.approx(p_test[rows].mean(), rel=0.25)
    # An unseen category code does not break prediction.
    X_new = X_test[:5].copy()
    X_new[:, 0] = 99
    assert np.isfinite(model.predict_proba(X_new)).all()


def test_baseline_rejects_bad_input():
    X, y, _ = _logistic_problem(500, 14)
    with pytest.raises(RuntimeError, match="not fitted"):
        LogisticBaseline().predict_proba(X)
    with pytest.raises(ValueError, match="both classes"):
        LogisticBaseline().fit(X, np.zeros_like(y), [0], X, y)
    with pytest.raises(ValueError, match="out of range"):
        LogisticBaseline().fit(X, y, [7], X, y)


def test_figures_build_and_save(tmp_path):
    y, p_true = _world(20_000, 15, scale=-5.0)  # rare: log axes
    p = np.clip(1.3 * p_true, 0, 1)
    fig = calibration_figure(y, p, label="p_loss", p_true=p_true)
    path = tmp_path / "calibration.png"
    fig.savefig(path)
    assert path.stat().st_size > 10_000
    assert fig.axes[0].get_xscale() == "log"
    assert len(fig.axes[0].get_lines()) >= 3  # diagonal, observed, true

    y2, p2 = _world(5_000, 16, scale=-1.0)  # common: linear axes
    fig2 = calibration_figure(y2, p2, label="p_reject")
    assert fig2.axes[0].get_xscale() == "linear"
    fig2.savefig(tmp_path / "calibration2.png")

    # Not rare (base rate above LOG_AXES_BELOW) but skewed, like rejections: most bins would
    # crowd the corner of linear axes, so the axes go logarithmic.
    rng = np.random.default_rng(18)
    p4 = 1 / (1 + np.exp(-rng.normal(-3.4, 1.6, 20_000)))
    y4 = (rng.random(p4.size) < p4).astype(int)
    assert y4.mean() > LOG_AXES_BELOW
    mean_p, _, _ = calibration_bins(y4, p4, 10)
    assert (mean_p < 0.07).sum() >= 6  # on linear axes: most bins in the bottom 7 %
    fig4 = calibration_figure(y4, p4, label="p_reject")
    assert fig4.axes[0].get_xscale() == "log" and fig4.axes[0].get_yscale() == "log"

    names = [f"feature_{i}" for i in range(40)]
    gains = np.random.default_rng(17).gamma(1.0, 10.0, 40)
    fig3 = importance_figure(names, gains, title="gain: loss")
    fig3.savefig(tmp_path / "importance.png")
    ax = fig3.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 25
    assert labels[0] == names[int(np.argmax(gains))]
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == sorted(widths, reverse=True)
    assert (tmp_path / "importance.png").stat().st_size > 10_000


def test_importance_is_reported_by_request_field():
    """Engineered features share their gain among the request fields they come from; the
    total is kept and every name a seller sees is a request field."""
    from shiprisk.data.contract import SCHEMA_FIELDS
    from shiprisk.features.definitions import FEATURE_SOURCES, FEATURES

    gains = np.random.default_rng(19).gamma(1.0, 10.0, len(FEATURES))
    by_field = importance_by_field(FEATURES, gains, FEATURE_SOURCES)
    assert set(by_field) <= set(SCHEMA_FIELDS["request"])
    assert sum(by_field.values()) == pytest.approx(gains.sum())
    assert list(by_field.values()) == sorted(by_field.values(), reverse=True)
    one = importance_by_field(["cod_x_risk_tier"], np.array([4.0]), FEATURE_SOURCES)
    assert one == {"destination_country": 2.0, "payment_method": 2.0}
