"""Metrics for the two risk outcomes and for the decisions made from them.

Pure numpy/scikit-learn: no MLflow, no files. The simulated world knows each shipment's true
probabilities, so besides the usual scores we measure how much of the achievable gain over a
constant guess the model captures (Bayes-optimal log loss is the floor, the training base
rate is the ceiling every model must beat).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from shiprisk.data.outcomes import EVENT_KEYS, EVENTS

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

EPS = 1e-7
"""Probabilities are clipped to [EPS, 1 - EPS] before taking logs (a 0 or 1 would give inf)."""

OUTCOME_KEYS = EVENT_KEYS
"""Keys of the per-outcome metric dicts (``data.outcomes``)."""

METRIC_ORDER = (
    "log_loss", "ll_prior", "ll_bayes", "ll_ratio_to_bayes", "gain_captured", "gain_expected",
    "roc_auc",
    "pr_auc", "brier", "ece", "ece_over_base_rate", "base_rate",
)  # fmt: skip
"""Order of the rows in :func:`metrics_table`; also every key :func:`outcome_metrics` may return."""


def _as_arrays(
    y: np.ndarray, p: np.ndarray, *, soft_labels: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a label/probability pair: same length, labels 0/1 (or probabilities with
    ``soft_labels``), probabilities in [0, 1]."""
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y has {y.size} rows but p has {p.size}")
    if y.size == 0:
        raise ValueError("cannot score an empty sample")
    if soft_labels:
        if not (np.isfinite(y).all() and (y >= 0).all() and (y <= 1).all()):
            raise ValueError("y must hold 0/1 labels or probabilities in [0, 1]")
    elif not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError("p must hold finite probabilities in [0, 1]")
    return y, p


def binary_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood ``-mean(y log p + (1 - y) log(1 - p))``, p clipped to EPS.

    Our own four lines instead of ``sklearn.metrics.log_loss`` so that a test window with no
    positives (rare outcome, small window) still gets a score instead of an error. ``y`` may
    also be probabilities (soft labels): the result is then the expected log loss.
    """
    y, p = _as_arrays(y, p, soft_labels=True)
    p = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def equal_mass_bins(p: np.ndarray, n_bins: int = 10) -> list[np.ndarray]:
    """Row indices of ``n_bins`` (almost) equal-size groups of increasing ``p``."""
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    order = np.argsort(np.asarray(p).ravel(), kind="stable")
    return [c for c in np.array_split(order, min(n_bins, order.size)) if c.size]


def calibration_bins(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-mass reliability bins: ``(mean p, mean y, count)`` per bin, ordered by p.

    Rows are sorted by p and cut into ``n_bins`` chunks of (almost) equal size. Equal-width
    bins would put nearly every shipment of a rare outcome into the first bin and leave the
    others almost empty; equal mass keeps every bin's rate estimate equally precise.
    """
    y, p = _as_arrays(y, p)
    chunks = equal_mass_bins(p, n_bins)
    mean_p = np.array([p[c].mean() for c in chunks])
    mean_y = np.array([y[c].mean() for c in chunks])
    count = np.array([c.size for c in chunks])
    return mean_p, mean_y, count


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE: bin-size-weighted mean of ``|mean(p) - mean(y)|`` over equal-mass bins."""
    mean_p, mean_y, count = calibration_bins(y, p, n_bins)
    return float(np.sum(count * np.abs(mean_p - mean_y)) / count.sum())


def _two_classes(y: np.ndarray) -> bool:
    return bool(0 < y.sum() < y.size)


def outcome_metrics(
    y: np.ndarray,
    p: np.ndarray,
    *,
    prior: float,
    p_true: np.ndarray | None = None,
    n_bins: int = 10,
) -> dict[str, float]:
    """Scores of one outcome's predicted probabilities ``p`` against 0/1 labels ``y``.

    * ``log_loss``: mean negative log-likelihood (p clipped to [1e-7, 1 - 1e-7]).
    * ``roc_auc``: area under the ROC curve (ranking quality; NaN if y has one class).
    * ``pr_auc``: average precision (ranking quality where it matters for rare positives;
      NaN if y has no positive).
    * ``brier``: mean squared error ``mean((p - y)^2)``.
    * ``ece``: expected calibration error, equal-mass bins (:func:`expected_calibration_error`).
    * ``ece_over_base_rate``: ``ece / mean(y)``; ECE is on the scale of the base rate, so this
      makes a 0.1 % loss rate and a 5 % rejection rate comparable (NaN if mean(y) == 0).
    * ``base_rate``: ``mean(y)`` in this sample.
    * ``ll_prior``: log loss of always predicting ``prior``; pass the TRAINING base rate, the
      best a model without features could know, so drift in the base rate counts against it.

    When the true probabilities ``p_true`` are known (simulated world):

    * ``ll_bayes``: log loss of ``p_true`` (Bayes-optimal up to sampling noise).
    * ``ll_ratio_to_bayes``: ``log_loss / ll_bayes`` (1 is perfect, lower is luck).
    * ``gain_captured``: ``(ll_prior - log_loss) / (ll_prior - ll_bayes)``: the share of the
      achievable improvement over the constant guess that the model realises (1 = as good as
      the truth, 0 = no better than the prior, < 0 = worse than the prior).
    * ``gain_expected``: the same share with every log loss replaced by its expectation under
      ``p_true`` (cross-entropy against the true probability instead of the drawn 0/1): the
      same quantity without the outcome-sampling noise, which for a rare outcome on a few
      tens of thousands of rows is of the order of the gaps between models.
    """
    y, p = _as_arrays(y, p)
    if not 0 <= prior <= 1:
        raise ValueError(f"prior must be a probability, got {prior}")
    base_rate = float(y.mean())
    ll = binary_log_loss(y, p)
    ece = expected_calibration_error(y, p, n_bins)
    has_both = _two_classes(y)
    out: dict[str, float] = {
        "log_loss": ll,
        "roc_auc": float(roc_auc_score(y, p)) if has_both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if has_both else float("nan"),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": ece,
        "ece_over_base_rate": ece / base_rate if base_rate > 0 else float("nan"),
        "base_rate": base_rate,
        "ll_prior": binary_log_loss(y, np.full_like(p, prior)),
    }
    if p_true is not None:
        _, p_true = _as_arrays(y, p_true)
        ll_bayes = binary_log_loss(y, p_true)
        achievable = out["ll_prior"] - ll_bayes
        out["ll_bayes"] = ll_bayes
        out["ll_ratio_to_bayes"] = ll / ll_bayes if ll_bayes > 0 else float("nan")
        out["gain_captured"] = (out["ll_prior"] - ll) / achievable if achievable else float("nan")
        expected_prior = binary_log_loss(p_true, np.full_like(p, prior))
        expected_reachable = expected_prior - binary_log_loss(p_true, p_true)
        out["gain_expected"] = (
            (expected_prior - binary_log_loss(p_true, p)) / expected_reachable
            if expected_reachable
            else float("nan")
        )
    return out


def outcome_labels(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """0/1 per event (``data.outcomes``) from a history's ``outcome`` column."""
    outcome = frame["outcome"].astype(str).to_numpy()
    return {o.key: (outcome == o.label).astype(int) for o in EVENTS}


