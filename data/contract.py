"""The shipment contract: one table of fields from which every schema derives.

``FIELDS`` is the single source of truth for field names, types, units, allowed values and
ranges. From it we derive three pydantic schemas (used by the API and by row-wise checks):

* :class:`ShipmentRequest` - what checkout sends (channel and candidate channels optional);
* :class:`OpenShipment` - a request plus its chosen channel and a shipment id;
* :class:`HistoryRow` - an open shipment plus its outcome and the outcome date;

and the vectorised DataFrame validator in :mod:`shiprisk.data.validation`. Buyer names,
street addresses and phone numbers are deliberately not part of the contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

Kind = Literal["str", "enum", "int", "float", "bool", "datetime", "date"]

MARKETPLACES = (
    "amazon",
    "ebay",
    "aliexpress",
    "shopify",
    "etsy",
    "walmart",
    "shopee",
    "mercadolibre",
    "other",
)
PAYMENT_METHODS = ("prepaid", "cod")
DUTIES_TERMS = ("DDP", "DDU")
GOODS_CATEGORIES = (
    "apparel",
    "electronics",
    "jewelry",
    "cosmetics",
    "batteries",
    "liquids",
    "documents",
    "toys",
    "home",
    "branded_goods",
)
VALUABLE_GOODS = ("electronics", "jewelry")
"""Goods thieves target: envelopes and outer-label wording matter most for these."""
SENSITIVE_GOODS = ("batteries", "liquids", "cosmetics", "branded_goods")
"""Goods customs inspect more often (dangerous goods, IP checks)."""
SOFT_PACKAGING = ("envelope", "poly_mailer")
PACKAGING_TYPES = ("envelope", "poly_mailer", "box", "reinforced_box")
ADDRESS_QUALITIES = ("verified", "unverified", "corrected")
from shiprisk.data.outcomes import LABELS as OUTCOMES  # noqa: E402 - one home for the names

CURRENCIES: tuple[str, ...] = (
    "USD", "EUR", "GBP", "CNY", "HKD", "JPY", "AUD", "CAD", "CHF", "BRL",
    "MXN", "INR", "AED", "SAR", "SGD", "MYR", "THB", "KRW", "CLP", "PLN",
)  # fmt: skip
"""Currencies the contract accepts; ``catalogs/currencies.csv`` holds a rate for each."""

COUNTRY_PATTERN = r"^[A-Z]{2}$"
CHANNEL_PATTERN = r"^[a-z0-9_]{1,40}$"
ID_PATTERN = r"^[A-Za-z0-9_.:/#-]{1,64}$"
EARLIEST_CREATED_AT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=2)
"""A creation time more than this ahead of the clock is an error, not a shipment."""
MAX_CANDIDATES = 30


@dataclass(frozen=True)
class FieldSpec:
    """One contract field: its type, unit, allowed values or range, and where it is used."""

    name: str
    kind: Kind
    description: str
    unit: str | None = None
    values: tuple[str, ...] | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    pattern: str | None = None
    max_length: int | None = None
    example: Any = None
    core: bool = False  # else optional: may be absent (unknown, never made up)


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "order_id",
        "str",
        "Seller's order reference (no personal data).",
        pattern=ID_PATTERN,
        max_length=64,
        example="SO-100234",
        core=True,
    ),
    FieldSpec(
        "created_at",
        "datetime",
        "When the shipment was created (timezone-aware; naive values in files are read as UTC).",
        example="2025-11-03T09:30:00Z",
        core=True,
    ),
    FieldSpec(
        "marketplace", "enum", "Sales channel of the order.", values=MARKETPLACES, example="amazon"
    ),
    FieldSpec(
        "payment_method",
        "enum",
        "Prepaid, or cash on delivery.",
        values=PAYMENT_METHODS,
        example="prepaid",
    ),
    FieldSpec(
        "duties_terms",
        "enum",
        "Who pays import duties: seller (DDP) or buyer (DDU).",
        values=DUTIES_TERMS,
        example="DDU",
    ),
    FieldSpec(
        "recipient_tax_id_present",
        "bool",
        "Recipient tax id (CPF, PCCC, RFC...) is on the customs form.",
        example=False,
    ),
    FieldSpec(
        "buyer_prior_orders",
        "int",
        "Buyer's earlier orders with this seller.",
        unit="orders",
        ge=0,
        le=100_000,
        example=3,
    ),
    FieldSpec(
        "buyer_prior_refusals",
        "int",
        "Of those, how many the buyer refused.",
        unit="orders",
        ge=0,
        le=100_000,
        example=0,
    ),
    FieldSpec(
        "goods_category",
        "enum",
        "Main goods category of the parcel.",
        values=GOODS_CATEGORIES,
        example="electronics",
    ),
    FieldSpec(
        "item_count", "int", "Items in the parcel.", unit="items", ge=1, le=10_000, example=1
    ),
    FieldSpec(
        "declared_value",
        "float",
        "Declared customs value, in `currency`.",
        unit="currency",
        gt=0,
        le=1_000_000,
        example=120.0,
        core=True,
    ),
    FieldSpec(
        "currency",
        "enum",
        "ISO 4217 code of `declared_value`.",
        values=CURRENCIES,
        example="USD",
        core=True,
    ),
    FieldSpec("weight_kg", "float", "Actual gross weight.", unit="kg", gt=0, le=500, example=0.8),
    FieldSpec(
        "length_cm", "float", "Longest side of the parcel.", unit="cm", gt=0, le=400, example=30.0
    ),
    FieldSpec("width_cm", "float", "Second side.", unit="cm", gt=0, le=400, example=20.0),
    FieldSpec("height_cm", "float", "Third side.", unit="cm", gt=0, le=400, example=10.0),
    FieldSpec("packaging", "enum", "Outer packaging.", values=PACKAGING_TYPES, example="box"),
    FieldSpec("fragile", "bool", "Marked fragile.", example=False),
    FieldSpec(
        "valuable_wording",
        "bool",
        "Outer label names valuables (gold, jewelry, phone...).",
        example=False,
    ),
    FieldSpec(
        "destination_country",
        "str",
        "ISO 3166-1 alpha-2 code of the destination.",
        pattern=COUNTRY_PATTERN,
        max_length=2,
        example="US",
        core=True,
    ),
    FieldSpec(
        "remote_area", "bool", "Destination postcode is a carrier remote area.", example=False
    ),
    FieldSpec(
        "address_quality",
        "enum",
        "Address check result.",
        values=ADDRESS_QUALITIES,
        example="verified",
    ),
)

CHANNEL_FIELD = FieldSpec(
    "channel_id",
    "str",
    "Shipping channel id from the channel catalog.",
    pattern=CHANNEL_PATTERN,
    max_length=40,
    example="epacket",
    core=True,
)
SHIPMENT_ID_FIELD = FieldSpec(
    "shipment_id",
    "str",
    "Unique shipment id.",
    pattern=ID_PATTERN,
    max_length=64,
    example="SH-000001",
    core=True,
)
OUTCOME_FIELD = FieldSpec(
    "outcome",
    "enum",
    "What happened to the parcel.",
    values=OUTCOMES,
    example="delivered",
    core=True,
)
OUTCOME_DATE_FIELD = FieldSpec(
    "outcome_date", "date", "When the outcome became known.", example="2025-11-20", core=True
)

SPECS: dict[str, FieldSpec] = {
    f.name: f
    for f in (*FIELDS, CHANNEL_FIELD, SHIPMENT_ID_FIELD, OUTCOME_FIELD, OUTCOME_DATE_FIELD)
}
SHIPMENT_FIELDS: tuple[str, ...] = tuple(f.name for f in FIELDS)
OPEN_FIELDS: tuple[str, ...] = ("shipment_id", *SHIPMENT_FIELDS, "channel_id")
HISTORY_FIELDS: tuple[str, ...] = (*OPEN_FIELDS, "outcome", "outcome_date")
SCHEMA_FIELDS: dict[str, tuple[str, ...]] = {
    "request": (*SHIPMENT_FIELDS, "channel_id"),
    "open": OPEN_FIELDS,
    "history": HISTORY_FIELDS,
}
"""Columns of each schema, in order (the request's candidate list is API-only)."""
# Core: in every row and request (docs/history.md says why); the rest may be absent.
CORE_FIELDS: tuple[str, ...] = tuple(name for name, spec in SPECS.items() if spec.core)
OPTIONAL_FIELDS: tuple[str, ...] = tuple(f for f in SHIPMENT_FIELDS if not SPECS[f].core)
_PARCEL = ("weight_kg", "length_cm", "width_cm", "height_cm", "packaging")
TYPICAL_EXPORT_MISSING = (*_PARCEL, "address_quality", "buyer_prior_orders", "buyer_prior_refusals")
"""What a typical order export lacks (issue 14): parcel size and packing, address, buyer."""


# -- cross-field rules: written once over array-likes, used by pydantic and by DataFrames --

Rule = tuple[str, str, Callable[[Mapping[str, Any]], Any]]
"""(field to blame, reason, predicate that is True where the row is valid)."""

CROSS_FIELD_RULES: dict[str, tuple[Rule, ...]] = {
    "request": (
        (
            "buyer_prior_refusals",
            "cannot exceed buyer_prior_orders",
            lambda r: np.asarray(r["buyer_prior_refusals"]) <= np.asarray(r["buyer_prior_orders"]),
        ),
    ),
    "history": (
        (
            "outcome_date",
            "cannot be before created_at",
            lambda r: _as_day(r["outcome_date"]) >= _as_day(r["created_at"]),
        ),
    ),
}


def _as_day(value: Any) -> Any:
    """Days since epoch for a date/datetime scalar or a pandas Series (rules compare days)."""
    if hasattr(value, "dt"):  # pandas Series
        return (
            value.dt.tz_localize(None).values.astype("datetime64[D]")
            if getattr(value.dt, "tz", None)
            else value.values.astype("datetime64[D]")
        )
    if isinstance(value, datetime):
        value = value.date()
    return np.datetime64(value, "D")


def rules_for(schema: str) -> tuple[Rule, ...]:
    """Cross-field rules that apply to a schema (history includes the request's)."""
    rules = CROSS_FIELD_RULES["request"]
    return rules + CROSS_FIELD_RULES["history"] if schema == "history" else rules


def check_created_at(value: datetime, now: datetime | None = None) -> datetime:
    """Normalise to UTC and refuse times before 2000 or far in the future."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    now = now or datetime.now(UTC)
    if value < EARLIEST_CREATED_AT:
        raise ValueError("must be on or after 2000-01-01")
    if value > now + MAX_FUTURE:
        raise ValueError("is in the future")
    return value


# -- pydantic schemas derived from the table ----------------------------------------------


def _not_a_bool(value: Any) -> Any:
    """JSON ``true``/``false`` is not a number, although pydantic's lax mode reads it as 1/0:
    the document says number, so a boolean is refused like any other wrong type."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


_NOT_A_BOOL = BeforeValidator(_not_a_bool)
Number = Annotated[float, _NOT_A_BOOL]
"""A float field that refuses booleans (every number of the API: contract, costs, quotes)."""
Count = Annotated[int, _NOT_A_BOOL]
Flag = Annotated[bool, BeforeValidator(lambda v: _not_a_number(v))]
"""A true/false field that refuses numbers (JSON 0/1 is not a boolean: the document says so)."""


def _not_a_number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("must be true or false, not a number")
    return value


def _pydantic_field(spec: FieldSpec, *, required: bool = True) -> tuple[Any, Any]:
    """Annotation and ``Field`` for one spec (constraints become JSON-schema bounds)."""
    annotation: Any = {
        "str": str,
        "int": Count,
        "float": Number,
        "bool": Flag,
        "datetime": datetime,
        "date": date,
    }.get(spec.kind)
    if spec.kind == "enum":
        annotation = Literal[spec.values]  # type: ignore[valid-type]
    extra = {"unit": spec.unit} if spec.unit else None
    kwargs: dict[str, Any] = {
        "description": spec.description,
        "examples": [spec.example] if spec.example is not None else None,
        "json_schema_extra": extra,
    }
    bounds: dict[str, Any] = {
        key: getattr(spec, key)
        for key in ("ge", "gt", "le", "pattern", "max_length")
        if getattr(spec, key) is not None
    }
    if spec.kind == "str":
        bounds["min_length"] = 1
    if spec.kind == "float":
        bounds["allow_inf_nan"] = False
    if not required:
        # Bounds inside the optional type, so the JSON schema shows them as bounds.
        base = {"int": int, "float": float, "bool": bool}.get(spec.kind, annotation)
        return optional(base, **bounds), Field(default=None, **kwargs)
    return annotation, Field(**kwargs, **bounds)


def optional(base: Any, **bounds: Any) -> Any:
    """``base | None`` with its bounds on the non-null branch (numbers refuse booleans).

    Bounds go before the boolean check: given to a ``Field`` of an optional validated type,
    pydantic would write them as unknown JSON-schema keys instead of minimum/maximum."""
    if base in (int, float):
        return Annotated[base, Field(**bounds), _NOT_A_BOOL] | None
    if base is bool:
        return Annotated[bool, BeforeValidator(_not_a_number)] | None
    return Annotated[base, Field(**bounds)] | None


def _annotations(names: tuple[str, ...]) -> dict[str, Any]:
    return {n: _pydantic_field(SPECS[n], required=SPECS[n].core) for n in names}


class _Unknown(Exception):
    """A cross-field rule read a field the row leaves out: the rule does not apply."""


class _Known(dict):  # type: ignore[type-arg]
    """Row view for a rule: reading an absent (None) field stops the rule."""

    def __getitem__(self, key: str) -> Any:
        if (value := super().__getitem__(key)) is None:
            raise _Unknown(key)
        return value


class _ContractModel(BaseModel):
    """Shared config and validators: unknown fields are errors; created_at is bounded."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("created_at", check_fields=False)
    @classmethod
    def _created_at_bounds(cls, value: datetime) -> datetime:
        return check_created_at(value)

    @model_validator(mode="after")
    def _cross_field(self) -> _ContractModel:
        schema = "history" if "outcome" in type(self).model_fields else "request"
        row = _Known(self.__dict__)
        for field, reason, predicate in rules_for(schema):
            try:
                holds = bool(predicate(row))
            except _Unknown:  # a rule speaks only about rows that carry its inputs
                continue
            if not holds:
                raise ValueError(f"{field}: {reason}")
        return self


def _build(name: str, doc: str, fields: dict[str, Any], base: type[BaseModel]) -> type[Any]:
    namespace: dict[str, Any] = {
        "__annotations__": {k: v[0] for k, v in fields.items()},
        "__doc__": doc,
        "__module__": __name__,
    }
    namespace.update({k: v[1] for k, v in fields.items()})
    return type(name, (base,), namespace)


class CandidateChannel(BaseModel):
    """A channel the seller wants priced, optionally with its own quote (USD)."""

    model_config = ConfigDict(extra="forbid")
    channel_id: str = Field(
        pattern=CHANNEL_PATTERN,
        max_length=40,
        min_length=1,
        description="Channel id from the catalog.",
        examples=["epacket"],
    )
    quoted_price_usd: optional(float, ge=0, le=100_000, allow_inf_nan=False) = Field(  # type: ignore[valid-type]
        default=None,
        description="Seller's negotiated price, USD.",
    )
    quoted_premium_usd: optional(float, ge=0, le=100_000, allow_inf_nan=False) = Field(  # type: ignore[valid-type]
        default=None,
        description="Insurance premium quote, USD.",
    )


ShipmentFields = _build(
    "ShipmentFields",
    "The descriptive fields every schema shares.",
    _annotations(SHIPMENT_FIELDS),
    _ContractModel,
)

ShipmentRequest = _build(
    "ShipmentRequest",
    "What checkout sends: a shipment, optionally its channel or the candidates to price.",
    {
        "channel_id": _pydantic_field(CHANNEL_FIELD, required=False),
        "candidates": (
            list[CandidateChannel] | None,
            Field(
                default=None,
                max_length=MAX_CANDIDATES,
                min_length=1,
                description="Channels to price (default: every eligible channel).",
            ),
        ),
    },
    ShipmentFields,
)

OpenShipment = _build(
    "OpenShipment",
    "A shipment on its chosen channel whose outcome is not known yet.",
    _annotations(("shipment_id", "channel_id")),
    ShipmentFields,
)

HistoryRow = _build(
    "HistoryRow",
    "An open shipment plus its outcome: one row of a seller's history.",
    _annotations(("outcome", "outcome_date")),
    OpenShipment,
)

SCHEMAS: dict[str, type[BaseModel]] = {
    "request": ShipmentRequest,
    "open": OpenShipment,
    "history": HistoryRow,
}


def example_request() -> dict[str, Any]:
    """A valid request built from the field examples (docs, tests, OpenAPI)."""
    return {f.name: f.example for f in FIELDS}
