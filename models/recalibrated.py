"""A base model recalibrated to one seller's rates (small sellers; docs/history.md, "Three
paths").

A few hundred shipments cannot train a model of their own, but they say a lot about the
seller's *level* of risk. Per outcome the seller's probability is the base model's, moved on
the log-odds scale:

    logit p = intercept + slope x logit p_base + region offset + channel offset

fitted as a penalised logistic regression (maximum a posteriori) whose Gaussian priors are
centred on "the base model is right": intercept ~ N(0, ``SD_INTERCEPT``), slope ~ N(1,
``SD_SLOPE``), each region's and each channel's offset ~ N(0, ``SD_GROUP``). A group with few
events keeps an offset near 0 (shrunk to the base model); one with many moves to its own
level: "where the data allow" is the prior's weight against the data's. Offsets are keyed by
the base pipeline's ``destination_country`` and ``channel_id`` codes (each country gets its
region's offset), so every scoring path reads them from the feature row; channels the base
never saw share code 0, hence one offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SD_INTERCEPT = 0.5
SD_SLOPE = 0.05
SD_GROUP = 0.3
"""Prior standard deviations (log-odds) of the recalibration's terms; see the module doc."""
EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _codes(X: np.ndarray, featurizer: Any, feature: str) -> np.ndarray | None:
    j = featurizer.column(feature)
    return None if j is None else X[:, j].astype(np.int64)


def _take(table: dict[str, float], codes: np.ndarray | None) -> np.ndarray | float:
    if codes is None or not table:
        return 0.0
    values = np.zeros(max(int(k) for k in table) + 1)
    for k, v in table.items():
        values[int(k)] = v
    inside = (codes >= 0) & (codes < len(values))
    return np.where(inside, values[np.clip(codes, 0, len(values) - 1)], 0.0)


@dataclass
class Recalibration:
    """One outcome's recalibration of a base model's calibrated probability."""

    intercept: float = 0.0
    slope: float = 1.0
    by_destination: dict[str, float] = field(default_factory=dict)
    """``destination_country`` code -> its region's offset (log-odds)."""
    by_channel: dict[str, float] = field(default_factory=dict)
    """``channel_id`` code -> the channel's offset (log-odds)."""
    rows: int = 0
    events: int = 0

    def __call__(self, p_base: np.ndarray, X: np.ndarray, featurizer: Any) -> np.ndarray:
        z = self.intercept + self.slope * _logit(p_base)
        z = z + _take(self.by_destination, _codes(X, featurizer, "destination_country"))
        z = z + _take(self.by_channel, _codes(X, featurizer, "channel_id"))
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Recalibration:
        return cls(
            float(state["intercept"]),
            float(state["slope"]),
            {str(k): float(v) for k, v in state.get("by_destination", {}).items()},
            {str(k): float(v) for k, v in state.get("by_channel", {}).items()},
            int(state.get("rows", 0)),
            int(state.get("events", 0)),
        )


def dump_recalibration(recalibration: dict[str, Recalibration]) -> str:
    """The stored form (JSON text) of a model's recalibrations."""
    import json

    return json.dumps({o: r.to_dict() for o, r in recalibration.items()}, indent=1)


def read_recalibration(text: str, heads: Sequence[str]) -> dict[str, Recalibration]:
    """The recalibrations of the model's heads, from :func:`dump_recalibration`'s text."""
    import json

    return {o: Recalibration.from_dict(v) for o, v in json.loads(text).items() if o in heads}


def fit_recalibration(
    p_base: np.ndarray,
    y: np.ndarray,
    regions: np.ndarray,
    channels: np.ndarray,
    region_of_code: dict[str, str],
) -> Recalibration:
    """MAP fit of one outcome (see the module doc). ``regions``: each row's destination
    region; ``channels``: each row's ``channel_id`` code; ``region_of_code``: the base
    pipeline's destination codes -> region, to spread the region offsets onto codes."""
    from scipy.optimize import minimize

    z = _logit(np.asarray(p_base, dtype=float))
    y = np.asarray(y, dtype=float)
    region_names, region_idx = np.unique(np.asarray(regions, dtype=str), return_inverse=True)
    codes = np.asarray(channels, dtype=np.int64)
    channel_names, channel_idx = np.unique(codes, return_inverse=True)
    n_r, n_c = len(region_names), len(channel_names)
    sd = np.concatenate([[SD_INTERCEPT, SD_SLOPE], np.full(n_r + n_c, SD_GROUP)])
    centre = np.zeros(2 + n_r + n_c)
    centre[1] = 1.0

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = theta[0] + theta[1] * z + theta[2:][region_idx] + theta[2 + n_r :][channel_idx]
        p = 1.0 / (1.0 + np.exp(-eta))
        nll = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
        r = p - y
        grad = np.concatenate(
            [
                [r.sum(), (r * z).sum()],
                np.bincount(region_idx, r, n_r),
                np.bincount(channel_idx, r, n_c),
            ]
        )
        dev = (theta - centre) / sd
        return nll + 0.5 * float(dev @ dev), grad + dev / sd

    bounds = [(None, None), (0.05, 5.0)] + [(None, None)] * (n_r + n_c)
    theta = minimize(objective, centre, jac=True, method="L-BFGS-B", bounds=bounds).x
    by_region = dict(zip(region_names.tolist(), theta[2 : 2 + n_r].tolist(), strict=True))
    return Recalibration(
        float(theta[0]),
        float(theta[1]),
        {c: by_region[r] for c, r in region_of_code.items() if r in by_region},
        {str(c): float(v) for c, v in zip(channel_names, theta[2 + n_r :], strict=True)},
        len(y),
        int(y.sum()),
    )
