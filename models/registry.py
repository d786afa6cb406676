"""MLflow registry access: log, register, aliases, load by alias, roll back.

Models are always addressed by alias (``champion``, ``challenger``) or explicit version,
never by "latest run". The champion history is kept as a registered-model tag so a
rollback knows which version served before.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from shiprisk.data.atomic import write_atomic
from shiprisk.data.contract import OPEN_FIELDS
from shiprisk.models.pyfunc_model import ARTIFACT_KEY
from shiprisk.models.risk_model import (
    ModelIntegrityError,
    RiskModel,
    model_digest,
    read_manifest,
    verify_files,
)
from shiprisk.settings import CHAMPION, get_settings

HISTORY_TAG = "champion_history"
DIGEST_TAG = "model_digest"
CHECKSUMS_TAG = "file_checksums"
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
PYFUNC_STAGES = ("data", "features", "models")
"""The stages the pyfunc imports; shipped with the model as one ``shiprisk`` folder."""
FAIL_FAST_ENV = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0",
}
"""MLflow's HTTP settings on the serve path: MLflow's defaults (120 s timeout, 7 retries,
backoff x2) wait ~4 minutes on a dead registry before `serve` may fall back."""
_UNREACHABLE = (
    ("Connection refused", "connection refused"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("Name or service not known", "unknown host"),
    ("Temporary failure in name resolution", "unknown host"),
    ("Failed to establish a new connection", "cannot connect"),
    ("Connection reset", "connection reset"),
    ("Max retries exceeded", "no answer after retries"),
)
"""Text of a failed MLflow HTTP request -> the short cause an operator reads."""


class RegistryUnreachableError(RuntimeError):
    """The MLflow registry did not answer (refused, timed out): not the same as "missing"."""


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at the configured store (SQLite under SHIPRISK_HOME by default)."""
    settings = get_settings()
    uri = tracking_uri or settings.resolved_tracking_uri
    if uri.startswith("sqlite:"):
        settings.ensure_dirs()
    # No telemetry (no network here) and no copy of the project's lock files in every model.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
"""The MLflow UI (3.x) opens an experiment in GenAI mode (traces, token charts) unless this
tag says it is a classic ML experiment."""
CLASSIC_ML = "custom_model_development"
EXPERIMENT_DESCRIPTION = (
    "shiprisk: one run per `shiprisk train` (named train-<rows>-seed<seed>; LightGBM risk model "
    "and logistic baseline, metrics grouped as <group>/<model>_<outcome>_<metric>) and per "
    "`shiprisk promote` (promote-v<version>, the gate's log losses on the frozen set)."
)


def ensure_experiment(name: str) -> str:
    """Use experiment ``name``, a classic ML experiment with a description; a new one on a
    local store keeps artifacts under SHIPRISK_HOME (MLflow would otherwise put them in
    ``./mlruns`` of the current dir)."""
    experiment = mlflow.get_experiment_by_name(name)
    tags = {EXPERIMENT_KIND_TAG: CLASSIC_ML, "mlflow.note.content": EXPERIMENT_DESCRIPTION}
    if experiment is None:
        location = None
        if mlflow.get_tracking_uri().startswith(("sqlite:", "file:")):
            location = get_settings().artifacts_dir.resolve().as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=location, tags=tags)
    else:
        experiment_id = experiment.experiment_id
        for key, value in tags.items():  # experiments made before the tags existed
            if experiment.tags.get(key) != value:
                client().set_experiment_tag(experiment_id, key, value)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


