"""The risk model: p_loss and p_reject for a shipment on a channel.

Design choice: **two binary LightGBM heads** (lost vs not, rejected vs not) rather than one
3-class model. Loss is rare (~1 %) and rejection common (~10 %); separate heads get their
own regularisation, early stopping and calibration, and the reasons are given per risk. A
head may be refitted after early stopping on the whole training slice
(``refit_full_train``): the early-stopping window is the newest data (the world drifts), and
for the rare loss outcome 15 % more events matter. Each head is calibrated with Platt
scaling on its raw score plus a linear time term (:class:`PlattCalibrator`), fitted on the
training and calibration slices together; if the two calibrated probabilities ever sum
above 1 they are renormalised.

A head may be two competing causes (``two_causes`` in ``configs/train.yaml``; the reject head
is: buyer refusal and customs return, ``models/two_causes.py``): two ensembles, each barred
from the other cause's features, whose combined probability's log-odds is the head's raw
score, so calibration, explanations and scoring treat it as any head.

Storage is pickle-free: each booster as LightGBM's text model, the feature pipeline and
the calibration as JSON, the training support per channel x value band x destination tier
(``models/support.py``) as JSON, and a manifest with the SHA-256 of every file, checked on
load (so the registry's digest covers the support counts too).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from shiprisk.data.atomic import write_text_atomic
from shiprisk.data.outcomes import EVENT_KEYS, LABEL_OF
from shiprisk.features.pipeline import (
    MissingFeaturesError,
    ShipmentFeaturizer,
    missing_features,
)
from shiprisk.models import support as support_mod
from shiprisk.models.compiled import RawScorer, compile_head
from shiprisk.models.head_constraints import head_constraints
from shiprisk.models.priors import MODEL, PRIOR, RECALIBRATED, OutcomePrior
from shiprisk.models.recalibrated import Recalibration, dump_recalibration, read_recalibration
from shiprisk.models.two_causes import (
    SECOND_SUFFIX,
    SecondCause,
    cause_exclude,
    fit_two_cause_head,
    model_text,
)

OUTCOMES = EVENT_KEYS
OUTCOME_LABEL = LABEL_OF
"""Head name -> the contract's outcome word it predicts."""
FORMAT_VERSION = 1
FORMAT_WITH_CAUSES = 2
"""Written by a model with a two-cause head: code from before two-cause heads reads format 1
only, so it refuses such a model instead of scoring its first cause alone."""
MANIFEST = "manifest.json"
PIPELINE_FILE = "pipeline.json"
CALIBRATION_FILE = "calibration.json"
SUPPORT_FILE = "support.json"
PRIORS_FILE = "priors.json"
"""Outcomes without a head and their priors (models/priors.py); absent = every head trained."""
RECALIBRATION_FILE = "recalibration.json"
"""A base model recalibrated to a seller (models/recalibrated.py); absent = none."""
CAUSES_FILE = "causes.json"
"""Heads fitted as two competing causes (models/two_causes.py); absent = none."""
MAX_TOTAL = 1.0 - 1e-6
TIME_FEATURE = "months_since_2000"


class ModelIntegrityError(RuntimeError):
    """A stored model file is missing or does not match its recorded checksum."""


class IncompatibleModelError(ModelIntegrityError):
    """A stored model needs features this code does not compute: it cannot be served or
    promoted by this code (refused at load, never at request time)."""


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


