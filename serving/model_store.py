"""Bridge from the MLflow registry to the BentoML model store, with a verified fallback.

``shiprisk serve`` imports the ``champion`` into the BentoML store under a pinned tag
``shiprisk-risk:v<mlflow version>-<digest>`` (labels: MLflow version, digest, verified),
after checking every file against its SHA-256 and the model's digest against the one the
registry recorded when the model was logged. A running server reads only its pinned tag: it
needs no MLflow tracking server.

Every read of an alias (version, the registry's recorded digest, time) is written to
``<SHIPRISK_HOME>/alias_reads.json``. If the registry cannot be reached, the alias is
missing or the artifact is refused (corrupt, or needing a feature this code no longer
computes), the fallback is the verified import of the version
*last read* under that alias, checked against that record: never simply the newest import,
which after a rollback is the version just rolled back. With none, the caller exits with a
one-line reason. A local copy that no longer verifies is re-imported from the registry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
BAKED_TAG_FILE = Path(__file__).with_name("bento_model_tag")
"""Written by ``make bento`` (serving/bento.py) while building: the bento serves that tag."""
READS_FILE = "alias_reads.json"
"""File under SHIPRISK_HOME: per alias, the version and digest the registry last named."""
_UNREADABLE = (ModelIntegrityError, OSError, json.JSONDecodeError, KeyError)


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


def bento_tag(version: str, digest: str) -> str:
    """The pinned tag: version and digest, so one tag is one exact model."""
    return f"{BENTO_MODEL_NAME}:v{version}-{digest[:12]}"


# -- what the registry last said -------------------------------------------------------------


def _reads_path() -> Path:
    return get_settings().home / READS_FILE


def alias_reads() -> dict[str, dict[str, Any]]:
    """All recorded alias reads ({} if none or unreadable: then nothing is trusted)."""
    try:
        reads = json.loads(_reads_path().read_text())
    except (OSError, ValueError):
        return {}
    return reads if isinstance(reads, dict) else {}


def last_read(alias: str = CHAMPION) -> dict[str, Any] | None:
    """The last version the registry named for ``alias``: {version, digest, read_at}."""
    read = alias_reads().get(alias)
    return read if isinstance(read, dict) and read.get("version") else None


def record_read(alias: str, version: str, digest: str | None) -> None:
    """Remember what the registry named, so an outage falls back to it, not the newest."""
    reads = alias_reads()
    reads[alias] = {
        "version": str(version),
        "digest": digest,
        "read_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_text_atomic(_reads_path(), json.dumps(reads, indent=1, sort_keys=True) + "\n")


# -- import and fallback ------------------------------------------------------------------


def _verified_copy(bentoml, tag: str, digest: str) -> Any:
    """The store's model ``tag`` if its files verify and hash to ``digest``; else raise."""
    stored = bentoml.models.get(tag)
    if stored.info.labels.get("verified") != "true":
        raise ModelIntegrityError(f"{tag} is not labelled verified")
    actual = verify_model_dir(Path(stored.path))
    if actual != digest:
        raise ModelIntegrityError(f"{tag} hashes to {actual[:12]}, expected {digest[:12]}")
    return stored


def import_version(alias: str = CHAMPION) -> ResolvedModel:
    """Import the MLflow version behind ``alias`` into the BentoML store (idempotent).

    The read is recorded first (:func:`record_read`); the artifact must match the digest
    the registry recorded at logging; a local copy that fails verification is replaced.
    """
    from shiprisk.models import registry

    bentoml = _bentoml()
    registry.configure()
    version = registry.get_version(alias)
    if version is None:
        raise LookupError(f"no model version has the alias '{alias}' in the MLflow registry")
    record_read(alias, str(version.version), registry.recorded_digest(version))
    local = registry.fetch_verified(version, refresh=True)
    digest = verify_model_dir(local)
    tag = bento_tag(str(version.version), digest)
    message = "imported"
    try:
        _verified_copy(bentoml, tag, digest)
        return ResolvedModel(tag, str(version.version), digest, "registry", "already imported")
    except bentoml.exceptions.NotFound:
        pass
    except _UNREADABLE as exc:  # bit rot or a hand edit in the store: the registry has it
        bentoml.models.delete(tag)
        message = f"re-imported (the local copy failed verification: {exc})"
    checksums = read_manifest(local)["files"]
    with bentoml.models.create(
        tag,
        labels={"mlflow_version": str(version.version), "digest": digest, "verified": "true"},
        metadata={"alias": alias, "run_id": version.run_id, "checksums": checksums},
    ) as model:
        for file in local.iterdir():
            (Path(model.path) / file.name).write_bytes(file.read_bytes())
    _verified_copy(bentoml, tag, digest)
    return ResolvedModel(tag, str(version.version), digest, "registry", message)


