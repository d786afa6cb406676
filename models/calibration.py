"""Platt scaling with a time trend: how a head's raw score becomes a probability."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shiprisk.data.outcomes import LABEL_OF
from shiprisk.features.pipeline import ShipmentFeaturizer

TIME_FEATURE = "months_since_2000"


@dataclass
class PlattCalibrator:
    """p = sigmoid(a * raw_score + b + c * (clip(months, t_min, t_max) - t_ref) / 12).

    ``months`` is the row's ``months_since_2000``; ``c`` is a drift in log-odds per year.
    Why a time term: the rates drift slowly (a few % a year), too weakly for the trees to
    split on time reliably, and plain Platt on the calibration slice (the newest rows) then
    pulls every prediction to that slice's level, which under-predicts older rows by the
    drift, on top of the slice's own sampling noise (~600 loss events). Fitted on the
    training and calibration slices together, the trend uses ~5x the events; rows newer
    than the calibration slice (live scoring) get its newest level (``t_max``), as trees
    would, and rows older than the history its oldest (``t_min``): the trend is never
    extrapolated beyond the period it was fitted on. Without ``months`` at fit, ``c`` stays
    0: plain Platt scaling. (Models saved before ``t_min`` existed load with ``None``: no
    lower clamp, as they were fitted.)
    """

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    t_ref: float = 0.0
    t_max: float = 0.0
    t_min: float | None = None

    def fit(
        self, raw: np.ndarray, y: np.ndarray, months: np.ndarray | None = None
    ) -> PlattCalibrator:
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, max_iter=1000)
        if months is None:
            lr.fit(raw.reshape(-1, 1), y.astype(int))
            self.a, self.b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
            return self
        self.t_ref, self.t_max = float(np.mean(months)), float(np.max(months))
        self.t_min = float(np.min(months))
        lr.fit(np.column_stack([raw, self._years(months)]), y.astype(int))
        self.a, self.c = (float(v) for v in lr.coef_[0])
        self.b = float(lr.intercept_[0])
        return self

    def _years(self, months: np.ndarray) -> np.ndarray:
        low = -np.inf if self.t_min is None else self.t_min
        return (np.clip(months, low, self.t_max) - self.t_ref) / 12.0

    def __call__(self, raw: np.ndarray, months: np.ndarray | None = None) -> np.ndarray:
        z = self.a * raw + self.b
        if self.c != 0.0:
            if months is None:
                raise ValueError("this calibrator has a time term: pass months")
            z = z + self.c * self._years(months)
        return 1.0 / (1.0 + np.exp(-z))


def calibrate_head(
    featurizer: ShipmentFeaturizer,
    raw: np.ndarray,
    X: np.ndarray,
    X_cal: np.ndarray,
    y: np.ndarray,
    calibration: pd.DataFrame,
    outcome: str,
) -> PlattCalibrator:
    """Platt scaling with the time trend on the training and calibration rows' raw scores
    (``raw``: both slices, in that order)."""
    y_cal = (calibration["outcome"] == LABEL_OF[outcome]).to_numpy()
    t = featurizer.column(TIME_FEATURE)
    months = None if t is None else np.concatenate([X[:, t], X_cal[:, t]])
    return PlattCalibrator().fit(raw, np.concatenate([y, y_cal]), months)