class _DropMessages(logging.Filter):
    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Silence, inside the block only, MLflow notes about its own packaging that a user of
    shiprisk cannot act on: the integer-column schema hint (our example has no missing
    values), the pip version it cannot resolve (uv environments have no pip; the model pins
    no pip requirements), and the registration lines it prints (shiprisk prints its own)."""
    drop = _DropMessages(("Failed to resolve installed pip version",))
    env_logger = logging.getLogger("mlflow.utils.environment")
    with warnings.catch_warnings(), redirect_stderr(io.StringIO()) as printed:
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer column", category=UserWarning
        )
        env_logger.addFilter(drop)
        try:
            yield
        except BaseException:
            sys.stderr.write(printed.getvalue())  # a failure keeps everything MLflow said
            raise
        finally:
            env_logger.removeFilter(drop)


def client() -> MlflowClient:
    return MlflowClient()


@contextmanager
def fail_fast() -> Iterator[None]:
    """Short MLflow HTTP timeouts and few retries inside the block (the serve path), so a
    dead registry costs seconds, not minutes; the previous settings are restored after."""
    before = {k: os.environ.get(k) for k in FAIL_FAST_ENV}
    os.environ.update(FAIL_FAST_ENV)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def unreachable(exc: BaseException) -> RegistryUnreachableError | None:
    """The real cause when ``exc`` means the registry could not be reached, else None."""
    text = str(exc)
    for needle, cause in _UNREACHABLE:
        if needle.lower() in text.lower():
            where = mlflow.get_registry_uri()
            return RegistryUnreachableError(f"MLflow registry unreachable at {where}: {cause}")
    return None


def model_name() -> str:
    return get_settings().registry_model_name


def pyfunc_input_example(frame: pd.DataFrame, rows: int = 3) -> pd.DataFrame:
    """A few contract rows (open-shipment columns) with created_at as ISO text."""
    columns = [c for c in OPEN_FIELDS if c != "shipment_id" and c in frame]  # absent: unknown
    example = frame.loc[:, columns].head(rows).copy()
    example["created_at"] = pd.to_datetime(example["created_at"], utc=True).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return example.reset_index(drop=True)


def log_risk_model(
    model: RiskModel, example_frame: pd.DataFrame, *, name: str = "risk_model"
) -> mlflow.models.model.ModelInfo:
    """Log the model as a models-from-code pyfunc inside the active run."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = model.save(Path(tmp) / "risk_model")
        code_dir = package_tree(Path(tmp) / "code")
        example = pyfunc_input_example(example_frame)
        output = model.predict_frame(example)
        with quiet_mlflow():
            signature = infer_signature(example, output)
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(PYFUNC_CODE),
                artifacts={ARTIFACT_KEY: str(model_dir)},
                code_paths=[str(code_dir / "shiprisk")],
                signature=signature,
                input_example=example,
                pip_requirements=[],
            )
        info_digest = model_digest(model_dir)
        info_checksums = model.checksums(model_dir)
    mlflow.set_tag(DIGEST_TAG, info_digest)
    mlflow.set_tag(CHECKSUMS_TAG, json.dumps(info_checksums, sort_keys=True))
    return info


def package_tree(destination: Path) -> Path:
    """Copy the package and the stages the pyfunc needs into ``destination/shiprisk``.

    The stages live in separate top-level folders of the repository; a logged model needs
    them as one importable ``shiprisk`` package (``mlflow models serve`` runs without us).
    """
    import importlib

    import shiprisk

    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    root = Path(destination) / "shiprisk"
    shutil.copytree(Path(shiprisk.__file__).parent, root, ignore=skip)
    for stage in PYFUNC_STAGES:
        source = Path(importlib.import_module(f"shiprisk.{stage}").__file__).parent
        shutil.copytree(source, root / stage, ignore=skip)
    return Path(destination)


def register(model_uri: str, tags: Mapping[str, str] | None = None) -> ModelVersion:
    """Register a logged model as a new version of the shiprisk model."""
    with quiet_mlflow():
        return mlflow.register_model(model_uri, model_name(), tags=dict(tags or {}))


def set_alias(alias: str, version: str | int) -> None:
    client().set_registered_model_alias(model_name(), alias, str(version))


def is_missing(exc: MlflowException) -> bool:
    """True when the registry answered "no such model / alias", not when it failed."""
    code = exc.error_code
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
    )


def get_version(alias: str) -> ModelVersion | None:
    """The version an alias points to, or None if the alias (or the model) is missing.

    Any other registry error (unreachable, denied) propagates with its real cause.
    """
    try:
        return client().get_model_version_by_alias(model_name(), alias)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise unreachable(exc) or exc from exc


