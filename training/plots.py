"""Figures logged with each training run: reliability curves and feature importances.

Built on ``matplotlib.figure.Figure`` with an explicit Agg canvas, never pyplot: no global
figure registry, no backend switching, safe in threads and servers. Save with
``fig.savefig(path)`` or hand to ``mlflow.log_figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shiprisk.training.evaluate import calibration_bins, equal_mass_bins

TOP_FEATURES = 25
"""How many features :func:`importance_figure` shows."""

LOG_AXES_BELOW = 0.05
"""Reliability axes go logarithmic when the outcome is rarer than this (loss rates ~0.1-2 %)."""
LOG_AXES_SPREAD = 20.0
"""... or when the bins' mean predictions span more than this factor: on linear axes most
bins of a skewed outcome (rejection: 8 of 10 below 0.07) would sit in one corner."""


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def calibration_figure(
    y: np.ndarray,
    p: np.ndarray,
    label: str,
    p_true: np.ndarray | None = None,
    n_bins: int = 10,
    log_axes: bool | None = None,
) -> Figure:
    """Reliability curve: per equal-mass bin of ``p``, observed rate of y vs mean predicted p.

    Error bars are +-2 binomial standard errors of the observed rate. When ``p_true`` is given,
    a second line shows the mean TRUE probability in the same bins: the noise-free version of
    the observed rate, so miscalibration can be told apart from sampling noise. ``log_axes``
    defaults to on for rare outcomes (base rate below :data:`LOG_AXES_BELOW`) and for
    predictions spread over more than :data:`LOG_AXES_SPREAD` x; bins with no positive are
    then drawn at the bottom edge. A right panel shows the distribution of p.
    """
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    mean_p, mean_y, count = calibration_bins(y, p, n_bins)
    if log_axes is None:
        positive = mean_p[mean_p > 0]
        spread = positive.max() / positive.min() if positive.size else 1.0
        log_axes = bool(y.mean() < LOG_AXES_BELOW or spread > LOG_AXES_SPREAD)
    stderr = np.sqrt(mean_y * (1 - mean_y) / count)

    fig = _figure(10, 4.5)
    ax, hist = fig.subplots(1, 2, width_ratios=(3, 2))
    lo = max(min(mean_p.min(), mean_y[mean_y > 0].min(initial=1.0)) / 2, 1e-5)
    hi = min(max(mean_p.max(), mean_y.max()) * 1.2, 1.0)
    if not log_axes:
        lo = 0.0
    ax.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=1, label="perfect calibration")
    shown_y = np.where(mean_y > 0, mean_y, lo) if log_axes else mean_y
    below = np.minimum(2 * stderr, shown_y - lo)  # keep bars inside the (log) axes
    ax.errorbar(
        mean_p,
        shown_y,
        yerr=np.vstack([below, 2 * stderr]),
        fmt="o-",
        capsize=3,
        label=f"{label}: observed rate",
    )
    if p_true is not None:
        p_true = np.asarray(p_true, dtype=float).ravel()
        true_mean = np.array([p_true[c].mean() for c in equal_mass_bins(p, n_bins)])
        ax.plot(mean_p, true_mean, "s-", label=f"{label}: mean true probability")
    if log_axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("mean predicted probability (equal-mass bins)")
    ax.set_ylabel("observed rate")
    ax.set_title(f"Reliability: {label} (n={y.size:,}, base rate {y.mean():.3%})")
    ax.legend(loc="upper left", fontsize="small")

    positive = p[p > 0]
    if log_axes and positive.size:
        bins = np.geomspace(positive.min(), max(positive.max(), positive.min() * 1.01), 40)
        hist.set_xscale("log")
    else:
        bins = 40
    hist.hist(p, bins=bins, color="tab:blue", alpha=0.7)
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("shipments")
    hist.set_title("distribution of predictions")
    return fig


def importance_by_field(
    names: Sequence[str], gains: np.ndarray, sources: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """Feature gains summed back onto the request fields they come from (largest first).

    A feature made from several fields (``cod_x_risk_tier``: payment_method and
    destination_country) shares its gain equally among them; a feature missing from
    ``sources`` counts under its own name. The total gain is unchanged."""
    gains = np.asarray(gains, dtype=float).ravel()
    if len(names) != gains.size:
        raise ValueError(f"{len(names)} names but {gains.size} gains")
    out: dict[str, float] = {}
    for name, gain in zip(names, gains.tolist(), strict=True):
        fields = tuple(sources.get(name, (name,))) or (name,)
        for f in fields:
            out[f] = out.get(f, 0.0) + gain / len(fields)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def importance_figure(
    names: Sequence[str], gains: np.ndarray, title: str, top: int = TOP_FEATURES
) -> Figure:
    """Horizontal bars of the ``top`` features by gain (largest on top), as share of total."""
    gains = np.asarray(gains, dtype=float).ravel()
    if len(names) != gains.size:
        raise ValueError(f"{len(names)} names but {gains.size} gains")
    order = np.argsort(-gains, kind="stable")[:top]
    total = gains.sum()
    share = gains[order] / total if total > 0 else gains[order]
    fig = _figure(8, 1.0 + 0.3 * max(len(order), 1))
    ax = fig.subplots()
    ax.barh(np.arange(len(order)), share, color="tab:blue")
    ax.set_yticks(np.arange(len(order)), [str(names[i]) for i in order], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("share of total gain" if total > 0 else "gain")
    ax.set_title(title)
    return fig