def outcome_truth(frame: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """The simulator's true probability per event, when the frame carries them."""
    if not all(o.truth_column in frame.columns for o in EVENTS):
        return None
    return {o.key: frame[o.truth_column].to_numpy(dtype=float) for o in EVENTS}


def evaluate_model(
    labels: Mapping[str, np.ndarray],
    probs: Mapping[str, np.ndarray],
    *,
    priors: Mapping[str, float],
    true: Mapping[str, np.ndarray] | None = None,
    n_bins: int = 10,
) -> dict[str, dict[str, float]]:
    """:func:`outcome_metrics` per event; every argument is keyed by the event's key."""
    return {
        key: outcome_metrics(
            labels[key],
            probs[key],
            prior=float(priors[key]),
            p_true=None if true is None else true[key],
            n_bins=n_bins,
        )
        for key in OUTCOME_KEYS
    }


def evaluate_frame(
    frame: pd.DataFrame,
    probs: Mapping[str, np.ndarray],
    *,
    priors: Mapping[str, float],
    n_bins: int = 10,
) -> dict[str, dict[str, float]]:
    """:func:`evaluate_model` on a history frame: labels from ``outcome``, and the truth from
    the simulator's truth columns when the frame has them."""
    return evaluate_model(
        outcome_labels(frame), probs, priors=priors, true=outcome_truth(frame), n_bins=n_bins
    )


def metric_key(outcome: str, metric: str, model: str) -> str:
    """The one home of logged metric names: ``<outcome>/<metric>_<model>``, e.g.
    ``loss/log_loss_model`` and ``loss/log_loss_baseline``. MLflow groups charts by the part
    before ``/`` and sorts names within a group, so model and baseline sit side by side."""
    return f"{outcome}/{metric}_{model}"


def flatten_metrics(metrics: Mapping[str, Mapping[str, float]], model: str) -> dict[str, float]:
    """``{'loss': {'log_loss': x}}`` -> ``{'loss/log_loss_<model>': x}`` (:func:`metric_key`).

    NaN values are kept (MLflow stores them).
    """
    return {
        metric_key(outcome, name, model): float(value)
        for outcome, values in metrics.items()
        for name, value in values.items()
    }


METRIC_LEGEND: dict[str, str] = {
    "log_loss": "mean negative log-likelihood on the test slice (lower is better)",
    "ll_prior": "log loss of always predicting the training base rate",
    "ll_bayes": "log loss of the true probabilities (simulated data only): the floor",
    "ll_ratio_to_bayes": "log_loss / ll_bayes (1 = as good as the truth)",
    "gain_captured": "share of the reachable improvement over the base rate (1 = the truth)",
    "gain_expected": "gain_captured without outcome-sampling noise (against true probabilities)",
    "roc_auc": "ranking quality, 0.5 = random",
    "pr_auc": "average precision: ranking quality among the rare positives",
    "brier": "mean squared error of the probability",
    "ece": "expected calibration error (equal-mass bins)",
    "ece_over_base_rate": "ece / base rate, comparable across rare and common outcomes",
    "base_rate": "share of the outcome in the test slice",
}
"""What each metric of :func:`outcome_metrics` means, in one line (the table's legend)."""


def metrics_table(
    results: Mapping[str, Mapping[str, Mapping[str, float]]], title: str = "Test metrics"
) -> Table:
    """A rich table with one column per model (``results[model][outcome][metric]``).

    Rows are grouped by outcome, metrics in :data:`METRIC_ORDER` (unknown metrics after).
    """
    from rich.table import Table

    models = list(results)
    table = Table(title=title)
    table.add_column("outcome")
    table.add_column("metric")
    for model in models:
        table.add_column(model, justify="right")
    outcomes = list(dict.fromkeys(o for m in models for o in results[m]))
    for i, outcome in enumerate(outcomes):
        names = dict.fromkeys(n for m in models for n in results[m].get(outcome, {}))
        ordered = [n for n in METRIC_ORDER if n in names] + [
            n for n in names if n not in METRIC_ORDER
        ]
        for j, name in enumerate(ordered):
            cells = [_fmt(results[m].get(outcome, {}).get(name)) for m in models]
            last = j == len(ordered) - 1 and i < len(outcomes) - 1
            table.add_row(outcome if j == 0 else "", name, *cells, end_section=last)
    return table


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if not np.isfinite(value):
        return "nan"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def expected_cost_regret(
    true_cost: np.ndarray,
    chosen: np.ndarray,
    reference: np.ndarray,
    oracle: np.ndarray,
) -> dict[str, float]:
    """Compare three decision rules by the TRUE expected cost of the option each picks.

    ``true_cost[i, c]`` is shipment i's expected cost under option c computed from the true
    probabilities (NaN or inf marks an ineligible option); ``chosen``, ``reference`` and
    ``oracle`` are the option indices picked by the model, by a reference rule (e.g. the
    cheapest channel, or the baseline model) and by the oracle (argmin of true cost).

    Returns the mean true cost of each rule, the mean regret of ``chosen`` against the oracle,
    and ``share_of_oracle_saving = sum(cost_ref - cost_chosen) / sum(cost_ref - cost_oracle)``
    (1 = the model saves as much as perfect knowledge would, 0 = no better than the
    reference; NaN when the oracle saves nothing over the reference).
    """
    cost = np.asarray(true_cost, dtype=float)
    if cost.ndim != 2:
        raise ValueError("true_cost must be a 2-d (shipments x options) array")
    n = cost.shape[0]
    if n == 0:
        raise ValueError("no shipments to compare")
    picked: dict[str, np.ndarray] = {}
    for name, idx in (("chosen", chosen), ("reference", reference), ("oracle", oracle)):
        idx = np.asarray(idx)
        if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{name} must be an integer array of length {n}")
        if ((idx < 0) | (idx >= cost.shape[1])).any():
            raise ValueError(f"{name} holds an option index outside 0..{cost.shape[1] - 1}")
        values = cost[np.arange(n), idx]
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            raise ValueError(f"{name} picks an ineligible option for {bad} shipment(s)")
        picked[name] = values
    saving_possible = float(np.sum(picked["reference"] - picked["oracle"]))
    saving_made = float(np.sum(picked["reference"] - picked["chosen"]))
    return {
        "n": float(n),
        "cost_chosen": float(picked["chosen"].mean()),
        "cost_reference": float(picked["reference"].mean()),
        "cost_oracle": float(picked["oracle"].mean()),
        "regret_chosen": float(np.mean(picked["chosen"] - picked["oracle"])),
        "share_of_oracle_saving": (
            saving_made / saving_possible if saving_possible != 0 else float("nan")
        ),
    }


def quality_by(
    frame: pd.DataFrame,
    probs: Mapping[str, np.ndarray],
    column: str,
    priors: Mapping[str, float],
    min_rows: int = 1,
) -> pd.DataFrame:
    """Per value of ``column`` (destination, channel): rows and, per outcome, the observed
    rate, the mean predicted probability, and the model's log loss next to the base-rate
    prior's. Largest groups first; groups under ``min_rows`` rows are dropped."""
    import pandas as pd

    labels = outcome_labels(frame)
    keys = frame[column].astype(str).to_numpy()
    rows = []
    for value in sorted(set(keys.tolist())):
        at = keys == value
        if at.sum() < min_rows:
            continue
        row: dict[str, Any] = {column: value, "rows": int(at.sum())}
        for o in OUTCOME_KEYS:
            y, p = labels[o][at], np.asarray(probs[o], dtype=float)[at]
            row[f"{o}_observed_rate"] = float(y.mean())
            row[f"{o}_mean_predicted"] = float(p.mean())
            row[f"{o}_log_loss"] = binary_log_loss(y, p)
            row[f"{o}_log_loss_prior"] = binary_log_loss(y, np.full(len(y), priors[o]))
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    return out.sort_values(["rows", column], ascending=[False, True]).reset_index(drop=True)
