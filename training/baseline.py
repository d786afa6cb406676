"""The baseline risk model: L2-regularised logistic regression with C tuned on validation.

One instance per outcome. It sees the same feature matrix as the gradient-boosted model, so
the gap between the two measures what the non-linear model buys. Categorical columns (integer
codes, 0 = unknown) are one-hot encoded, the rest imputed (median, plus a missing flag, since
the boosted model handles NaN natively) and standardised so one C fits all coefficients.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from shiprisk.training.evaluate import binary_log_loss

SOLVER = "lbfgs"
"""lbfgs, warm-started along the C grid. 'newton-cholesky' needs fewer iterations but each is
a dense X'WX product whose multithreaded BLAS slows down badly when the 2 cores are shared.
lbfgs is memory-bound, so fits run with BLAS limited to one thread (measured on 150k x 40
with 8 categorical columns, 2 shared cores at load ~6: 18 s wall with one thread, 23-36 s
with two)."""


class LogisticBaseline:
    """L2 logistic regression for one binary outcome, C chosen by validation log loss.

    The model kept is the one fitted on the training rows with the best C (no refit on
    train + validation), so it is comparable to a boosted model early-stopped on the same
    validation window.
    """

    def __init__(
        self,
        Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
        max_iter: int = 1000,
        tol: float = 1e-5,
    ):
        self.Cs = Cs
        self.max_iter = max_iter
        self.tol = tol  # lbfgs' default 1e-4 stops ~4e-5 nats short: enough to mis-rank C

    def _preprocessor(self, n_columns: int, categorical: list[int]) -> ColumnTransformer:
        numeric = [i for i in range(n_columns) if i not in set(categorical)]
        cat_pipe = make_pipeline(
            SimpleImputer(strategy="constant", fill_value=0.0),  # NaN code = unknown (0)
            OneHotEncoder(handle_unknown="ignore", dtype=np.float64),
        )
        num_pipe = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
        )
        return ColumnTransformer(
            [("cat", cat_pipe, list(categorical)), ("num", num_pipe, numeric)],
            sparse_threshold=0.0,  # dense: ~200 columns, and lbfgs' X @ w is faster dense
        )

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        categorical: list[int],
        X_val: np.ndarray,
        y_val: np.ndarray,
    ) -> LogisticBaseline:
        """Fit one model per C on (X, y), keep the one with the lowest log loss on (X_val, y_val).

        Sets ``C_``, ``pipeline_`` (preprocessing + classifier), ``val_log_loss_`` (C -> loss),
        ``categorical_`` and ``n_features_in_``.
        """
        X = np.asarray(X, dtype=float)
        X_val = np.asarray(X_val, dtype=float)
        y = np.asarray(y).astype(int).ravel()
        y_val = np.asarray(y_val).astype(int).ravel()
        if X.ndim != 2 or X_val.ndim != 2 or X.shape[1] != X_val.shape[1]:
            raise ValueError("X and X_val must be 2-d with the same number of columns")
        if len(y) != len(X) or len(y_val) != len(X_val):
            raise ValueError("labels and rows differ in length")
        if not (np.isin(y, (0, 1)).all() and np.isin(y_val, (0, 1)).all()):
            raise ValueError("labels must be 0/1")
        if np.unique(y).size != 2:
            raise ValueError("training labels need both classes")
        if not self.Cs:
            raise ValueError("Cs must hold at least one value")
        bad = [i for i in categorical if not 0 <= i < X.shape[1]]
        if bad:
            raise ValueError(f"categorical indices out of range: {bad}")

        prep = self._preprocessor(X.shape[1], list(categorical)).fit(X)
        Z, Z_val = prep.transform(X), prep.transform(X_val)
        with threadpool_limits(limits=1, user_api="blas"):
            best, losses = self._fit_grid(Z, y, Z_val, y_val)
        self.C_ = float(best.C)
        self.val_log_loss_ = losses
        self.pipeline_ = Pipeline([("prep", prep), ("clf", best)])
        self.categorical_ = list(categorical)
        self.n_features_in_ = X.shape[1]
        return self

    def _fit_grid(
        self, Z: np.ndarray, y: np.ndarray, Z_val: np.ndarray, y_val: np.ndarray
    ) -> tuple[LogisticRegression, dict[float, float]]:
        """One fit per C (ascending), returning the best model and C -> validation log loss."""
        losses: dict[float, float] = {}
        best: LogisticRegression | None = None
        # Strongest penalty first; each fit starts from the previous solution (warm start).
        clf = LogisticRegression(solver=SOLVER, max_iter=self.max_iter, tol=self.tol)
        clf.set_params(warm_start=True)
        for C in sorted(float(c) for c in self.Cs):
            clf.set_params(C=C).fit(Z, y)
            losses[C] = binary_log_loss(y_val, clf.predict_proba(Z_val)[:, 1])
            if best is None or losses[C] < losses[best.C]:
                best = copy.deepcopy(clf)
        assert best is not None
        best.set_params(warm_start=False)
        return best, losses

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(y = 1) for each row, shape (n,)."""
        if not hasattr(self, "pipeline_"):
            raise RuntimeError("LogisticBaseline is not fitted; call fit() first")
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected a 2-d array with {self.n_features_in_} columns")
        return self.pipeline_.predict_proba(X)[:, 1]
