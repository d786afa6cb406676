"""``shiprisk train``: time split, LightGBM + baseline, evaluation, MLflow, challenger.

Data comes from the simulated world or a seller's history through the same loader. Rows
are ordered by creation time: the oldest train, the next slice calibrates, the newest
tests. Everything a data scientist needs to judge the run goes to MLflow: parameters,
metrics per outcome (also against Bayes-optimal when true probabilities exist), plots,
the config file, the frozen evaluation set and the model, registered as ``challenger``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from shiprisk.data.catalogs import load_catalog
from shiprisk.data.simulator import simulated_seed
from shiprisk.models import registry
from shiprisk.models.risk_model import OUTCOME_LABEL, OUTCOMES, RiskModel
from shiprisk.settings import CHALLENGER
from shiprisk.training.config import TrainConfig, config_path, load_config
from shiprisk.training.evaluate import evaluate_frame
from shiprisk.training.report import Steps, print_metrics, short_count, training_summary

EXPERIMENT = "shiprisk"
FROZEN_EVAL_TAG = "frozen_eval"
"""Registry tag of the legacy (unkeyed) frozen set; keyed sets are ``frozen_eval.<key>``."""
DATA_KEY_TAG = "data_key"
"""Version tag: the data source + mapping key (``data.loaders.data_key``) it trained on."""
FROZEN_EVAL_ARTIFACT = "frozen_eval/frozen_eval.parquet"
NOTE_TAG = "mlflow.note.content"
"""The run description MLflow shows on the run page."""


class TrainingDataError(ValueError):
    """The dataset cannot train a model (empty, too small, without every outcome, or too
    many invalid rows); the message says which and what to fix."""


@dataclass
class Splits:
    train: pd.DataFrame
    calibration: pd.DataFrame
    test: pd.DataFrame


@dataclass
class TrainResult:
    run_id: str
    version: str
    metrics: dict[str, dict[str, dict[str, float]]]
    splits: dict[str, int] = field(default_factory=dict)
    run_name: str = ""
    path: str = "own"
    """'own' (a model of its own) or 'recalibrated' (the base model; training/recalibrate.py)."""


def time_split(frame: pd.DataFrame, config: TrainConfig) -> Splits:
    """Order by created_at and cut into train / calibration / test by row shares."""
    ordered = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    n = len(ordered)
    n_test = int(n * config.split.test)
    n_cal = int(n * config.split.calibration)
    n_train = n - n_cal - n_test
    return Splits(
        ordered.iloc[:n_train],
        ordered.iloc[n_train : n_train + n_cal],
        ordered.iloc[n_train + n_cal :],
    )


def check_training_data(frame: pd.DataFrame, recalibrate: bool = False) -> list[str]:
    """Fail early, with a clear message, on data that cannot train anything; return the
    outcomes it can train a head for (the others are scored from a prior; none: only a
    recalibrated base model, when ``recalibrate``)."""
    from shiprisk.training.heads import trainable_heads
    from shiprisk.training.readiness import MIN_EVENTS

    if frame.empty:
        raise TrainingDataError("only 0 valid, mature rows")
    heads, _ = trainable_heads(frame, MIN_EVENTS)
    if not heads and not recalibrate:
        counts = ", ".join(
            f"only {int((frame['outcome'] == OUTCOME_LABEL[o]).sum())} '{OUTCOME_LABEL[o]}' "
            "outcomes"
            for o in OUTCOMES
        )
        raise TrainingDataError(f"{counts}; at least {MIN_EVENTS} of one are needed")
    return heads


def _counts(loaded: Any) -> dict[str, int]:
    return {
        "rows_read": loaded.n_rows,
        "rows_invalid": loaded.n_invalid,
        "rows_excluded": loaded.n_excluded,
        "rows_immature": loaded.n_immature,
        "rows_open": loaded.n_open,
        "rows_used": len(loaded.train),
    }


def load_training_frame(
    data: Path | pd.DataFrame, mapping: Path | None = None
) -> tuple[pd.DataFrame, dict]:
    """Validated, mature history rows (plus any true_* columns) and the load counts."""
    from shiprisk.data.loaders import load_history

    loaded = load_history(data, mapping=mapping)
    return loaded.train, _counts(loaded)


def fit_baseline(
    model: RiskModel, splits: Splits, config: TrainConfig, seed: int = 0
) -> dict[str, np.ndarray]:
    """L2 logistic regression per outcome on the same features; returns test predictions."""
    from shiprisk.training.baseline import LogisticBaseline

    featurizer = model.featurizer
    train = splits.train
    if len(train) > config.baseline.max_rows:
        train = train.sample(config.baseline.max_rows, random_state=seed)
    X, X_val = featurizer.transform(train), featurizer.transform(splits.calibration)
    X_test = featurizer.transform(splits.test)
    preds = {}
    for outcome in model.outcomes:  # an outcome without a head: the prior, as the model's
        label = OUTCOME_LABEL[outcome]
        if (train["outcome"] == label).sum() < 2:  # a recalibrated head on a tiny history
            continue
        baseline = LogisticBaseline(Cs=tuple(config.baseline.Cs)).fit(
            X,
            (train["outcome"] == label).to_numpy().astype(int),
            featurizer.categorical_features_,
            X_val,
            (splits.calibration["outcome"] == label).to_numpy().astype(int),
        )
        preds[outcome] = baseline.predict_proba(X_test)
    return preds


def train(
    data: Path | pd.DataFrame,
    *,
    config_file: Path | None = None,
    mapping: Path | None = None,
    tracking_uri: str | None = None,
    with_baseline: bool = True,
    drop_features: tuple[str, ...] = (),
    register: bool = True,
    console: Any = None,
    max_drop_share: float | None = None,
) -> TrainResult:
    """Train, evaluate, log and register a challenger; return its version and metrics.

    The history is judged first by :func:`shiprisk.training.readiness.assess` (the check
    ``shiprisk data validate`` prints): any refusal raises :class:`TrainingDataError` and
    nothing is logged. ``drop_features`` trains a deliberately blinded model (contract
    fields replaced by a constant) - used to show the world is not easy.
    """
    from shiprisk.data.loaders import load_history
    from shiprisk.training import recalibrate as recal
    from shiprisk.training.readiness import assess

    config = load_config(config_file)
    steps = Steps(console, total=7 if with_baseline else 6)
    with steps.step("reading and validating the history"):
        loaded = load_history(data, mapping=mapping)
        counts = _counts(loaded)
        readiness = assess(loaded, config, max_drop_share=max_drop_share)
    if console is not None:
        _print_dropped(console, loaded, readiness)
    if readiness.refusals:
        raise TrainingDataError("; ".join(readiness.refusals))
    frame = _blind(loaded.train, drop_features)
    splits = time_split(frame, config)
    fit_part = pd.concat([splits.train, splits.calibration])
    base = None
    if recal.recalibration_considered(len(frame)) and recal.can_recalibrate(fit_part):
        base = recal.load_base(steps)
    heads = check_training_data(splits.train, recalibrate=base is not None)
    steps.total = steps.done + 3 + with_baseline + bool(heads) + (base is not None)
    if heads:
        _check_priors(heads)
    priors = {o: float((splits.train["outcome"] == OUTCOME_LABEL[o]).mean()) for o in OUTCOMES}

    registry.configure(tracking_uri)
    registry.ensure_experiment(EXPERIMENT)
    name = run_name(data, counts["rows_used"])
    with mlflow.start_run(run_name=name) as run:
        mlflow.set_tag(NOTE_TAG, _description(data, counts, splits, config, drop_features))
        _log_params(config, counts, splits, config_file, drop_features)
        mlflow.log_param(DATA_KEY_TAG, loaded.key)
        mlflow.set_tag(DATA_KEY_TAG, loaded.key)
        own = choice = None
        if heads:
            with steps.step("fitting the LightGBM risk model (one head per outcome)"):
                own = model = fit_risk_model(splits, config, heads)
        if base is not None:
            with steps.step(f"recalibrating the base model ({base.name})"):
                model = recal.recalibrate(base, fit_part)
                choice = recal.choose(own, model, base, splits.test)
                model = own if choice.path == recal.OWN else model
                recal.log_choice(choice, base)
        _log_sources(model)
        with steps.step("evaluating on the test slice"):
            X_test = model.featurizer.transform(splits.test)
            probs = model.predict_matrix(X_test)
            results = {"model": evaluate_frame(splits.test, probs, priors=priors)}
        if with_baseline:
            with steps.step("fitting and evaluating the logistic baseline"):
                baseline = {**probs, **fit_baseline(model, splits, config)}
                results["baseline"] = evaluate_frame(splits.test, baseline, priors=priors)
        with steps.step("logging metrics, plots and quality tables to MLflow"):
            _log_metrics(results, model)
            _log_plots(model, splits.test, probs)
            _log_quality_tables(splits.test, probs, priors)
            _log_frozen_eval(splits.test)
        with steps.step("logging and registering the model"):
            info = registry.log_risk_model(model, splits.test)
            version = "-"
            frozen_line = ""
            if register:
                mv = registry.register(
                    info.model_uri,
                    tags={
                        "run_id": run.info.run_id,
                        "gate": "pending",
                        DATA_KEY_TAG: loaded.key,
                        **{f"source.{o}": s for o, s in model.sources.items()},
                        **(choice.tags(base) if choice else {}),
                    },
                )
                registry.set_alias(CHALLENGER, mv.version)
                fixed = frozen_eval_uri(loaded.key)
                frozen_uri = fix_frozen_eval(run.info.run_id, loaded.key)
                state = "kept" if fixed else "fixed now, from this run's test slice"
                frozen_line = f"frozen evaluation set {loaded.key}: {state} ({frozen_uri})"
                version = str(mv.version)
                mlflow.set_tag(
                    NOTE_TAG,
                    _description(data, counts, splits, config, drop_features)
                    + (f"\n\n{choice.line}." if choice else "")
                    + f"\n\nRegistered as version {version} ('{CHALLENGER}').",
                )
    sizes = {
        "train": len(splits.train),
        "calibration": len(splits.calibration),
        "test": len(splits.test),
    }
    if console is not None:
        print_metrics(console, results)
        if choice is not None:
            console.print(choice.line, highlight=False, soft_wrap=True)
        for line in training_summary(results, counts, sizes, name, run.info.run_id, version):
            console.print(line, highlight=False, soft_wrap=True)
        if frozen_line:
            console.print(frozen_line, highlight=False, soft_wrap=True)
        for outcome, source in model.sources.items():
            if source == "prior":
                console.print(
                    f"{outcome}: no head (fewer than the events a head needs in the training "
                    f"slice): p_{outcome} comes from the prior (docs/history.md)",
                    highlight=False,
                    soft_wrap=True,
                )
    path = choice.path if choice else "own"
    return TrainResult(run.info.run_id, version, results, sizes, name, path)


def fit_risk_model(
    splits: Splits, config: TrainConfig, heads: list[str] | None = None
) -> RiskModel:
    """The LightGBM risk model on the (masked) train and calibration slices; outcomes
    without a head get their priors. Heads with a masking of their own
    (``missing.mask_rate_by_head``, ``missing.masked_copies_by_head``) are fitted on slices
    masked their way, with the same feature pipeline, and joined into one model."""
    model: RiskModel | None = None
    for (rate, copies), group in config.missing.ways(OUTCOMES, heads).items():
        if model is None or group:
            part = RiskModel.fit(
                *_masked(splits, config, rate, copies),
                config.lightgbm,
                early_stopping_share=config.early_stopping_share,
                featurizer=None if model is None else model.featurizer,
                heads=group,
                support_rows=splits.train,
            )
            model = part if model is None else model.add_heads(part)
    assert model is not None
    model.priors = _outcome_priors(model)
    return model


def _outcome_priors(model: RiskModel) -> dict:
    """Priors for the outcomes without a head (training/heads.py)."""
    from shiprisk.training.heads import build_priors

    missing = [o for o in OUTCOMES if o not in model.outcomes]
    return build_priors(missing, model.featurizer, load_catalog()) if missing else {}


def _check_priors(heads: list[str]) -> None:
    """Refuse, before any run starts, an outcome with neither a head nor a prior."""
    from shiprisk.training.heads import world_rates

    missing = [o for o in OUTCOMES if o not in heads]
    if missing and any(o not in world_rates() for o in missing):
        lacking = [OUTCOME_LABEL[o] for o in missing if o not in world_rates()]
        raise TrainingDataError(
            f"too few {', '.join(repr(x) for x in lacking)} outcomes to train a head, and no "
            "prior for them"
        )


def _log_sources(model: RiskModel) -> None:
    """Per outcome, where its probability comes from (``source.<outcome>``: model or prior),
    as a parameter and a run tag."""
    for outcome, source in model.sources.items():
        mlflow.log_param(f"source.{outcome}", source)
        mlflow.set_tag(f"source.{outcome}", source)


def run_name(data: Path | pd.DataFrame, rows: int) -> str:
    """``train-<rows>-seed<seed>`` for a simulated history (the seed is in the file's
    metadata), ``train-<rows>-<file stem>`` for a seller's file, ``train-<rows>`` else."""
    head = f"train-{short_count(rows)}"
    if isinstance(data, pd.DataFrame):
        return head
    path = Path(data)
    seed = simulated_seed(path)
    return f"{head}-seed{seed}" if seed is not None else f"{head}-{path.stem}"


