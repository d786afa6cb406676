"""What a head may learn from each feature: LightGBM's per-column parameters from the named
``monotone`` and ``exclude`` settings of a head in ``configs/train.yaml``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shiprisk.features.pipeline import ShipmentFeaturizer


def head_constraints(
    featurizer: ShipmentFeaturizer,
    monotone: Mapping[str, int] | None,
    exclude: Sequence[str] | None,
) -> dict[str, Any]:
    """``monotone_constraints`` and ``feature_contri`` for LightGBM (only those asked for)."""
    params: dict[str, Any] = {}
    if monotone:
        params["monotone_constraints"] = _monotone(featurizer, monotone)
    if exclude:
        params["feature_contri"] = _contributions(featurizer, exclude)
    return params


def _monotone(featurizer: ShipmentFeaturizer, wanted: Mapping[str, int]) -> list[int]:
    """Per-column monotone constraints from {feature: direction} (features this model does
    not use are ignored; categorical columns cannot be constrained)."""
    directions = [0] * len(featurizer.feature_names_)
    for name, direction in wanted.items():
        j = featurizer.column(name)
        if j is not None and j not in featurizer.categorical_features_:
            directions[j] = int(direction)
    return directions


def _contributions(featurizer: ShipmentFeaturizer, unused: Sequence[str]) -> list[float]:
    """Per-column split-gain multipliers: 0 for the features a head must never split on
    (``exclude``), 1 for the others."""
    skip = set(unused)
    return [0.0 if name in skip else 1.0 for name in featurizer.feature_names_]