@dataclass
class RiskModel:
    """Featurizer + one booster and one calibrator per outcome."""

    featurizer: ShipmentFeaturizer
    boosters: dict[str, lgb.Booster]
    calibrators: dict[str, PlattCalibrator]
    info: dict[str, Any] = field(default_factory=dict)
    compiled: dict[str, RawScorer] = field(default_factory=dict, repr=False)
    """Verified compiled forests by outcome (see ``models/compiled.py``); empty = LightGBM."""
    support: dict[str, int] | None = field(default=None, repr=False)
    """Training shipments per channel x value band x destination tier (``models/support.py``);
    None for a model stored before the counts were recorded."""
    support_events: dict[str, dict[str, int]] | None = field(default=None, repr=False)
    """Training events per outcome and cell, the same cells as ``support``."""
    priors: dict[str, OutcomePrior] = field(default_factory=dict)
    """Outcomes the history had too few labels for: scored from a prior, not a head."""
    recalibration: dict[str, Recalibration] = field(default_factory=dict)
    """A recalibrated base model: its heads moved to the seller's rates per outcome (an
    outcome the seller's history never records keeps the base head, as its prior)."""
    causes: dict[str, SecondCause] = field(default_factory=dict)
    """Heads fitted as two competing causes: the second cause per outcome (its first cause
    is the outcome's booster; models/two_causes.py)."""
    _grid: support_mod.SupportGrid | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """The support counts as dense arrays, built at the first lookup (answers look up every
    request)."""

    # -- training ----------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        train: pd.DataFrame,
        calibration: pd.DataFrame,
        params: Mapping[str, Mapping[str, Any]],
        *,
        early_stopping_share: float = 0.15,
        featurizer: ShipmentFeaturizer | None = None,
        heads: Sequence[str] | None = None,
    ) -> RiskModel:
        """Fit both heads on ``train`` (its newest slice for early stopping), then calibrate
        on ``train`` + ``calibration`` (see :class:`PlattCalibrator`). ``params[outcome]``
        holds LightGBM parameters incl. ``num_boost_round`` and ``early_stopping_rounds``, and
        optionally ``monotone`` ({feature: +1 or -1}: the head's answer never falls, or never
        rises, with that feature, all else equal; see ``configs/train.yaml``), ``exclude``
        (features the head never splits on, e.g. plain declared value for the loss head) and
        ``refit_full_train``: after early stopping, retrain on all of ``train`` for
        the best number of rounds scaled by the data it adds
        (``len(train) / early-stopping cut``), and ``two_causes`` (the head as two competing
        causes, each with the features it must never split on; models/two_causes.py).
        ``heads``: the outcomes to train a head for (default: all); the others need
        :attr:`priors` before the model scores."""
        featurizer = featurizer or ShipmentFeaturizer().fit(train)
        X = featurizer.transform(train)
        X_cal = featurizer.transform(calibration)
        cut = int(len(train) * (1.0 - early_stopping_share))
        boosters, calibrators, best, used, causes = {}, {}, {}, {}, {}
        for outcome in [o for o in OUTCOMES if heads is None or o in heads]:
            y = (train["outcome"] == OUTCOME_LABEL[outcome]).to_numpy()
            p = dict(params.get(outcome, {}))
            rounds = int(p.pop("num_boost_round", 500))
            patience = int(p.pop("early_stopping_rounds", 50))
            refit = bool(p.pop("refit_full_train", False))
            two = p.pop("two_causes", None)
            monotone, exclude = p.pop("monotone", None), list(p.pop("exclude", None) or [])
            p.update(head_constraints(featurizer, monotone, exclude))
            p.setdefault("objective", "binary")
            p.setdefault("verbose", -1)
            p.setdefault("num_threads", os.cpu_count() or 1)
            p.setdefault("seed", 0)
            cat = featurizer.categorical_features_
            if two:
                parts = [
                    {**p, **head_constraints(featurizer, monotone, exclude + cause_exclude(c))}
                    for c in two
                ]
                names = (str(two[0]["name"]), str(two[1]["name"]))
                fitted = fit_two_cause_head(parts, names, cat, X, y, cut, rounds, patience, refit)
                boosters[outcome], causes[outcome], best[outcome], used[outcome] = fitted
                raw = _head_raw(boosters[outcome], causes[outcome], np.vstack([X, X_cal]))
                calibrators[outcome] = _calibrate(
                    featurizer, raw, X, X_cal, y, calibration, outcome
                )
                continue
            dtrain = lgb.Dataset(X[:cut], y[:cut], categorical_feature=cat, free_raw_data=False)
            dvalid = lgb.Dataset(X[cut:], y[cut:], categorical_feature=cat, reference=dtrain)
            booster = lgb.train(
                p,
                dtrain,
                num_boost_round=rounds,
                valid_sets=[dvalid],
                callbacks=[lgb.early_stopping(patience, verbose=False)],
            )
            best[outcome] = used[outcome] = int(booster.best_iteration)
            if refit:
                full = lgb.Dataset(X, y, categorical_feature=cat)
                used[outcome] = max(1, round(best[outcome] * len(train) / cut))
                booster = lgb.train(p, full, num_boost_round=used[outcome])
            booster.free_dataset()
            boosters[outcome] = booster
            # Train + calibration rows: the time trend needs the whole period's events.
            raw = booster.predict(
                np.vstack([X, X_cal]), raw_score=True, num_iteration=booster.best_iteration
            )
            calibrators[outcome] = _calibrate(featurizer, raw, X, X_cal, y, calibration, outcome)
        info = {"best_iteration": best, "trees": used}
        shipments, events = _count_support(featurizer, train)
        return cls(featurizer, boosters, calibrators, info, {}, shipments, events, causes=causes)

    # -- scoring -----------------------------------------------------------------------------
    @property
    def outcomes(self) -> tuple[str, ...]:
        """The events this model has a head for (fitted or recalibrated on the seller's data),
        in outcome-spec order."""
        mine = self.recalibration or self.boosters
        return tuple(o for o in OUTCOMES if o in self.boosters and o in mine)

    @property
    def sources(self) -> dict[str, str]:
        """Per event: 'model' (a trained head), 'recalibrated' (a base model's head moved to
        the seller's rates) or 'prior' (models/priors.py)."""
        mine = self.outcomes
        return {
            o: (RECALIBRATED if self.recalibration else MODEL) if o in mine else PRIOR
            for o in OUTCOMES
            if o in self.boosters or o in self.priors
        }

    def predict_matrix(self, X: np.ndarray, num_threads: int = 0) -> dict[str, np.ndarray]:
        """Encoded features -> calibrated probability per event (outcome-spec order).

        The events are mutually exclusive, so their sum is kept below 1 (scaled down
        together where the independent heads overshoot).
        """
        months = self._months(X)
        probs = {
            o: self.calibrators[o](self.raw_scores(X, o, num_threads), months)
            if o in self.boosters
            else self.priors[o](X, self.featurizer)
            for o in self.sources
        }
        for o, recalibration in self.recalibration.items():
            probs[o] = recalibration(probs[o], X, self.featurizer)
        total = sum(probs.values())
        over = total > MAX_TOTAL
        if over.any():
            scale = np.where(over, MAX_TOTAL / np.where(over, total, 1.0), 1.0)
            probs = {o: p * scale for o, p in probs.items()}
        return probs

    def _months(self, X: np.ndarray) -> np.ndarray | None:
        """The time column the calibrators read, at its place in this model's list."""
        t = self.featurizer.column(TIME_FEATURE)
        return None if t is None else X[:, t]

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Batch path: contract rows (with channel_id) -> one ``p_<event>`` column each."""
        probs = self.predict_matrix(self.featurizer.transform(frame))
        return pd.DataFrame({f"p_{o}": p for o, p in probs.items()}, index=frame.index)

    def predict_records(
        self, records: Sequence[Mapping[str, Any]], num_threads: int = 1
    ) -> dict[str, np.ndarray]:
        """Online path: dicts in, arrays out; no DataFrame."""
        return self.predict_matrix(self.featurizer.transform_records(records), num_threads)

    def raw_scores(self, X: np.ndarray, outcome: str, num_threads: int = 1) -> np.ndarray:
        """Uncalibrated log-odds of one head: the compiled forest when there is one."""
        compiled = self.compiled.get(outcome)
        threads = num_threads or os.cpu_count() or 1
        if compiled is not None:
            raw = compiled(X, threads)
        else:
            raw = self.boosters[outcome].predict(X, raw_score=True, num_threads=num_threads)
        second = self.causes.get(outcome)
        return raw if second is None else second.combine(raw, X, threads)

    def feature_importance(self, outcome: str) -> np.ndarray:
        """Split gain per feature (both causes' trees for a two-cause head)."""
        gain = self.boosters[outcome].feature_importance(importance_type="gain")
        second = self.causes.get(outcome)
        if second is not None:
            gain = gain + second.booster.feature_importance(importance_type="gain")
        return gain

    # -- storage -----------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        """Write text boosters + JSON, then the manifest of checksums (written last)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        files: dict[str, str] = {}
        for outcome, booster in self.boosters.items():
            name = f"booster_{outcome}.txt"
            _write_text(directory / name, model_text(booster))
            files[name] = _sha256(directory / name)
        _write_text(directory / PIPELINE_FILE, json.dumps(self.featurizer.to_dict(), indent=1))
        files[PIPELINE_FILE] = _sha256(directory / PIPELINE_FILE)
        calibration = {o: asdict(c) for o, c in self.calibrators.items()}
        _write_text(directory / CALIBRATION_FILE, json.dumps(calibration, indent=1))
        files[CALIBRATION_FILE] = _sha256(directory / CALIBRATION_FILE)
        if self.support is not None:
            stored = {"shipments": self.support, "events": self.support_events or {}}
            _write_text(directory / SUPPORT_FILE, json.dumps(stored, indent=0, sort_keys=True))
            files[SUPPORT_FILE] = _sha256(directory / SUPPORT_FILE)
        if self.priors:
            priors = {o: p.to_dict() for o, p in self.priors.items()}
            _write_text(directory / PRIORS_FILE, json.dumps(priors, indent=1))
            files[PRIORS_FILE] = _sha256(directory / PRIORS_FILE)
        if self.recalibration:
            _write_text(directory / RECALIBRATION_FILE, dump_recalibration(self.recalibration))
            files[RECALIBRATION_FILE] = _sha256(directory / RECALIBRATION_FILE)
        if self.causes:
            for outcome, second in self.causes.items():
                name = f"booster_{outcome}_{SECOND_SUFFIX}.txt"
                _write_text(directory / name, model_text(second.booster))
                files[name] = _sha256(directory / name)
            stored = {o: c.to_dict() for o, c in self.causes.items()}
            _write_text(directory / CAUSES_FILE, json.dumps(stored, indent=1))
            files[CAUSES_FILE] = _sha256(directory / CAUSES_FILE)
        version = FORMAT_WITH_CAUSES if self.causes else FORMAT_VERSION
        manifest = {"format_version": version, "files": files, "info": self.info}
        _write_text(directory / MANIFEST, json.dumps(manifest, indent=1))
        return directory

    @classmethod
    def load(cls, directory: Path, *, compile_trees: bool = False) -> RiskModel:
        """Read a saved model, refusing any file whose checksum does not match.

        ``compile_trees`` (scoring processes) also compiles each booster to native code and
        uses it where it reproduces LightGBM's scores (``models/compiled.py``).
        """
        directory = Path(directory)
        manifest = read_manifest(directory)
        verify_files(directory, manifest)
        heads = [o for o in OUTCOMES if f"booster_{o}.txt" in manifest["files"]]
        boosters = {
            o: lgb.Booster(model_str=(directory / f"booster_{o}.txt").read_text()) for o in heads
        }
        featurizer = _load_featurizer(directory)
        calibration = json.loads((directory / CALIBRATION_FILE).read_text())
        calibrators = {o: PlattCalibrator(**calibration[o]) for o in heads}
        causes = _load_causes(directory, manifest, heads)
        _check_consistent(
            directory,
            featurizer,
            {**boosters, **{f"{o}_{SECOND_SUFFIX}": c.booster for o, c in causes.items()}},
            calibrators,
        )
        compiled = {}
        if compile_trees:
            for o in heads:
                scorer = compile_head(
                    directory / f"booster_{o}.txt",
                    boosters[o],
                    featurizer.categorical_features_,
                    featurizer.reference_,
                )
                second = causes.get(o)
                if second is not None and scorer is not None:
                    second.compiled = compile_head(
                        directory / f"booster_{o}_{SECOND_SUFFIX}.txt",
                        second.booster,
                        featurizer.categorical_features_,
                        featurizer.reference_,
                    )
                    scorer = scorer if second.compiled is not None else None
                if scorer is not None:
                    compiled[o] = scorer
        info = dict(manifest.get("info", {}))
        support = events = None
        if SUPPORT_FILE in manifest["files"]:
            stored = json.loads((directory / SUPPORT_FILE).read_text())
            support = {str(k): int(v) for k, v in stored["shipments"].items()}
            events = {
                o: {str(k): int(v) for k, v in c.items()} for o, c in stored["events"].items()
            }
        priors = {}
        if PRIORS_FILE in manifest["files"]:
            stored = json.loads((directory / PRIORS_FILE).read_text())
            priors = {o: OutcomePrior.from_dict(v) for o, v in stored.items() if o in OUTCOMES}
        recal = {}
        if RECALIBRATION_FILE in manifest["files"]:
            recal = read_recalibration((directory / RECALIBRATION_FILE).read_text(), heads)
        return cls(
            featurizer,
            boosters,
            calibrators,
            info,
            compiled,
            support,
            events,
            priors,
            recal,
            causes=causes,
        )

    def support_cells(
        self, channel_ids: np.ndarray, value_usd: np.ndarray, countries: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, K) training shipments, and the fewest training events of any outcome with a
        head, in the cell of each shipment (value in USD, destination country; (n,) each) on
        each of its channels ((n, K)); -1 where this model stores no counts. The tier comes
        from the model's own destination snapshot, as at training. An outcome scored from a
        prior has no events to count (``models/priors.py``)."""
        ids = np.asarray(channel_ids, dtype=object).reshape(len(countries), -1)
        unknown = np.full(ids.shape, -1, dtype=np.int64)
        if self.support is None:
            return unknown, unknown
        if self._grid is None:
            events = [c for o, c in (self.support_events or {}).items() if o in self.boosters]
            self._grid = support_mod.SupportGrid([self.support, *events])
        tiers = self.featurizer.destination_attribute("risk_tier", countries)
        found = self._grid.lookup(ids, value_usd, tiers)
        return found[0], (found[1:].min(axis=0) if len(found) > 1 else unknown)

    def support_of(
        self, channel_ids: np.ndarray, value_usd: np.ndarray, countries: Sequence[str]
    ) -> np.ndarray:
        """(n, K) training shipments per cell (:meth:`support_cells`)."""
        return self.support_cells(channel_ids, value_usd, countries)[0]

    def support_events_of(
        self, channel_ids: np.ndarray, value_usd: np.ndarray, countries: Sequence[str]
    ) -> np.ndarray:
        """(n, K) the fewest training events of any outcome per cell (:meth:`support_cells`)."""
        return self.support_cells(channel_ids, value_usd, countries)[1]

    @property
    def engine(self) -> str:
        """Which code computes the trees: 'compiled' (every head) or 'lightgbm'."""
        return "compiled" if set(self.compiled) == set(self.boosters) else "lightgbm"

    def checksums(self, directory: Path) -> dict[str, str]:
        return dict(read_manifest(Path(directory))["files"])


def _head_raw(booster: lgb.Booster, second: SecondCause, X: np.ndarray) -> np.ndarray:
    """A two-cause head's raw score while fitting (LightGBM, every thread)."""
    return second.combine(booster.predict(X, raw_score=True), X, os.cpu_count() or 1)


def _calibrate(
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
    y_cal = (calibration["outcome"] == OUTCOME_LABEL[outcome]).to_numpy()
    t = featurizer.column(TIME_FEATURE)
    months = None if t is None else np.concatenate([X[:, t], X_cal[:, t]])
    return PlattCalibrator().fit(raw, np.concatenate([y, y_cal]), months)


def _load_causes(
    directory: Path, manifest: Mapping[str, Any], heads: Sequence[str]
) -> dict[str, SecondCause]:
    """The second causes of the two-cause heads a saved model has (none if no file)."""
    if CAUSES_FILE not in manifest["files"]:
        return {}
    stored = json.loads((directory / CAUSES_FILE).read_text())
    causes = {}
    for outcome, spec in stored.items():
        if outcome not in heads:
            raise ModelIntegrityError(f"model {directory.name}: {outcome} has no first cause")
        name = f"booster_{outcome}_{SECOND_SUFFIX}.txt"
        if name not in manifest["files"]:
            raise ModelIntegrityError(f"model file {name} is missing")
        booster = lgb.Booster(model_str=(directory / name).read_text())
        offsets = (float(spec["offsets"][0]), float(spec["offsets"][1]))
        causes[outcome] = SecondCause(
            booster, offsets, tuple(spec.get("names", ())) or ("first", "second")
        )
    return causes


def _count_support(
    featurizer: ShipmentFeaturizer, train: pd.DataFrame
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """The training slice's shipments, and events per outcome, per channel x value band x
    destination risk tier, from the same features the trees saw (value in USD at the
    catalog's rates, the tier of the pipeline's destination snapshot)."""
    computed = featurizer.shipment_features(train, ("log_value_usd", "dest_risk_tier"))
    cells = (
        train["channel_id"].astype(str).to_numpy(),
        np.expm1(computed["log_value_usd"]),
        computed["dest_risk_tier"],
    )
    events = {
        o: support_mod.count_cells(
            *cells, weights=(train["outcome"] == OUTCOME_LABEL[o]).to_numpy(dtype=float)
        )
        for o in OUTCOMES
    }
    return support_mod.count_cells(*cells), events


def stored_features(directory: Path) -> list[str]:
    """The feature list a saved model was trained on (its own, not the code's)."""
    return list(json.loads((Path(directory) / PIPELINE_FILE).read_text())["feature_names"])


def check_compatible(directory: Path) -> None:
    """Raise :class:`IncompatibleModelError` if this code does not compute every feature
    the saved model needs (cheap: reads its feature list only)."""
    missing = missing_features(stored_features(directory))
    if missing:
        raise IncompatibleModelError(_incompatible(directory, MissingFeaturesError(missing)))


def _incompatible(directory: Path, exc: MissingFeaturesError) -> str:
    return f"model {Path(directory).name} {exc}"


def _load_featurizer(directory: Path) -> ShipmentFeaturizer:
    try:
        return ShipmentFeaturizer.from_dict(json.loads((directory / PIPELINE_FILE).read_text()))
    except MissingFeaturesError as exc:
        raise IncompatibleModelError(_incompatible(directory, exc)) from exc


def _check_consistent(
    directory: Path,
    featurizer: ShipmentFeaturizer,
    boosters: Mapping[str, lgb.Booster],
    calibrators: Mapping[str, PlattCalibrator],
) -> None:
    """The boosters and calibrators read the columns the stored feature list describes;
    a mismatch would score garbage (or fail per request), so it is refused at load."""
    width = len(featurizer.feature_names_)
    for outcome, booster in boosters.items():
        if booster.num_feature() != width:
            raise ModelIntegrityError(
                f"model {Path(directory).name}: booster_{outcome} reads "
                f"{booster.num_feature()} features, its pipeline lists {width}"
            )
    if featurizer.column(TIME_FEATURE) is None and any(c.c != 0.0 for c in calibrators.values()):
        raise IncompatibleModelError(
            f"model {Path(directory).name}: calibrated on {TIME_FEATURE}, not in its features"
        )


def read_manifest(directory: Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ModelIntegrityError(f"{path} is missing: not a shiprisk model directory")
    manifest = json.loads(path.read_text())
    if manifest.get("format_version") not in (FORMAT_VERSION, FORMAT_WITH_CAUSES):
        raise ModelIntegrityError(f"unsupported model format {manifest.get('format_version')}")
    return manifest


def verify_files(directory: Path, manifest: Mapping[str, Any]) -> None:
    """Raise :class:`ModelIntegrityError` unless every listed file matches its SHA-256."""
    for name, digest in manifest["files"].items():
        path = Path(directory) / name
        if not path.is_file():
            raise ModelIntegrityError(f"model file {name} is missing")
        if _sha256(path) != digest:
            raise ModelIntegrityError(f"checksum mismatch for {name}: refusing to load")


def model_digest(directory: Path) -> str:
    """One short fingerprint of a saved model (hash of its manifest's file checksums)."""
    files = read_manifest(directory)["files"]
    joined = "".join(f"{k}={v};" for k, v in sorted(files.items()))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_text(path: Path, text: str) -> None:
    """A crash never leaves a half-written model file."""
    write_text_atomic(path, text)
