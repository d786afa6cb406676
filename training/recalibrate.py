"""Small sellers: recalibrate the bundled base model, and choose it or a model of their own.

The **bundled base model** is the model ``shiprisk run`` trains: ``SHIPRISK_DEFAULT_ROWS``
(300,000) shipments of the default simulated world, seed ``SHIPRISK_DEFAULT_SEED`` (7), the
training config, no MLflow. It needs no network: the first ``train`` that wants it fits it
once and caches it under ``SHIPRISK_HOME/base-model`` (minutes); later runs load it.
``SHIPRISK_BASE_MODEL`` chooses another saved model directory, or ``off``.

For a history with fewer than ``RECAL_MAX_ROWS`` usable rows ``train`` recalibrates the base
model on the training and calibration slices (models/recalibrated.py) and, where the history
can also train a model of its own, keeps the recalibration unless the own model's log loss on
the held-out test slice (the same time split), summed over the outcomes, is lower by more than
one standard error of the paired difference (:func:`choose`). Above ``RECAL_MAX_ROWS`` a
model of its own is trained without the comparison (BENCHMARKS.md: at 30,000 rows of a seller
world with an interaction, the own model already wins).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shiprisk.data.catalogs import load_catalog
from shiprisk.models.recalibrated import fit_recalibration
from shiprisk.models.risk_model import (
    MANIFEST,
    OUTCOME_LABEL,
    OUTCOMES,
    IncompatibleModelError,
    ModelIntegrityError,
    RiskModel,
    model_digest,
)
from shiprisk.settings import get_settings

RECAL_MAX_ROWS = 50_000
"""Histories this small compare a recalibrated base model with a model of their own."""
MIN_RECAL_EVENTS = 5
"""Events (of any one outcome) in the training + calibration slices a recalibration needs."""
BASE_DIR = "base-model"
OWN, RECALIBRATED = "own", "recalibrated"
UNKNOWN_REGION = "unknown"


@dataclass
class Base:
    model: RiskModel
    name: str
    """What the base is, e.g. 'bundled base 1a2b3c4d5e6f7a8b (300,000 simulated ...)'."""


@dataclass
class Choice:
    """Which path ``train`` took and the held-out log losses that decided it."""

    path: str
    log_loss: dict[str, float]
    """'own', 'recalibrated', 'base': summed over outcomes, on the test slice; and
    'difference_se' (the standard error of own - recalibrated, when both exist)."""
    line: str

    def tags(self, base: Base) -> dict[str, str]:
        tags = {"path": self.path}
        if self.path == RECALIBRATED:
            tags["recalibrated_from"] = base.name
        return tags


def recalibration_considered(rows: int) -> bool:
    """Whether ``train`` tries a recalibrated base model for a history of ``rows`` rows."""
    return get_settings().base_model != "off" and rows < RECAL_MAX_ROWS


def can_recalibrate(frame: pd.DataFrame) -> bool:
    """Enough events of some outcome (``frame``: the training + calibration slices)."""
    counts = frame["outcome"].value_counts()
    return any(int(counts.get(OUTCOME_LABEL[o], 0)) >= MIN_RECAL_EVENTS for o in OUTCOMES)


def base_dir() -> Path:
    return get_settings().home / BASE_DIR


def load_base(steps: Any = None) -> Base:
    """The configured base model; the bundled one is fitted and cached on first use."""
    setting = get_settings().base_model
    if setting not in ("auto", "off"):
        path = Path(setting)
        try:
            return Base(RiskModel.load(path), f"{path.name} {model_digest(path)}")
        except (ModelIntegrityError, IncompatibleModelError, OSError) as exc:
            from shiprisk.training.train import TrainingDataError

            raise TrainingDataError(
                f"SHIPRISK_BASE_MODEL={setting} cannot be the base model ({exc}); set it to a "
                "saved model directory, 'auto' (the bundled one) or 'off'"
            ) from exc
    cached = base_dir()
    if (cached / MANIFEST).is_file():
        try:
            return Base(RiskModel.load(cached), _bundled_name(cached))
        except IncompatibleModelError:
            pass  # fitted by older code: fit it again
    rows = get_settings().default_rows
    text = f"fitting the bundled base model once ({rows:,} simulated shipments; cached)"
    if steps is None:
        _build_base(cached)
    else:
        with steps.step(text):
            _build_base(cached)
    return Base(RiskModel.load(cached), _bundled_name(cached))


def _bundled_name(directory: Path) -> str:
    settings = get_settings()
    return (
        f"bundled base {model_digest(directory)} ({settings.default_rows:,} simulated "
        f"shipments of the default world, seed {settings.default_seed})"
    )


def _build_base(target: Path) -> None:
    from shiprisk.data.simulator import simulate
    from shiprisk.training.config import load_config
    from shiprisk.training.train import fit_risk_model, time_split

    settings = get_settings()
    config = load_config()
    splits = time_split(simulate(settings.default_rows, settings.default_seed), config)
    model = fit_risk_model(splits, config)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def save_base(model: RiskModel, target: Path | None = None) -> Path:
    """Store ``model`` as the cached base (tests and benchmarks bring their own)."""
    target = target or base_dir()
    shutil.rmtree(target, ignore_errors=True)
    return model.save(target)


def _region_of_code(model: RiskModel) -> dict[str, str]:
    """The base pipeline's destination codes -> region (code 0: unknown countries)."""
    regions = {d.country: d.region for d in load_catalog().destinations}
    countries = model.featurizer.categories_.get("destination_country", [])
    out = {str(i + 1): regions.get(c, UNKNOWN_REGION) for i, c in enumerate(countries)}
    return {"0": UNKNOWN_REGION, **out}


