"""A head as two competing causes: p = 1 - (1 - s(z_first)) (1 - s(z_second)).

Why: a parcel is refused by its buyer or returned by customs, and the two have different
drivers. Customs decide on the declaration, the goods, the duties terms and the papers,
whatever carrier brings the parcel; the buyer's refusal depends on the buyer, the payment
and the delivery (the carrier, how long it takes). One tree ensemble over every feature mixes
the two: on the confounded history (sellers send valuable, duty-paying goods by the channels
they trust) it learned part of the customs risk of a high-value parcel as a property of the
channel that usually carried it, and carried that to every other channel. Here each cause is
its own LightGBM ensemble that only sees its own features (``configs/train.yaml``: the
customs part never sees the channel, the buyer part never sees the customs paperwork nor
what the parcel is, its declared value and goods, so how refusal varies with value is the
same on every channel rather than learned per channel from the few valuable parcels each
carried), the two are boosted together on the one observed outcome, and their probabilities
combine as independent causes. The head's raw score is the log-odds of the combined
probability, so calibration, explanations and the scoring path treat it as any head.

Boosting: each round grows one tree per cause on the log-loss gradient of the combined
probability with respect to that cause's score (Fisher scoring for the hessian), with the
other cause held at its current score. Each cause's scores are LightGBM's own running
scores (read through its evaluation hook) plus its starting log-odds (``offsets``: both
causes start at the same rate q, with 1 - (1 - q)^2 the base rate, so neither is ahead).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from shiprisk.features.definitions import CHANNEL_FEATURES
from shiprisk.models.compiled import RawScorer
from shiprisk.models.storage import ModelIntegrityError, sha256_file, write_text

CAUSES_FILE = "causes.json"
"""A saved model's two-cause heads: offsets and names (absent: none)."""
SECOND_SUFFIX = "second"


def second_file(outcome: str) -> str:
    """The file of an outcome's second-cause booster, beside ``booster_<outcome>.txt``."""
    return f"booster_{outcome}_{SECOND_SUFFIX}.txt"


def model_text(booster: lgb.Booster) -> str:
    """The booster's text model, naming its objective: trees boosted on our own gradients
    have none, LightGBM then writes no ``objective`` line, and the compiler of the scoring
    path (lleaves) refuses a model without one; ``custom`` is LightGBM's own word for it
    (raw scores are unchanged, and they are all we read)."""
    text = booster.model_to_string()
    if "\nobjective=" in text:
        return text
    return text.replace("\nmax_feature_idx=", "\nobjective=custom\nmax_feature_idx=", 1)


def _log_sigmoid_neg(z: np.ndarray) -> np.ndarray:
    """log(1 - s(z)), stable for any z."""
    return -np.logaddexp(0.0, z)


def combined_logit(z_first: np.ndarray, z_second: np.ndarray) -> np.ndarray:
    """Log-odds of 1 - (1 - s(z_first)) (1 - s(z_second)), without overflow."""
    log_none = _log_sigmoid_neg(z_first) + _log_sigmoid_neg(z_second)  # log(1 - p)
    log_none = np.minimum(log_none, -1e-300)
    return np.log(-np.expm1(log_none)) - log_none


@dataclass
class SecondCause:
    """The second cause of a two-cause head, and the two causes' starting log-odds."""

    booster: lgb.Booster
    offsets: tuple[float, float]
    names: tuple[str, str] = ("first", "second")
    compiled: RawScorer | None = field(default=None, repr=False)

    def combine(self, first_raw: np.ndarray, X: np.ndarray, num_threads: int = 1) -> np.ndarray:
        """The head's raw score from the first cause's trees' output and the rows."""
        if self.compiled is not None:
            second_raw = self.compiled(X, num_threads or 1)
        else:
            second_raw = self.booster.predict(X, raw_score=True, num_threads=num_threads)
        return combined_logit(first_raw + self.offsets[0], second_raw + self.offsets[1])

    def to_dict(self) -> dict[str, Any]:
        return {"offsets": list(self.offsets), "names": list(self.names)}


