"""Reading a catalog directory: the one reader for the bundled catalog and a seller's own.

A catalog directory holds ``channels.json`` (origin, optional version, channels),
``destinations.csv`` (the destination -> zone table and destination attributes) and,
optionally for a seller, ``currencies.csv`` (else the bundled rates). Every record is
validated with the pydantic models of :mod:`shiprisk.data.catalogs`; the first problem
raises :class:`~shiprisk.data.catalogs.CatalogError` as one line naming the file, the row,
the field and the reason (docs/catalog.md). The catalog's version is the declared
``version``, else a content hash of its files, so every answer can name what it used.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shiprisk.data.catalogs import (
    Catalog,
    CatalogError,
    Channel,
    Currency,
    Destination,
    check_catalog,
    reference_dir,
)

FILES = ("channels.json", "destinations.csv", "currencies.csv")
"""The catalog files; ``currencies.csv`` may be left out of a seller catalog."""
_HEADER = {"origin", "version", "as_of", "channels"}


def read_catalog(root: Path, source: str = "bundled") -> Catalog:
    """Read, validate and cross-check the catalog in ``root``."""
    if not root.is_dir():
        raise CatalogError(f"{root}: not a directory (a catalog is a directory; docs/catalog.md)")
    texts = {name: _text(root, name, required=name != "currencies.csv") for name in FILES}
    if texts["currencies.csv"] is None:  # a seller catalog uses the bundled dated rates
        texts["currencies.csv"] = (reference_dir() / "currencies.csv").read_text()
    raw = _json(root / "channels.json", texts["channels.json"])
    channels = tuple(
        _model(Channel, c, f"{root / 'channels.json'}: channels[{i}]{_id(c)}")
        for i, c in enumerate(raw["channels"])
    )
    destinations = tuple(
        _model(Destination, row, f"{root / 'destinations.csv'}: line {line}")
        for line, row in _rows(texts["destinations.csv"])
    )
    currencies = {}
    for line, row in _rows(texts["currencies.csv"]):
        rate = _model(Currency, row, f"{root / 'currencies.csv'}: line {line}")
        currencies[rate.currency] = rate
    origin = str(raw.get("origin", "CN"))
    _check_origin(root, origin)
    digest = hashlib.sha256("\0".join(texts[n] or "" for n in FILES).encode()).hexdigest()
    version = str(raw.get("version") or f"sha256:{digest[:12]}")
    catalog = Catalog(
        channels,
        destinations,
        currencies,
        str(raw.get("as_of", "")),
        origin=origin,
        version=version,
        source=source,
    )
    try:
        check_catalog(catalog)
    except ValueError as exc:
        raise CatalogError(f"{root}: {exc}") from None
    return catalog


def _text(root: Path, name: str, *, required: bool) -> str | None:
    path = root / name
    if not path.is_file():
        if required:
            raise CatalogError(f"{path}: missing (a catalog needs {name}; docs/catalog.md)")
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot be read ({exc})") from None


def _json(path: Path, text: str) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("channels"), list):
        raise CatalogError(f"{path}: must be an object with a 'channels' list")
    unknown = sorted(set(raw) - _HEADER)
    if unknown:
        raise CatalogError(f"{path}: {unknown[0]}: unknown key (allowed: {sorted(_HEADER)})")
    if not raw["channels"]:
        raise CatalogError(f"{path}: channels: the list is empty")
    return raw


def _rows(text: str) -> list[tuple[int, dict[str, str]]]:
    """CSV rows with their line numbers; an empty cell means 'not given' (the default)."""
    reader = csv.DictReader(io.StringIO(text))
    return [
        (reader.line_num, {k: v for k, v in row.items() if k is not None and v not in ("", None)})
        for row in reader
    ]


def _model(model: type, value: Any, where: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        reason = err["msg"].removeprefix("Value error, ")
        raise CatalogError(
            f"{where}: {field}: {reason}" if field else f"{where}: {reason}"
        ) from None


def _id(record: Any) -> str:
    return f" (id {record['id']})" if isinstance(record, dict) and "id" in record else ""


def _check_origin(root: Path, origin: str) -> None:
    import pycountry

    if len(origin) != 2 or pycountry.countries.get(alpha_2=origin) is None:
        raise CatalogError(
            f"{root / 'channels.json'}: origin: {origin!r} is not an ISO 3166 alpha-2 country"
        )