def recalibrate(base: Base, frame: pd.DataFrame) -> RiskModel:
    """The base model with each outcome the history records recalibrated on ``frame``."""
    model = base.model
    X = model.featurizer.transform(frame)
    p_base = model.predict_matrix(X)
    region_of_code = _region_of_code(model)
    n = len(frame)
    dest, chan = (model.featurizer.column(f) for f in ("destination_country", "channel_id"))
    dest_codes = X[:, dest].astype(np.int64) if dest is not None else np.zeros(n, np.int64)
    chan_codes = X[:, chan].astype(np.int64) if chan is not None else np.zeros(n, np.int64)
    regions = np.array([region_of_code.get(str(c), UNKNOWN_REGION) for c in dest_codes])
    recal = {}
    for outcome in model.outcomes:
        y = (frame["outcome"] == OUTCOME_LABEL[outcome]).to_numpy()
        if y.any():  # never recorded (an export without it): the base head is its prior
            recal[outcome] = fit_recalibration(
                p_base[outcome], y, regions, chan_codes, region_of_code
            )
    info = {**model.info, "recalibrated_from": base.name}
    return RiskModel(
        model.featurizer,
        model.boosters,
        model.calibrators,
        info,
        {},
        model.support,
        model.support_events,
        dict(model.priors),
        recal,
        causes=model.causes,
    )


def row_log_losses(model: RiskModel, test: pd.DataFrame) -> np.ndarray:
    """Each test row's log loss, summed over the outcomes (every outcome scored)."""
    from shiprisk.training.evaluate import EPS, outcome_labels

    probs = model.predict_matrix(model.featurizer.transform(test))
    labels = outcome_labels(test)
    out = np.zeros(len(test))
    for o in OUTCOMES:
        p, y = np.clip(probs[o], EPS, 1 - EPS), labels[o]
        out -= y * np.log(p) + (1 - y) * np.log1p(-p)
    return out


def choose(own: RiskModel | None, recal: RiskModel, base: Base, test: pd.DataFrame) -> Choice:
    """The recalibrated base model or the own model, by held-out log loss.

    The one-standard-error rule: the recalibration (a few parameters on a model that already
    knows the world) is kept unless the own model's log loss is lower by more than one
    standard error of the paired per-row difference; on a small test slice a model of its
    own often wins by chance."""
    rows = {RECALIBRATED: row_log_losses(recal, test), "base": row_log_losses(base.model, test)}
    where = f"held-out log loss on the test slice ({len(test):,} rows, summed over outcomes)"
    if own is None:
        losses = {k: float(v.mean()) for k, v in rows.items()}
        line = (
            f"recalibrated base model: too few events for a model of its own; {where} "
            f"{losses[RECALIBRATED]:.5f} (base model as is: {losses['base']:.5f})"
        )
        return Choice(RECALIBRATED, losses, line)
    rows[OWN] = row_log_losses(own, test)
    losses = {k: float(v.mean()) for k, v in rows.items()}
    diff = rows[OWN] - rows[RECALIBRATED]
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
    losses["difference_se"] = se
    path = OWN if float(diff.mean()) < -se else RECALIBRATED
    other = OWN if path == RECALIBRATED else RECALIBRATED
    names = {OWN: "a model of its own", RECALIBRATED: "the recalibrated base model"}
    line = (
        f"chose {names[path]}: {where} {losses[path]:.5f} vs {losses[other]:.5f} for "
        f"{names[other]} (an own model must be lower by one standard error of the paired "
        f"difference, {se:.5f}; base model as is: {losses['base']:.5f})"
    )
    return Choice(path, losses, line)


def log_choice(choice: Choice, base: Base) -> None:
    """The choice and both figures in the MLflow run."""
    import mlflow

    mlflow.log_param("path", choice.path)
    mlflow.log_param("base_model", base.name[:480])
    mlflow.log_metrics({f"choice/log_loss_{k}": v for k, v in choice.log_loss.items()})
    mlflow.set_tags(choice.tags(base) | {"choice": choice.line[:4000]})