def _gradients(
    y: np.ndarray, z_own: np.ndarray, z_other: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """d(log loss)/dz_own and its Fisher information, for p = 1 - (1-s_own)(1-s_other)."""
    s_own = 1.0 / (1.0 + np.exp(-z_own))
    s_other = 1.0 / (1.0 + np.exp(-z_other))
    p = np.clip(1.0 - (1.0 - s_own) * (1.0 - s_other), 1e-12, 1.0 - 1e-12)
    dp = s_own * (1.0 - s_own) * (1.0 - s_other)
    grad = -y * dp / p + (1.0 - y) * s_own
    hess = np.maximum(dp * dp / (p * (1.0 - p)), 1e-12)
    return grad, hess


def _log_loss(y: np.ndarray, z_first: np.ndarray, z_second: np.ndarray) -> float:
    z = combined_logit(z_first, z_second)
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_two_causes(
    params: Sequence[Mapping[str, Any]],
    categorical: Sequence[int],
    train: tuple[np.ndarray, np.ndarray],
    valid: tuple[np.ndarray, np.ndarray] | None,
    rounds: int,
    patience: int | None,
    names: tuple[str, str] = ("first", "second"),
) -> tuple[lgb.Booster, SecondCause, int]:
    """Boost the two causes together (LightGBM ``params`` per cause); with ``valid``, stop
    when its log loss has not improved for ``patience`` rounds and keep the best round.
    Returns the first cause's booster, the second cause and the rounds kept."""
    X, y = train
    y = y.astype(np.float64)
    rate = float(np.clip(y.mean(), 1e-6, 1.0 - 1e-6))
    half = 1.0 - np.sqrt(1.0 - rate)  # each cause alone at this rate gives ``rate``
    offset = float(np.log(half / (1.0 - half)))
    offsets = (offset, offset)
    boosters, scores, valid_scores = [], [], []
    for p in params:
        settings = {**p, "objective": "none", "metric": "None", "verbose": p.get("verbose", -1)}
        data = lgb.Dataset(X, y, categorical_feature=list(categorical), free_raw_data=False)
        booster = lgb.Booster(settings, data)
        scores.append(np.full(len(y), offset))
        if valid is not None:
            booster.add_valid(lgb.Dataset(*valid, reference=data), "valid")
            valid_scores.append(np.full(len(valid[1]), offset))
        boosters.append(booster)
    best, best_loss = rounds, np.inf
    for it in range(rounds):
        for k in (0, 1):
            grad, hess = _gradients(y, scores[k], scores[1 - k])
            boosters[k].update(fobj=lambda _preds, _data, g=grad, h=hess: (g, h))
            scores[k] = offset + _scores(boosters[k], "train")
            if valid is not None:
                valid_scores[k] = offset + _scores(boosters[k], "valid")
        if valid is not None:
            loss = _log_loss(valid[1].astype(np.float64), *valid_scores)
            if loss < best_loss - 1e-9:
                best, best_loss = it + 1, loss
            elif it + 1 - best >= (patience or rounds):
                break
    kept = [lgb.Booster(model_str=b.model_to_string(num_iteration=best)) for b in boosters]
    return kept[0], SecondCause(kept[1], offsets, names), best


def _scores(booster: lgb.Booster, data: str) -> np.ndarray:
    """The booster's current raw scores on its training or validation rows, as LightGBM keeps
    them (updated with each tree; read through the public evaluation hook, not re-predicted)."""
    found: list[np.ndarray] = []

    def keep(preds: np.ndarray, _data: lgb.Dataset) -> tuple[str, float, bool]:
        found.append(np.array(preds, dtype=np.float64))
        return "scores", 0.0, False

    (booster.eval_train if data == "train" else booster.eval_valid)(feval=keep)
    return found[0]


def cause_exclude(cause: Mapping[str, Any]) -> list[str]:
    """The features a cause must never split on: its ``exclude`` list, plus every feature
    that depends on the channel when ``exclude_channel`` is set (features/definitions.py)."""
    names = [str(f) for f in cause.get("exclude", [])]
    if cause.get("exclude_channel", False):
        names += list(CHANNEL_FEATURES)
    return names


def fit_two_cause_head(
    params: Sequence[Mapping[str, Any]],
    names: tuple[str, str],
    categorical: Sequence[int],
    X: np.ndarray,
    y: np.ndarray,
    cut: int,
    rounds: int,
    patience: int,
    refit: bool,
) -> tuple[lgb.Booster, SecondCause, int, int]:
    """Early stopping on the rows from ``cut`` on, then (``refit``) the whole of ``X`` for
    the best round count scaled by the rows it adds, as the one-ensemble heads do.
    Returns the first cause's booster, the second cause, the best and the kept rounds."""
    first, second, best = fit_two_causes(
        params, categorical, (X[:cut], y[:cut]), (X[cut:], y[cut:]), rounds, patience, names
    )
    if not refit:
        return first, second, best, best
    used = max(1, round(best * len(X) / cut))
    first, second, _ = fit_two_causes(params, categorical, (X, y), None, used, None, names)
    return first, second, best, used


def save_causes(directory: Path, causes: Mapping[str, SecondCause]) -> dict[str, str]:
    """Write each second cause's booster and the causes file; their SHA-256 by file name
    (for the manifest)."""
    if not causes:
        return {}
    files = {}
    for outcome, second in causes.items():
        name = second_file(outcome)
        write_text(directory / name, model_text(second.booster))
        files[name] = sha256_file(directory / name)
    stored = {o: c.to_dict() for o, c in causes.items()}
    write_text(directory / CAUSES_FILE, json.dumps(stored, indent=1))
    files[CAUSES_FILE] = sha256_file(directory / CAUSES_FILE)
    return files


def load_causes(
    directory: Path, manifest: Mapping[str, Any], heads: Sequence[str]
) -> dict[str, SecondCause]:
    """The second causes of the two-cause heads a saved model has (none if no file);
    ``heads``: the outcomes with a first cause (their boosters)."""
    if CAUSES_FILE not in manifest["files"]:
        return {}
    stored = json.loads((directory / CAUSES_FILE).read_text())
    causes = {}
    for outcome, spec in stored.items():
        if outcome not in heads:
            raise ModelIntegrityError(f"model {directory.name}: {outcome} has no first cause")
        name = second_file(outcome)
        if name not in manifest["files"]:
            raise ModelIntegrityError(f"model file {name} is missing")
        booster = lgb.Booster(model_str=(directory / name).read_text())
        offsets = (float(spec["offsets"][0]), float(spec["offsets"][1]))
        causes[outcome] = SecondCause(
            booster, offsets, tuple(spec.get("names", ())) or ("first", "second")
        )
    return causes
