"""Outcomes scored from a prior: a history that records only some outcomes trains heads for
those, and the others get a documented prior rate per channel (docs/history.md, "Heads
where the labels allow").

The prior of one outcome on a channel is, in order: the channel's own prior rate from the
catalog the model was trained under (``prior_<outcome>_rate``, by the channel's code), else
the simulated world's base rate for channels of its type and tracking level, else for its
type, else the overall rate. It reads only the channel columns of the feature matrix
(``channel_id`` code, ``channel_type``, ``tracking_level``), so every scoring path (online,
batch, evaluation) gets the same figure with no channel ids passed around.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MODEL, PRIOR, RECALIBRATED = "model", "prior", "recalibrated"
"""Where an outcome's probability comes from: a trained head, the prior, or a base model's
head recalibrated to the seller (models/recalibrated.py)."""
N_TYPES, N_LEVELS = 5, 3
"""``channel_type`` feature codes (0 = unknown, 1..4) and tracking levels (0..2)."""


@dataclass
class OutcomePrior:
    """A per-channel constant probability for an outcome the model has no head for."""

    default: float
    by_code: dict[str, float] = field(default_factory=dict)
    """``channel_id`` feature code -> the catalog row's prior rate."""
    by_type_tracking: dict[str, float] = field(default_factory=dict)
    """``"<channel_type code>/<tracking level>"`` -> the world's base rate."""
    by_type: dict[str, float] = field(default_factory=dict)
    """``channel_type`` code -> the world's base rate."""

    def __call__(self, X: np.ndarray, featurizer: Any) -> np.ndarray:
        """(n,) prior probability of each encoded row."""
        n = len(X)
        p = np.full(n, np.nan)
        code_col, type_col, level_col = (
            featurizer.column(c) for c in ("channel_id", "channel_type", "tracking_level")
        )
        if code_col is not None and self.by_code:
            codes = X[:, code_col].astype(np.int64)
            table = np.full(max(int(k) for k in self.by_code) + 1, np.nan)
            for k, v in self.by_code.items():
                table[int(k)] = v
            inside = (codes >= 0) & (codes < len(table))
            p[inside] = table[codes[inside]]
        if type_col is not None:
            types = np.clip(X[:, type_col].astype(np.int64), 0, N_TYPES - 1)
            by_type = np.full(N_TYPES, np.nan)
            for k, v in self.by_type.items():
                by_type[int(k)] = v
            if level_col is not None:
                levels = np.clip(X[:, level_col].astype(np.int64), 0, N_LEVELS - 1)
                grid = np.full((N_TYPES, N_LEVELS), np.nan)
                for k, v in self.by_type_tracking.items():
                    t, level = (int(part) for part in k.split("/"))
                    grid[t, level] = v
                p = np.where(np.isnan(p), grid[types, levels], p)
            p = np.where(np.isnan(p), by_type[types], p)
        return np.where(np.isnan(p), self.default, p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "by_code": self.by_code,
            "by_type_tracking": self.by_type_tracking,
            "by_type": self.by_type,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> OutcomePrior:
        return cls(
            float(state["default"]),
            {str(k): float(v) for k, v in state.get("by_code", {}).items()},
            {str(k): float(v) for k, v in state.get("by_type_tracking", {}).items()},
            {str(k): float(v) for k, v in state.get("by_type", {}).items()},
        )
