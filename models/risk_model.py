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

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from shiprisk.data.outcomes import EVENT_KEYS, LABEL_OF
from shiprisk.features.pipeline import (
    MissingFeaturesError,
    ShipmentFeaturizer,
    missing_features,
)
from shiprisk.models import support as support_mod
from shiprisk.models.calibration import TIME_FEATURE, PlattCalibrator, calibrate_head
from shiprisk.models.compiled import RawScorer, compile_head
from shiprisk.models.head_constraints import head_constraints
from shiprisk.models.priors import MODEL, PRIOR, RECALIBRATED, OutcomePrior
from shiprisk.models.recalibrated import Recalibration, dump_recalibration, read_recalibration
from shiprisk.models.storage import (
    FORMAT_VERSION,
    FORMAT_WITH_CAUSES,
    MANIFEST,
    IncompatibleModelError,
    ModelIntegrityError,
    model_digest,
    read_manifest,
    sha256_file,
    verify_files,
    write_text,
)
from shiprisk.models.two_causes import (
    SECOND_SUFFIX,
    SecondCause,
    cause_exclude,
    fit_two_cause_head,
    load_causes,
    model_text,
    save_causes,
    second_file,
)

__all__ = [  # what other modules import from here, some defined in models/storage.py
    "FORMAT_VERSION",
    "FORMAT_WITH_CAUSES",
    "MANIFEST",
    "TIME_FEATURE",
    "IncompatibleModelError",
    "ModelIntegrityError",
    "PlattCalibrator",
    "RiskModel",
    "check_compatible",
    "model_digest",
    "read_manifest",
    "stored_features",
    "verify_files",
]
OUTCOMES = EVENT_KEYS
OUTCOME_LABEL = LABEL_OF
"""Head name -> the contract's outcome word it predicts."""
PIPELINE_FILE = "pipeline.json"
CALIBRATION_FILE = "calibration.json"
SUPPORT_FILE = "support.json"
PRIORS_FILE = "priors.json"
"""Outcomes without a head and their priors (models/priors.py); absent = every head trained."""
RECALIBRATION_FILE = "recalibration.json"
"""A base model recalibrated to a seller (models/recalibrated.py); absent = none."""
MAX_TOTAL = 1.0 - 1e-6


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
        support_rows: pd.DataFrame | None = None,
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
        :attr:`priors` before the model scores. ``support_rows``: the shipments the support
        counts describe (default: ``train``; the unmasked slice when ``train`` holds masked
        copies)."""
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
                calibrators[outcome] = calibrate_head(
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
            calibrators[outcome] = calibrate_head(
                featurizer, raw, X, X_cal, y, calibration, outcome
            )
        info = {"best_iteration": best, "trees": used}
        shipments, events = _count_support(
            featurizer, train if support_rows is None else support_rows
        )
        return cls(featurizer, boosters, calibrators, info, {}, shipments, events, causes=causes)

    def add_heads(self, other: RiskModel) -> RiskModel:
        """This model with ``other``'s heads added (fitted with the same pipeline on the
        same training rows, e.g. masked at another rate: training/train.py)."""
        self.boosters.update(other.boosters)
        self.calibrators.update(other.calibrators)
        self.causes.update(other.causes)
        for key, values in other.info.items():
            self.info.setdefault(key, {}).update(values)
        return self

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
            write_text(directory / name, model_text(booster))
            files[name] = sha256_file(directory / name)
        write_text(directory / PIPELINE_FILE, json.dumps(self.featurizer.to_dict(), indent=1))
        files[PIPELINE_FILE] = sha256_file(directory / PIPELINE_FILE)
        calibration = {o: asdict(c) for o, c in self.calibrators.items()}
        write_text(directory / CALIBRATION_FILE, json.dumps(calibration, indent=1))
        files[CALIBRATION_FILE] = sha256_file(directory / CALIBRATION_FILE)
        if self.support is not None:
            stored = {"shipments": self.support, "events": self.support_events or {}}
            write_text(directory / SUPPORT_FILE, json.dumps(stored, indent=0, sort_keys=True))
            files[SUPPORT_FILE] = sha256_file(directory / SUPPORT_FILE)
        if self.priors:
            priors = {o: p.to_dict() for o, p in self.priors.items()}
            write_text(directory / PRIORS_FILE, json.dumps(priors, indent=1))
            files[PRIORS_FILE] = sha256_file(directory / PRIORS_FILE)
        if self.recalibration:
            write_text(directory / RECALIBRATION_FILE, dump_recalibration(self.recalibration))
            files[RECALIBRATION_FILE] = sha256_file(directory / RECALIBRATION_FILE)
        files.update(save_causes(directory, self.causes))
        version = FORMAT_WITH_CAUSES if self.causes else FORMAT_VERSION
        manifest = {"format_version": version, "files": files, "info": self.info}
        write_text(directory / MANIFEST, json.dumps(manifest, indent=1))
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
        causes = load_causes(directory, manifest, heads)
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
                        directory / second_file(o),
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
