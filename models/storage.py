"""A saved model's manifest: the format it is written in, the SHA-256 of every file (checked
on load), one digest for the whole, and crash-safe writes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shiprisk.data.atomic import write_text_atomic

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
FORMAT_WITH_CAUSES = 2
"""Written by a model with a two-cause head: code from before two-cause heads reads format 1
only, so it refuses such a model instead of scoring its first cause alone."""


class ModelIntegrityError(RuntimeError):
    """A stored model file is missing or does not match its recorded checksum."""


class IncompatibleModelError(ModelIntegrityError):
    """A stored model needs features this code does not compute: it cannot be served or
    promoted by this code (refused at load, never at request time)."""


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
        if sha256_file(path) != digest:
            raise ModelIntegrityError(f"checksum mismatch for {name}: refusing to load")


def model_digest(directory: Path) -> str:
    """One short fingerprint of a saved model (hash of its manifest's file checksums)."""
    files = read_manifest(directory)["files"]
    joined = "".join(f"{k}={v};" for k, v in sorted(files.items()))
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text(path: Path, text: str) -> None:
    """A crash never leaves a half-written model file."""
    write_text_atomic(path, text)
