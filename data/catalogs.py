"""Reference catalogs: shipping channels, destinations and currency rates.

The data files live in ``shiprisk/data/reference/`` (format documented in
``shiprisk/data/README.md``); :func:`load_catalog` validates them with pydantic and turns
them into numpy tables, so eligibility, price and transit time are computed by one
vectorised implementation that broadcasts over shipments ``(n, 1)`` and channels ``(1, C)``.
The simulator, the feature pipeline, the decision policy and batch scoring all call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shiprisk.data.contract import CURRENCIES, GOODS_CATEGORIES

ChannelType = Literal["postal_untracked", "postal_tracked", "dedicated_line", "express"]
CHANNEL_TYPES: tuple[str, ...] = ("postal_untracked", "postal_tracked", "dedicated_line", "express")
TRACKING_NAMES: tuple[str, ...] = ("none", "partial", "full")
"""Tracking levels from least to most; a level's code is its position."""
TRACKING_LEVELS: dict[str, int] = {name: code for code, name in enumerate(TRACKING_NAMES)}
Tracking = Literal[TRACKING_NAMES]  # type: ignore[valid-type]
"""Row used for a country missing from the catalog: scored, with a warning, as below."""
UNKNOWN_DESTINATION = {
    "zone": 5,
    "risk_tier": 2,
    "customs_tier": 2,
    "cod_share": 0.2,
    "remote_share": 0.1,
    "customs_hold_days": 3,
}


class ZonePrice(BaseModel):
    """A zone the channel serves: its price (null on a channel quoted at request time)."""

    model_config = ConfigDict(extra="forbid")
    base_usd: float | None = Field(default=None, ge=0)
    per_kg_usd: float | None = Field(default=None, ge=0)
    transit_days: tuple[int, int]

    @model_validator(mode="after")
    def _ordered(self) -> ZonePrice:
        lo, hi = self.transit_days
        if not 0 < lo <= hi:
            raise ValueError("transit_days must be [min, max] with 0 < min <= max")
        return self


class Insurance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    available: bool
    premium_rate: float = Field(ge=0, le=0.2)
    premium_min_usd: float = Field(ge=0)
    max_cover_usd: float = Field(ge=0)