def _description(
    data: Path | pd.DataFrame, counts: dict, splits: Splits, config: TrainConfig, dropped: tuple
) -> str:
    """The run's description (MLflow shows it on the run page)."""
    source = "a DataFrame" if isinstance(data, pd.DataFrame) else f"`{Path(data).name}`"
    text = (
        f"LightGBM risk model (one head per outcome) and a logistic baseline, trained on "
        f"{source}: {counts['rows_used']:,} valid, mature rows of {counts['rows_read']:,}, "
        f"split by time into train {len(splits.train):,} / calibration "
        f"{len(splits.calibration):,} / test {len(splits.test):,} (config version "
        f"{config.version}). Metrics: `<outcome>/<metric>_<model>` on the test slice; "
        "plots: reliability and importance by request field; tables: quality per "
        "destination and per channel."
    )
    if dropped:
        text += f" Blinded features: {', '.join(dropped)}."
    return text


def _masked(
    splits: Splits, config: TrainConfig, rate: float | None = None, copies: float = 0.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and calibration slices with optional fields blanked at random (test: never),
    at ``rate`` (default: ``missing.mask_rate``); with ``copies`` > 0, every row as recorded
    plus a masked copy of that share of the rows, in time order."""
    from shiprisk.features.masking import mask_optional, with_masked_copies

    rate, seed = config.missing.mask_rate if rate is None else rate, config.missing.seed

    def mask(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        if copies > 0:
            return with_masked_copies(frame, rate, copies, seed)
        return mask_optional(frame, rate, seed)

    return mask(splits.train, seed), mask(splits.calibration, seed + 1)


def _blind(frame: pd.DataFrame, fields: tuple[str, ...]) -> pd.DataFrame:
    if not fields:
        return frame
    frame = frame.copy()
    for f in fields:
        frame[f] = frame[f].iloc[0]
    return frame


def _log_params(
    config: TrainConfig, counts: dict, splits: Splits, config_file: Path | None, dropped: tuple
) -> None:
    params: dict[str, Any] = {"config_version": config.version, **counts}
    for outcome, p in config.lightgbm.items():
        params.update({f"{outcome}.{k}": v for k, v in p.items()})
    params.update({f"split.{k}": v for k, v in config.split.model_dump().items()})
    params["baseline.Cs"] = ",".join(str(c) for c in config.baseline.Cs)
    params["dropped_features"] = ",".join(dropped) or "none"
    params["missing.mask_rate"] = config.missing.mask_rate
    for head, rate in config.missing.mask_rate_by_head.items():
        params[f"missing.mask_rate.{head}"] = rate
    params["train_from"] = str(splits.train["created_at"].min())
    params["test_from"] = str(splits.test["created_at"].min())
    params["test_to"] = str(splits.test["created_at"].max())
    catalog = load_catalog()
    params["usd_rates_as_of"] = catalog.rates_as_of  # values in USD at these rates
    params["catalog_version"] = catalog.version  # channels/destinations the features snapshot
    params["catalog_source"] = f"{catalog.source} (origin {catalog.origin})"
    mlflow.log_params(params)
    mlflow.log_artifact(str(config_path(config_file)), artifact_path="config")


def _log_metrics(results: dict, model: RiskModel) -> None:
    from shiprisk.training.evaluate import flatten_metrics, metric_key

    for name, metrics in results.items():
        mlflow.log_metrics(flatten_metrics(metrics, model=name))
    for key in ("best_iteration", "trees"):
        for outcome, value in model.info.get(key, {}).items():
            mlflow.log_metric(metric_key(outcome, key, "model"), value)


def _log_plots(model: RiskModel, test: pd.DataFrame, probs: dict[str, np.ndarray]) -> None:
    from shiprisk.features.definitions import FEATURE_SOURCES
    from shiprisk.training.evaluate import outcome_labels, outcome_truth
    from shiprisk.training.plots import (
        calibration_figure,
        importance_by_field,
        importance_figure,
    )

    labels, truth = outcome_labels(test), outcome_truth(test)
    for outcome in model.outcomes:  # a prior has no importance to plot
        p_true = None if truth is None else truth[outcome]
        fig = calibration_figure(
            labels[outcome], probs[outcome], label=f"p_{outcome}", p_true=p_true
        )
        mlflow.log_figure(fig, f"plots/calibration_{outcome}.png")
        by_field = importance_by_field(
            model.featurizer.feature_names_, model.feature_importance(outcome), FEATURE_SOURCES
        )
        fig = importance_figure(
            list(by_field),
            np.array(list(by_field.values())),
            title=f"importance by request field (gain, engineered features shared): {outcome}",
        )
        mlflow.log_figure(fig, f"plots/importance_{outcome}.png")
        mlflow.log_dict(
            {"outcome": outcome, "gain_by_field": by_field}, f"importance/{outcome}.json"
        )


def _log_quality_tables(
    test: pd.DataFrame, probs: dict[str, np.ndarray], priors: dict[str, float]
) -> None:
    """Per-destination and per-channel quality of the test slice, as CSV artifacts."""
    from shiprisk.training.evaluate import quality_by

    with tempfile.TemporaryDirectory() as tmp:
        for column, name in (("destination_country", "destination"), ("channel_id", "channel")):
            path = Path(tmp) / f"quality_by_{name}.csv"
            quality_by(test, probs, column, priors).to_csv(path, index=False, float_format="%.6g")
            mlflow.log_artifact(str(path), artifact_path="quality")


def _log_frozen_eval(test: pd.DataFrame) -> None:
    """Log this run's test slice; the first one becomes the registry's frozen set."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(FROZEN_EVAL_ARTIFACT).name
        test.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(FROZEN_EVAL_ARTIFACT).parent))
    with registry.quiet_mlflow():  # from_pandas infers a schema: the integer-column hint
        dataset = mlflow.data.from_pandas(test, name="test_slice")
        mlflow.log_input(dataset, context="evaluation")