def _fallback(alias: str) -> ResolvedModel:
    """The verified import of the version last read under ``alias``, checked against the
    record; raises :class:`NoVerifiedModelError` saying why there is none."""
    read = last_read(alias)
    if read is None:
        raise NoVerifiedModelError(f"the registry was never read for '{alias}' here")
    version, digest = read["version"], read.get("digest")
    seen = f"version {version}, last read as '{alias}' at {read.get('read_at', '?')}"
    if not digest:
        raise NoVerifiedModelError(f"{seen}, has no recorded digest")
    bentoml = _bentoml()
    tag = bento_tag(version, digest)
    try:
        stored = _verified_copy(bentoml, tag, digest)
    except bentoml.exceptions.NotFound as exc:
        raise NoVerifiedModelError(f"{seen}, was never imported here") from exc
    except _UNREADABLE as exc:
        raise NoVerifiedModelError(f"{seen}: its import fails verification ({exc})") from exc
    if stored.info.labels.get("mlflow_version") != version:
        raise NoVerifiedModelError(f"{seen}: {tag} is labelled another version")
    return ResolvedModel(tag, version, digest, "fallback", seen)


def last_verified(alias: str = CHAMPION) -> ResolvedModel | None:
    """The verified import of the version last read under ``alias``, or None."""
    try:
        return _fallback(alias)
    except NoVerifiedModelError:
        return None


def _reason(exc: BaseException) -> str:
    from shiprisk.models.registry import RegistryUnreachableError

    if isinstance(exc, RegistryUnreachableError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def resolve(alias: str = CHAMPION) -> ResolvedModel:
    """The model to serve: a fresh import of ``alias``, else the verified import of the
    version last read under ``alias`` (registry calls fail fast: seconds, not minutes)."""
    from shiprisk.models import registry

    try:
        with registry.fail_fast():
            return import_version(alias)
    except Exception as exc:  # registry down, alias missing, artifact refused...
        reason = _reason(exc)
        try:
            fallback = _fallback(alias)
        except NoVerifiedModelError as none:
            raise NoVerifiedModelError(
                f"cannot import '{alias}' ({reason}) and no verified model is in the store "
                f"for it: {none}"
            ) from exc
        return ResolvedModel(
            fallback.tag,
            fallback.mlflow_version,
            fallback.digest,
            "fallback",
            f"serving last verified import {fallback.tag} ({fallback.message}): "
            f"could not import '{alias}' ({reason})",
        )


def pin(tag: str) -> Path:
    """Record the tag to serve, for a `bentoml serve` started without SHIPRISK_MODEL_TAG."""
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(settings.home / TAG_FILE, tag + "\n")


def pinned_tag() -> str | None:
    """The tag to serve: ``SHIPRISK_MODEL_TAG``, else the one baked into a bento, else the one
    ``shiprisk serve`` pinned under SHIPRISK_HOME."""
    tag = os.environ.get("SHIPRISK_MODEL_TAG")
    if tag:
        return tag
    # BentoML imports a bento's service with its src/ as the working directory; in a
    # development environment the editable install may still import this file from the
    # checkout, so the baked file is looked up in both places.
    for baked in (BAKED_TAG_FILE, Path.cwd() / "serving" / BAKED_TAG_FILE.name):
        if baked.is_file():
            return baked.read_text().strip()
    path = get_settings().home / TAG_FILE
    return path.read_text().strip() if path.is_file() else None