def recorded_digest(version: ModelVersion) -> str | None:
    """The digest logged with the version's run (tag ``model_digest``), or None if absent.

    Recorded when the model was logged, before any copy existed: the artifact (files and
    manifest alike) must still hash to it, or someone changed the model after logging.
    """
    run_id = version.run_id or (version.tags or {}).get("run_id")
    if not run_id:
        return None
    try:
        return client().get_run(run_id).data.tags.get(DIGEST_TAG)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise unreachable(exc) or exc from exc


def check_recorded(version: ModelVersion, directory: Path, recorded: str | None) -> str:
    """Verify ``directory`` (checksums, then digest == ``recorded``); return the digest."""
    verify_files(directory, read_manifest(directory))
    actual = model_digest(directory)
    if not recorded:
        raise ModelIntegrityError(
            f"version {version.version} has no recorded {DIGEST_TAG} on its run: "
            "cannot tell whether its files are the ones logged; refusing"
        )
    if actual != recorded:
        raise ModelIntegrityError(
            f"version {version.version}: artifact digest {actual[:12]} differs from the "
            f"registry's recorded {DIGEST_TAG} {recorded[:12]}; refusing"
        )
    return actual


def model_uri(alias: str) -> str:
    return f"models:/{model_name()}@{alias}"


def download_risk_model(version: ModelVersion, destination: Path) -> Path:
    """Fetch a version's model files (boosters, JSON, manifest) into ``destination``."""
    destination = Path(destination)
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{version.name}/{version.version}", dst_path=tmp
        )
        source = Path(local) / "artifacts" / ARTIFACT_KEY
        if not source.is_dir():
            raise FileNotFoundError(f"version {version.version} has no {ARTIFACT_KEY} artifact")
        if destination.exists():
            shutil.rmtree(destination)
        shutil.copytree(source, destination)
    return destination


def fetch_verified(version: ModelVersion, *, refresh: bool = False) -> Path:
    """A version's model files under ``<home>/models/v<version>``, checksums verified and
    the digest equal to the one the registry recorded at logging (:func:`check_recorded`).

    The one way shiprisk fetches a registered model (batch scoring, promotion, the BentoML
    import). The files are downloaded beside the target and renamed into place, so a killed
    download is never used. A verified copy already there is reused unless ``refresh``
    (promotion and import check the registry's own artifact, not an older local copy).
    """
    recorded = recorded_digest(version)
    target = get_settings().home / "models" / f"v{version.version}"
    if not refresh:
        try:
            check_recorded(version, target, recorded)
            return target
        except (ModelIntegrityError, OSError, ValueError):
            pass

    def fill(tmp: Path) -> None:
        download_risk_model(version, tmp)
        check_recorded(version, tmp, recorded)  # a bad download never replaces a good copy

    try:
        return write_atomic(target, fill)
    except MlflowException as exc:
        raise unreachable(exc) or exc from exc


def champion_history() -> list[str]:
    try:
        tags = client().get_registered_model(model_name()).tags
    except MlflowException as exc:
        if is_missing(exc):
            return []
        raise
    return json.loads(tags.get(HISTORY_TAG, "[]"))


def make_champion(version: str | int) -> None:
    """Point ``champion`` at a version and remember the order for rollback."""
    history = [v for v in champion_history() if v != str(version)] + [str(version)]
    set_alias(CHAMPION, version)
    client().set_registered_model_tag(model_name(), HISTORY_TAG, json.dumps(history))


def rollback() -> tuple[str, str]:
    """Move ``champion`` back to the previous champion; returns (from, to) versions."""
    history = champion_history()
    current = get_version(CHAMPION)
    if current is None or len(history) < 2:
        raise RuntimeError("no previous champion to roll back to")
    now = str(current.version)
    if history[-1] != now:  # alias moved by hand: trust the alias
        history = [v for v in history if v != now] + [now]
    previous = history[-2]
    set_alias(CHAMPION, previous)
    client().set_registered_model_tag(model_name(), HISTORY_TAG, json.dumps(history[:-1]))
    return now, previous