def frozen_eval_tag(key: str | None) -> str:
    """The registry tag holding the frozen set of one data source + mapping key."""
    return f"{FROZEN_EVAL_TAG}.{key}" if key else FROZEN_EVAL_TAG


def frozen_eval_uri(key: str | None = None) -> str | None:
    """Artifact URI of the frozen evaluation set of a data key (None: the legacy set).

    Only "no registered model yet" means "none"; any other registry error (unreachable,
    denied) propagates with its own message.
    """
    from mlflow.exceptions import MlflowException

    try:
        tags = registry.client().get_registered_model(registry.model_name()).tags
    except MlflowException as exc:
        if registry.is_missing(exc):
            return None
        raise
    return tags.get(frozen_eval_tag(key))


def fix_frozen_eval(run_id: str, key: str | None = None) -> str:
    """Make a run's logged test slice the frozen evaluation set of its data key (once per
    key: a changed mapping or another source gets a set of its own, never a stale one)."""
    existing = frozen_eval_uri(key)
    if existing:
        return existing
    uri = f"runs:/{run_id}/{FROZEN_EVAL_ARTIFACT}"
    registry.client().set_registered_model_tag(registry.model_name(), frozen_eval_tag(key), uri)
    return uri


def _print_dropped(console: Any, loaded: Any, readiness: Any) -> None:
    """How many rows train uses and which it left out, and why (never only in MLflow)."""
    from rich.markup import escape

    console.print(
        f"{escape(loaded.source)}: {loaded.n_train:,} of {loaded.n_rows:,} rows used",
        highlight=False,
    )
    for reason, count in readiness.dropped.items():
        console.print(f"  left out {count:,}: {escape(reason)}", highlight=False)
    if len(loaded.errors):
        top = loaded.errors.groupby(["field", "reason"]).size().sort_values(ascending=False)
        for (field_name, reason), count in top.head(5).items():
            console.print(f"    {count:,} x {field_name}: {escape(reason)}", highlight=False)
    for warning in readiness.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