class Eligibility(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_weight_kg: float = Field(gt=0)
    max_length_cm: float = Field(gt=0)
    max_girth_cm: float = Field(gt=0, description="longest side + 2 x (the other two)")
    destinations: Literal["all"] | list[str]
    excluded_destinations: list[str] = []
    refused_goods: list[Literal[GOODS_CATEGORIES]] = []  # type: ignore[valid-type]
    cod: bool
    max_value_usd: float = Field(gt=0)


class Channel(BaseModel):
    """One shipping channel as a seller buys it."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9_]{1,40}$")
    name: str
    carrier: str
    channel_type: ChannelType
    tracking: Tracking
    zones: dict[int, ZonePrice]
    volumetric_divisor: float | None = Field(gt=0)
    min_chargeable_kg: float = Field(ge=0)
    liability_usd: float = Field(ge=0)
    liability_per_kg_usd: float = Field(ge=0)
    return_cost_ratio: float = Field(ge=0, le=2, description="return shipping / outbound price")
    insurance: Insurance
    eligibility: Eligibility
    # Optional cost terms (docs/policy.md); unset = the channel type's default below.
    liability_paid_probability: float | None = Field(
        default=None, ge=0, le=1, description="P(the carrier pays its liability for a loss)"
    )
    refused_returned_share: float | None = Field(
        default=None, ge=0, le=1, description="share of refused parcels returned (else abandoned)"
    )
    bills_refused_duties: bool | None = Field(
        default=None, description="the carrier bills the shipper for a refused DDU parcel's duties"
    )
    # Seller catalogs (docs/catalog.md): how the channel is priced, and prior outcome rates
    # used where no trained model head covers an outcome.
    pricing: Literal["table", "quoted"] = Field(
        default="table",
        description="'table': zones hold base and per-kg prices; 'quoted': the price is "
        "quoted at request time (candidates[].quoted_price_usd), zones hold transit only",
    )
    prior_loss_rate: float | None = Field(default=None, ge=0, le=1)
    prior_reject_rate: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _priced(self) -> Channel:
        if self.pricing == "table":
            for z, zp in self.zones.items():
                if zp.base_usd is None or zp.per_kg_usd is None:
                    raise ValueError(
                        f"zones.{z}: base_usd and per_kg_usd are required unless "
                        "pricing is 'quoted'"
                    )
        return self


CHANNEL_TYPE_DEFAULTS: dict[str, dict[str, float]] = {
    # Chosen defaults by channel type for the optional cost columns (sources and reasons:
    # docs/policy.md, "Per-channel terms"). Order: CHANNEL_TYPES.
    "liability_paid_probability": {
        "postal_untracked": 0.0,
        "postal_tracked": 0.5,
        "dedicated_line": 0.6,
        "express": 0.9,
    },
    "refused_returned_share": {
        "postal_untracked": 0.1,
        "postal_tracked": 0.5,
        "dedicated_line": 0.3,
        "express": 0.9,
    },
    "bills_refused_duties": {
        "postal_untracked": 0.0,
        "postal_tracked": 0.0,
        "dedicated_line": 0.0,
        "express": 1.0,
    },
}


class Destination(BaseModel):
    """One destination country; in a seller catalog any ISO 3166 country (its zone is the
    seller's own destination -> zone table). Optional columns default as documented."""

    model_config = ConfigDict(extra="forbid")
    country: str = Field(pattern=r"^[A-Z]{2}$")
    name: str = ""
    region: str
    zone: int = Field(ge=1, le=5)
    risk_tier: int = Field(ge=1, le=3)
    customs_tier: int = Field(ge=1, le=3)
    cod_share: float = Field(ge=0, le=1)
    remote_share: float = Field(default=0.05, ge=0, le=1)
    requires_tax_id: bool = False
    insurance_excluded: bool = False
    customs_hold_days: int = Field(default=1, ge=0, le=60)

    @field_validator("country")
    @classmethod
    def _iso_country(cls, code: str) -> str:
        import pycountry

        if pycountry.countries.get(alpha_2=code) is None:
            raise ValueError(f"{code} is not an ISO 3166-1 alpha-2 country code")
        return code

    @model_validator(mode="after")
    def _named(self) -> Destination:
        if not self.name:  # a seller may leave the name out: ISO's common name
            import pycountry

            found = pycountry.countries.get(alpha_2=self.country)
            self.name = getattr(found, "common_name", None) or found.name
        return self


class Currency(BaseModel):
    currency: Literal[CURRENCIES]  # type: ignore[valid-type]
    usd_per_unit: float = Field(gt=0)
    as_of: date


@dataclass(frozen=True)
class Catalog:
    """Validated catalogs plus the numpy tables the vectorised functions use."""

    channels: tuple[Channel, ...]
    destinations: tuple[Destination, ...]
    currencies: dict[str, Currency]
    as_of: str
    origin: str = "CN"
    """ISO country the channels ship from (declared by a seller catalog)."""
    version: str = ""
    """The catalog's declared version, else a content hash of its files: every answer names it."""
    source: str = "bundled"
    """'bundled' (the package's reference catalog) or 'seller' (SHIPRISK_CATALOG_DIR)."""
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # -- lookups ---------------------------------------------------------------------
    @cached_property
    def channel_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.channels)

    @cached_property
    def channel_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.channel_ids)}

    @cached_property
    def countries(self) -> tuple[str, ...]:
        """Catalog countries; index ``len(countries)`` is the unknown-country row."""
        return tuple(d.country for d in self.destinations)

    @cached_property
    def country_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.countries)}

    @cached_property
    def destination_by_country(self) -> dict[str, Destination]:
        return {d.country: d for d in self.destinations}

    def country_codes(self, countries: np.ndarray | list[str]) -> np.ndarray:
        """Row index of each country in the destination tables (unknown -> last row)."""
        unknown = len(self.countries)
        index = self.country_index
        return np.fromiter(
            (index.get(c, unknown) for c in countries), dtype=np.int64, count=len(countries)
        )

    @cached_property
    def usd_per_unit(self) -> dict[str, float]:
        """Currency code -> USD per unit (the catalog's dated rate)."""
        return {k: v.usd_per_unit for k, v in self.currencies.items()}

    @cached_property
    def rates_as_of(self) -> str:
        """Date of the newest exchange rate (ISO); every USD conversion uses these rates."""
        return max(c.as_of for c in self.currencies.values()).isoformat()

    def usd_rate(self, currencies: np.ndarray | list[str]) -> np.ndarray:
        rates = self.usd_per_unit
        return np.fromiter(
            (rates.get(c, np.nan) for c in currencies), dtype=np.float64, count=len(currencies)
        )

    # -- destination tables (one row per country + unknown) ---------------------------
    def destination_column(self, name: str) -> np.ndarray:
        """Numeric destination attribute by country row, unknown row last."""
        key = ("dest", name)
        if key not in self._cache:
            values = [float(getattr(d, name)) for d in self.destinations]
            values.append(float(UNKNOWN_DESTINATION.get(name, 0.0)))
            self._cache[key] = np.asarray(values)
        return self._cache[key]

    # -- channel tables ----------------------------------------------------------------
    def channel_column(self, name: str) -> np.ndarray:
        """A per-channel numeric attribute as an array of shape (C,)."""
        key = ("chan", name)
        if key not in self._cache:
            self._cache[key] = np.asarray(
                [_channel_attr(c, name) for c in self.channels], dtype=np.float64
            )
        return self._cache[key]

    @cached_property
    def _zone_tables(self) -> dict[str, np.ndarray]:
        """(C, 6) tables indexed by zone (column 0 unused); NaN where a zone is not priced."""
        shape = (len(self.channels), 6)
        tables = {k: np.full(shape, np.nan) for k in ("base", "per_kg", "tmin", "tmax")}
        for i, ch in enumerate(self.channels):
            for z, zp in ch.zones.items():
                # A quoted channel has no list price: NaN (the request's quote replaces it).
                tables["base"][i, z] = np.nan if zp.base_usd is None else zp.base_usd
                tables["per_kg"][i, z] = np.nan if zp.per_kg_usd is None else zp.per_kg_usd
                tables["tmin"][i, z], tables["tmax"][i, z] = zp.transit_days
        return tables

    @cached_property
    def _serves(self) -> np.ndarray:
        """(countries + 1, C) bool: channel serves the country (unknown: 'all' channels)."""
        serves = np.zeros((len(self.countries) + 1, len(self.channels)), dtype=bool)
        for j, ch in enumerate(self.channels):
            elig = ch.eligibility
            for i, d in enumerate(self.destinations):
                listed = elig.destinations == "all" or d.country in elig.destinations
                serves[i, j] = (
                    listed and d.country not in elig.excluded_destinations and (d.zone in ch.zones)
                )
            serves[-1, j] = elig.destinations == "all" and UNKNOWN_DESTINATION["zone"] in ch.zones
        return serves

    @cached_property
    def _refuses(self) -> np.ndarray:
        """(goods categories, C) bool: channel refuses the goods."""
        refuses = np.zeros((len(GOODS_CATEGORIES), len(self.channels)), dtype=bool)
        for j, ch in enumerate(self.channels):
            for g in ch.eligibility.refused_goods:
                refuses[GOODS_CATEGORIES.index(g), j] = True
        return refuses

    # -- vectorised functions (broadcast shipments (n,1) against channels (C,)) ---------
    def zone_of(self, country_code: np.ndarray) -> np.ndarray:
        return self.destination_column("zone")[country_code].astype(np.int64)

    def eligible(
        self,
        *,
        weight_kg: np.ndarray,
        dims_cm: tuple[np.ndarray, np.ndarray, np.ndarray],
        country_code: np.ndarray,
        goods_code: np.ndarray,
        is_cod: np.ndarray,
        value_usd: np.ndarray,
    ) -> np.ndarray:
        """(n, C) bool: which channels accept each shipment (no check of ``refusals`` fails)."""
        checks = self.refusals(
            weight_kg=weight_kg,
            dims_cm=dims_cm,
            country_code=country_code,
            goods_code=goods_code,
            is_cod=is_cod,
            value_usd=value_usd,
        )
        refused = None
        for mask in checks.values():  # in place: this runs on every request
            refused = mask.copy() if refused is None else np.logical_or(refused, mask, out=refused)
        return ~refused

    def refusals(
        self,
        *,
        weight_kg: np.ndarray,
        dims_cm: tuple[np.ndarray, np.ndarray, np.ndarray],
        country_code: np.ndarray,
        goods_code: np.ndarray,
        is_cod: np.ndarray,
        value_usd: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """(n, C) bool per ``ELIGIBILITY_CHECKS`` entry: the channel refuses for that reason.

        The one home of the eligibility rules: :meth:`eligible` and the online reasons
        (``decisions.candidates.ineligibility_reasons``) both read it.
        """
        col = self.channel_column
        longest, girth = longest_and_girth(dims_cm)
        goods = np.asarray(goods_code)
        return {
            "weight": np.asarray(weight_kg, dtype=float)[:, None] > col("max_weight_kg"),
            "length": longest[:, None] > col("max_length_cm"),
            "girth": girth[:, None] > col("max_girth_cm"),
            "value": np.asarray(value_usd, dtype=float)[:, None] > col("max_value_usd"),
            "destination": ~self._serves[np.asarray(country_code)],
            # goods code -1: goods unknown (absent), so no goods rule can refuse
            "goods": self._refuses[goods] & (goods >= 0)[:, None],
            "cod": np.asarray(is_cod, dtype=bool)[:, None] & ~col("cod").astype(bool),
        }

    def chargeable_kg(self, weight_kg: np.ndarray, dims_cm: tuple) -> np.ndarray:
        """(n, C) billed weight: max(actual, volumetric) where the channel bills volume,
        never below the channel's minimum chargeable weight (what an absent weight bills)."""
        w = np.asarray(weight_kg, dtype=float)[:, None]
        volume = np.asarray(dims_cm[0]) * np.asarray(dims_cm[1]) * np.asarray(dims_cm[2])
        bills_volume, divisor = self._volumetric
        vol_kg = np.where(bills_volume, volume[:, None] / divisor, 0.0)
        # fmax skips NaN: an absent weight or size bills the rest, at least the minimum.
        return np.fmax(np.fmax(w, vol_kg), self.channel_column("min_chargeable_kg"))

    @cached_property
    def tracking_codes(self) -> np.ndarray:
        """(C,) int8 tracking level of each channel (``TRACKING_LEVELS`` values)."""
        codes = self.channel_column("tracking_level").astype(np.int8)
        codes.flags.writeable = False
        return codes

    @cached_property
    def _volumetric(self) -> tuple[np.ndarray, np.ndarray]:
        """(C,) whether a channel bills volume, and a divisor that is never 0."""
        divisor = self.channel_column("volumetric_divisor")
        return divisor > 0, np.where(divisor > 0, divisor, 1.0)

    def price_usd(self, weight_kg: np.ndarray, dims_cm: tuple, zone: np.ndarray) -> np.ndarray:
        """(n, C) list price in USD (NaN where the channel does not price that zone)."""
        t = self._zone_tables
        z = np.asarray(zone, dtype=np.int64)
        base = t["base"][:, z].T
        per_kg = t["per_kg"][:, z].T
        return base + per_kg * self.chargeable_kg(weight_kg, dims_cm)

    def transit_days(self, zone: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, C) min and max transit days by zone (before any customs hold)."""
        t = self._zone_tables
        z = np.asarray(zone, dtype=np.int64)
        return t["tmin"][:, z].T, t["tmax"][:, z].T


def longest_and_girth(dims_cm: tuple) -> tuple[np.ndarray, np.ndarray]:
    a, b, c = (np.asarray(d, dtype=float) for d in dims_cm)
    longest = np.maximum(np.maximum(a, b), c)
    girth = longest + 2.0 * (a + b + c - longest)
    return longest, girth


def _channel_attr(ch: Channel, name: str) -> float:
    """Flat numeric view of a channel attribute (nested eligibility/insurance included)."""
    if name == "tracking_level":
        return TRACKING_LEVELS[ch.tracking]
    if name == "channel_type_code":
        return CHANNEL_TYPES.index(ch.channel_type)
    if name in CHANNEL_TYPE_DEFAULTS and getattr(ch, name) is None:
        return CHANNEL_TYPE_DEFAULTS[name][ch.channel_type]
    for source in (ch, ch.eligibility, ch.insurance):
        if hasattr(source, name):
            value = getattr(source, name)
            return 0.0 if value is None else float(value)
    if name.startswith("insurance_"):
        return float(getattr(ch.insurance, name.removeprefix("insurance_")))
    raise KeyError(name)


def reference_dir() -> Path:
    return Path(str(resources.files("shiprisk.data") / "reference"))


def load_catalog(directory: str | Path | None = None) -> Catalog:
    """The catalog in use: ``directory``, else ``SHIPRISK_CATALOG_DIR``, else the bundled one.

    Bundled and seller catalogs go through the same reader and validation
    (``data/catalog_files.py``); a problem raises :class:`CatalogError` naming the file,
    row, field and reason. Cached per directory; read on first use, never at import.
    """
    if directory is None:
        from shiprisk.settings import get_settings

        directory = get_settings().catalog_dir
    root = Path(directory).resolve() if directory else reference_dir()
    return _load(str(root), directory is not None and root != reference_dir().resolve())


def bundled_catalog() -> Catalog:
    """The package's own catalog, whatever SHIPRISK_CATALOG_DIR says: the simulated world
    (simulator, true probabilities) is defined on it."""
    return load_catalog(reference_dir())


@lru_cache(maxsize=8)
def _load(root: str, seller: bool) -> Catalog:
    from shiprisk.data.catalog_files import read_catalog

    return read_catalog(Path(root), "seller" if seller else "bundled")


class CatalogError(ValueError):
    """A catalog file cannot be used; the message names the file, row, field and reason."""


def check_catalog(catalog: Catalog) -> None:
    """Consistency rules; raise ValueError naming the first broken one."""
    ids = catalog.channel_ids
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate channel ids")
    countries = set(catalog.countries)
    if len(countries) != len(catalog.countries):
        raise ValueError("duplicate destination countries")
    for ch in catalog.channels:
        listed = ch.eligibility.destinations
        named = [] if listed == "all" else list(listed)
        for c in [*named, *ch.eligibility.excluded_destinations]:
            if c not in countries:
                raise ValueError(f"channel {ch.id}: destination {c} is not in the catalog")
        for c in named:
            zone = catalog.destination_by_country[c].zone
            if zone not in ch.zones:
                raise ValueError(f"channel {ch.id}: serves {c} but has no price for zone {zone}")
    missing = set(CURRENCIES) - set(catalog.currencies)
    if missing:
        raise ValueError(f"currencies without a rate: {sorted(missing)}")
