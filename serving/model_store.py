"""Bridge from the MLflow registry to the BentoML model store, with a verified fallback.

``shiprisk serve`` imports the ``champion`` into the BentoML store under a pinned tag
``shiprisk-risk:v<mlflow version>-<digest>`` (labels: MLflow version, digest, verified),
after checking every file against its SHA-256. A running server reads only its pinned
tag: it needs no MLflow tracking server. If the registry cannot be reached, the alias is
missing, the artifact is corrupt or the model needs a feature this code no longer computes,
the newest *verified* import already in the store that this code can run is served instead;
with none, the caller exits with a one-line reason.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from shiprisk.data.atomic import write_text_atomic
from shiprisk.models.risk_model import (
    ModelIntegrityError,
    check_compatible,
    model_digest,
    read_manifest,
    verify_files,
)
from shiprisk.settings import CHAMPION, get_settings

BENTO_MODEL_NAME = "shiprisk-risk"
TAG_FILE = "serving_model_tag"
"""File under SHIPRISK_HOME naming the pinned tag (for `bentoml serve` started by hand)."""


class NoVerifiedModelError(RuntimeError):
    """Nothing verified is available to serve."""


@dataclass(frozen=True)
class ResolvedModel:
    tag: str
    mlflow_version: str
    digest: str
    source: str  # "registry" (fresh import or already imported) or "fallback"
    message: str


def _bentoml():
    """bentoml, with its store under SHIPRISK_HOME unless BENTOML_HOME says otherwise."""
    os.environ.setdefault("BENTOML_HOME", str(get_settings().bentoml_home.resolve()))
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    import bentoml

    return bentoml


def verify_model_dir(path: Path) -> str:
    """Check every file against the manifest and that this code computes every feature the
    model needs (:class:`IncompatibleModelError` otherwise); return the model digest."""
    manifest = read_manifest(path)
    verify_files(path, manifest)
    check_compatible(path)
    return model_digest(path)


def import_version(alias: str = CHAMPION) -> ResolvedModel:
    """Import the MLflow version behind ``alias`` into the BentoML store (idempotent)."""
    from shiprisk.models import registry

    bentoml = _bentoml()
    registry.configure()
    version = registry.get_version(alias)
    if version is None:
        raise LookupError(f"no model version has the alias '{alias}' in the MLflow registry")
    local = registry.fetch_verified(version, refresh=True)
    digest = verify_model_dir(local)
    tag = f"{BENTO_MODEL_NAME}:v{version.version}-{digest[:12]}"
    try:
        existing = bentoml.models.get(tag)
        verify_model_dir(Path(existing.path))
        return ResolvedModel(tag, str(version.version), digest, "registry", "already imported")
    except bentoml.exceptions.NotFound:
        pass
    checksums = read_manifest(local)["files"]
    with bentoml.models.create(
        tag,
        labels={"mlflow_version": str(version.version), "digest": digest, "verified": "true"},
        metadata={"alias": alias, "run_id": version.run_id, "checksums": checksums},
    ) as model:
        for file in local.iterdir():
            (Path(model.path) / file.name).write_bytes(file.read_bytes())
    verify_model_dir(Path(bentoml.models.get(tag).path))
    return ResolvedModel(tag, str(version.version), digest, "registry", "imported")


def last_verified(exclude: str | None = None) -> ResolvedModel | None:
    """The newest model in the BentoML store whose files still match their checksums."""
    bentoml = _bentoml()
    try:
        models = bentoml.models.list(BENTO_MODEL_NAME)
    except bentoml.exceptions.NotFound:
        return None
    for model in sorted(models, key=lambda m: m.info.creation_time, reverse=True):
        if str(model.tag) == exclude or model.info.labels.get("verified") != "true":
            continue
        try:
            digest = verify_model_dir(Path(model.path))
        except (ModelIntegrityError, OSError, json.JSONDecodeError):
            continue
        version = model.info.labels.get("mlflow_version", "?")
        return ResolvedModel(str(model.tag), version, digest, "fallback", "last verified import")
    return None


def resolve(alias: str = CHAMPION) -> ResolvedModel:
    """The model to serve: a fresh import of ``alias``, else the last verified import."""
    try:
        return import_version(alias)
    except Exception as exc:  # registry down, alias missing, corrupt artifact...
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        fallback = last_verified()
        if fallback is None:
            raise NoVerifiedModelError(
                f"cannot import '{alias}' ({reason}) and no verified model is in the store"
            ) from exc
        return ResolvedModel(
            fallback.tag,
            fallback.mlflow_version,
            fallback.digest,
            "fallback",
            f"serving last verified import {fallback.tag}: could not import '{alias}' ({reason})",
        )


def pin(tag: str) -> Path:
    """Record the tag to serve, for a `bentoml serve` started without SHIPRISK_MODEL_TAG."""
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(settings.home / TAG_FILE, tag + "\n")


def pinned_tag() -> str | None:
    tag = os.environ.get("SHIPRISK_MODEL_TAG")
    if tag:
        return tag
    path = get_settings().home / TAG_FILE
    return path.read_text().strip() if path.is_file() else None
