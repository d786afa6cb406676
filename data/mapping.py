"""The mapping file: how one seller's export maps onto the contract.

A seller's export rarely uses contract names, spellings, units or date formats, so a small
YAML file translates it; every option is documented in ``docs/history.md`` and
``shiprisk data template`` writes a commented example. The mapping is read with YAML 1.2
booleans (only ``true``/``false``), so spellings such as ``Yes``, ``No``, ``on`` or ``NA``
stay text. :func:`map_frame` applies it: columns (one column may feed several fields),
spellings (case-insensitive, then regular expressions; ``exclude`` drops the row), country
names, decimal commas, units, date formats, derived dates and defaults, in that order.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shiprisk.data.contract import SPECS
from shiprisk.data.extras import ExtraSpec, check_names, extra_columns

EXCLUDE = "exclude"
"""A value-map target that leaves the row out (counted, never trained on)."""
UNITS: dict[str, dict[str, float]] = {
    "kg": {"kg": 1.0, "g": 0.001, "lb": 0.45359237, "oz": 0.028349523125},
    "cm": {"cm": 1.0, "mm": 0.1, "m": 100.0, "in": 2.54},
}
"""Units a numeric column may be in, per contract unit, with the factor to the contract's."""
COUNTRY_FIELD = "destination_country"


class HistoryFileError(ValueError):
    """A seller's file or mapping cannot be used as given; the message is one line naming
    the file, row or option to fix."""


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: ``Yes``/``No``/``on``/``off`` are text, not bools."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _spelling(key: Any) -> str:
    """A value-map key as the text a CSV cell would hold."""
    return str(key).lower() if isinstance(key, bool) else str(key)


def _check_target(name: str, value: Any) -> None:
    """A mapped or default value must be a legal value of its contract field (or null)."""
    spec = SPECS[name]
    if value is None or value == EXCLUDE:
        return
    if spec.kind == "enum" and value not in (spec.values or ()):
        raise ValueError(
            f"{name}: {value!r} is not one of {', '.join(spec.values or ())} (or {EXCLUDE})"
        )
    if spec.kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} must be true or false")


def _unknown_fields(where: str, names: Any) -> None:
    unknown = sorted(set(names) - set(SPECS))
    if unknown:
        raise ValueError(
            f"{where}: {', '.join(unknown)} not contract fields (known: {', '.join(SPECS)})"
        )


class FileOptions(BaseModel):
    """How the file is written: text encoding, field separator, number format."""

    model_config = ConfigDict(extra="forbid")
    encoding: str = Field(default="utf-8", description="e.g. utf-8, latin-1, cp1252")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    decimal: str = Field(default=".", pattern=r"^[.,]$", description="decimal mark")
    thousands: str | None = Field(default=None, max_length=1, description="grouping mark")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError as exc:
            raise ValueError(f"unknown encoding {value!r}") from exc
        return value


class Derived(BaseModel):
    """A field computed from another: ``from`` + ``add_days`` (e.g. an outcome date)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: str = Field(alias="from")
    add_days: int = Field(default=0, ge=0, le=3650)


class Mapping(BaseModel):
    """How one seller's export maps onto the contract (see ``docs/history.md``)."""

    model_config = ConfigDict(extra="forbid")

    file: FileOptions = Field(default_factory=FileOptions)
    columns: dict[str, str | list[str]] = Field(
        default_factory=dict, description="their column -> field (or a list of fields)"
    )
    values: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="field -> {their spelling: contract value}"
    )
    patterns: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="field -> {regular expression: contract value}"
    )
    country_names: bool = Field(
        default=False, description="destination_country holds names: convert to ISO codes"
    )
    units: dict[str, str] = Field(default_factory=dict, description="field -> unit of the file")
    formats: dict[str, str] = Field(
        default_factory=dict, description="date/time field -> strptime format"
    )
    derived: dict[str, Derived] = Field(default_factory=dict, description="field -> rule")
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="field -> value for a column the export lacks"
    )
    timezone: str = Field(default="UTC", description="zone of naive timestamps")
    extras: dict[str, ExtraSpec] = Field(
        default_factory=dict, description="feature name -> extra column (data/extras.py)"
    )

    @field_validator("columns", mode="before")
    @classmethod
    def _column_keys(cls, value: Any) -> Any:
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("values", "patterns", mode="before")
    @classmethod
    def _value_keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            k: {_spelling(s): t for s, t in v.items()} if isinstance(v, dict) else v
            for k, v in value.items()
        }

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def targets(self) -> dict[str, str]:
        """Contract field -> the file column it is read from."""
        return {t: col for col, ts in self.columns.items() for t in _as_list(ts)}

    @model_validator(mode="after")
    def _check(self) -> Mapping:
        fed = [t for ts in self.columns.values() for t in _as_list(ts)]
        _unknown_fields("columns", fed)
        twice = sorted({t for t in fed if fed.count(t) > 1})
        if twice:
            raise ValueError(f"columns: several columns map onto {', '.join(twice)}")
        for where, names in (
            ("values", self.values),
            ("patterns", self.patterns),
            ("units", self.units),
            ("formats", self.formats),
            ("derived", self.derived),
            ("defaults", self.defaults),
        ):
            _unknown_fields(where, names)
        for name, table in (*self.values.items(), *self.patterns.items()):
            for target in table.values():
                _check_target(name, target)
        for name, table in self.patterns.items():
            for pattern in table:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"patterns.{name}: {pattern!r} is not a regex: {exc}"
                    ) from None
        for name, unit in self.units.items():
            known = UNITS.get(SPECS[name].unit or "")
            if known is None:
                raise ValueError(f"units: {name} has no unit (fields with one: {_unit_fields()})")
            if unit not in known:
                raise ValueError(f"units.{name}: {unit!r} is not one of {', '.join(known)}")
        for name in (*self.formats, *self.derived):
            if SPECS[name].kind not in ("date", "datetime"):
                raise ValueError(f"{name} is not a date or time field (formats/derived)")
        for name, rule in self.derived.items():
            _unknown_fields(f"derived.{name}.from", [rule.source])
            if SPECS[rule.source].kind not in ("date", "datetime"):
                raise ValueError(f"derived.{name}.from: {rule.source} is not a date or time")
            if name in fed:
                raise ValueError(f"derived.{name}: also read from a column; keep one of the two")
        for name, value in self.defaults.items():
            _check_target(name, value)
        check_names(self.extras, set(SPECS))
        return self


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _unit_fields() -> str:
    return ", ".join(n for n, s in SPECS.items() if s.unit in UNITS)


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; any problem is one line (``HistoryFileError``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HistoryFileError(
            f"{path.name}: a mapping file must be UTF-8 text ({exc.reason})"
        ) from None
    except OSError as exc:
        raise HistoryFileError(f"{path}: cannot read the mapping ({exc.strerror})") from None
    try:
        raw = yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HistoryFileError(f"{path.name}: not valid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise HistoryFileError(f"{path.name}: expected a mapping with columns/values/defaults")
    try:
        return Mapping.model_validate(raw)
    except ValidationError as exc:
        raise HistoryFileError(f"{path.name}: {describe_mapping_error(exc)}") from None


def describe_mapping_error(exc: ValidationError) -> str:
    """A pydantic error on a mapping as one line: ``option: reason; ...``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            reason = "unknown option (see docs/history.md or `shiprisk data template`)"
        parts.append(f"{where}: {reason}" if where else reason)
    return "; ".join(parts).replace("\n", " ")


# -- applying a mapping -----------------------------------------------------------------------


@dataclass
class MappedFrame:
    """A mapped export: the contract-named frame, the rows ``exclude`` left out, and the
    spellings no value map, pattern or country name covered (by field)."""

    frame: pd.DataFrame
    excluded: np.ndarray
    excluded_by: Counter = field(default_factory=Counter)
    unmapped: dict[str, Counter] = field(default_factory=dict)


def apply_mapping(df: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    """Rename, translate, convert and derive; unmapped columns are kept, no row is dropped
    (``exclude`` cells become blank: see :func:`map_frame` for the rows it names)."""
    return map_frame(df, mapping).frame


def map_frame(df: pd.DataFrame, mapping: Mapping) -> MappedFrame:
    """Apply every option of ``mapping`` to ``df`` (see the module docstring for the order)."""
    targets = mapping.targets()
    clash = sorted(set(targets) & (set(df.columns) - set(mapping.columns)))
    if clash:
        raise HistoryFileError(
            f"the file already has column(s) {', '.join(clash)} and the mapping maps "
            "another column onto them"
        )
    present = {t: c for t, c in targets.items() if c in df.columns}
    out = df.drop(columns=list(dict.fromkeys(present.values())))
    for target, column in present.items():
        out[target] = df[column]
    for name, column in extra_columns(df, mapping.extras).items():
        out[name] = column
    excluded = np.zeros(len(out), dtype=bool)
    result = MappedFrame(out, excluded)
    enums = [n for n in out.columns if n in SPECS and SPECS[n].kind == "enum"]
    for name in dict.fromkeys([*mapping.values, *mapping.patterns, *enums]):
        if name in out.columns:
            _translate(result, name, mapping.values.get(name, {}), mapping.patterns.get(name, {}))
    if mapping.country_names and COUNTRY_FIELD in out.columns:
        _countries(result, mapping.values.get(COUNTRY_FIELD, {}))
    for name in out.columns:
        spec = SPECS.get(name)
        if spec is not None and spec.kind in ("int", "float"):
            out[name] = _numbers(
                out[name], mapping.file, UNITS.get(spec.unit or "", {}), mapping.units.get(name)
            )
    for name, fmt in mapping.formats.items():
        if name in out.columns:
            out[name] = _times(out[name], fmt, date_only=SPECS[name].kind == "date")
    for name, rule in mapping.derived.items():
        if rule.source in out.columns:
            out[name] = _derive(out[rule.source], rule.add_days, SPECS[name].kind, mapping.timezone)
    for name, value in mapping.defaults.items():
        if name not in out.columns:
            out[name] = value
    for name in out.columns:  # numeric ids from a typed file are ids, i.e. text
        if (
            name in SPECS
            and SPECS[name].kind == "str"
            and pd.api.types.is_integer_dtype(out[name].dtype)
        ):
            out[name] = out[name].astype("str")
    return result


def _text(values: pd.Series) -> pd.Series:
    """Cells as stripped text, for matching spellings (NA and empty cells are NA)."""
    text = values if isinstance(values.dtype, pd.StringDtype) else values.astype("str")
    text = text.where(values.notna()).str.strip()
    return text.where(text != "")


def _translate(
    result: MappedFrame, name: str, table: dict[str, Any], patterns: dict[str, Any]
) -> None:
    """Exact spelling, then the same ignoring case (a contract value too: ``Amazon`` is
    ``amazon``), then the first matching pattern."""
    values = result.frame[name]
    if values.dtype.kind in "biufM":  # typed numbers, bools, times: no spellings to map
        return
    text = _text(values)
    uniques = pd.unique(text.dropna())
    own = SPECS[name].values if SPECS[name].kind == "enum" else None
    folded = {v.casefold(): v for v in own or ()}
    folded |= {str(k).casefold(): v for k, v in table.items()}
    compiled = [(re.compile(p, re.IGNORECASE), v) for p, v in patterns.items()]
    lookup: dict[str, Any] = {}
    for cell in uniques:
        if cell in table:
            lookup[cell] = table[cell]
        elif cell.casefold() in folded:
            lookup[cell] = folded[cell.casefold()]
        else:
            for regex, target in compiled:
                if regex.search(cell):
                    lookup[cell] = target
                    break
    hit = text.isin(list(lookup)).to_numpy(dtype=bool)
    if hit.any():
        mapped = text[hit].map(lookup)
        drop = (mapped == EXCLUDE).to_numpy(dtype=bool)
        if drop.any():
            rows = np.flatnonzero(hit)[drop]
            newly = rows[~result.excluded[rows]]
            result.excluded[rows] = True
            for cell, count in text.iloc[newly].value_counts().items():
                result.excluded_by[f"{name} = {cell}"] += int(count)
            mapped = mapped.where(~drop, None)
        out = values.astype(object).copy()
        out[hit] = mapped.to_numpy(dtype=object)
        if all(isinstance(v, str) or v is None for v in out.dropna()):
            out = out.astype("str")
        result.frame[name] = out
    spec = SPECS[name]
    if spec.kind in ("enum", "bool"):  # other kinds are checked by the validator
        rest = text[~hit & text.notna().to_numpy(dtype=bool) & ~result.excluded]
        known = set(spec.values or ()) if spec.kind == "enum" else set()
        left = rest[~rest.isin(known)] if spec.kind == "enum" else rest[~_bool_word(rest)]
        if len(left):
            result.unmapped[name] = Counter(left.value_counts().to_dict())


def _bool_word(text: pd.Series) -> pd.Series:
    from shiprisk.data.coercion import FALSE_WORDS, TRUE_WORDS

    return text.str.lower().isin((*TRUE_WORDS, *FALSE_WORDS))


def _countries(result: MappedFrame, table: dict[str, Any]) -> None:
    """Country names (any language, any common spelling) -> ISO alpha-2 codes."""
    from shiprisk.data.countries import to_alpha2

    values = result.frame[COUNTRY_FIELD]
    text = _text(values)
    todo = text.notna().to_numpy(dtype=bool) & ~text.isin(list(table)).to_numpy(dtype=bool)
    codes = to_alpha2(pd.unique(text[todo]))
    known = {k: v for k, v in codes.items() if v is not None}
    out = values.astype(object).copy()
    hit = todo & text.isin(list(known)).to_numpy(dtype=bool)
    out[hit] = text[hit].map(known).to_numpy(dtype=object)
    result.frame[COUNTRY_FIELD] = out.astype("str").where(out.notna())
    missing = text[todo & ~hit & ~result.excluded]
    if len(missing):
        result.unmapped[COUNTRY_FIELD] = Counter(missing.value_counts().to_dict())


def _numbers(
    values: pd.Series, options: FileOptions, factors: dict[str, float], unit: str | None
) -> pd.Series:
    """Decimal commas and grouping marks removed, then converted to the contract's unit.

    Cells that do not read as numbers stay as they are, for the validator to report."""
    comma = options.decimal == "," or options.thousands
    if not comma and unit is None:
        return values
    if values.dtype.kind in "iuf" and unit is None:
        return values
    text = _text(values)
    if options.thousands:
        text = text.str.replace(options.thousands, "", regex=False)
    if options.decimal == ",":
        text = text.str.replace(",", ".", regex=False)
    number = pd.to_numeric(text, errors="coerce")
    ok = number.notna().to_numpy(dtype=bool)
    if unit is not None:
        number = number * factors[unit]
    out = values.astype(object).copy()
    out[ok] = number[ok].to_numpy(dtype=object)
    return out


def _times(values: pd.Series, fmt: str, *, date_only: bool) -> pd.Series:
    """Text in the seller's date format -> naive timestamps; other cells stay for the
    validator (it reports them, naming the expected format)."""
    if values.dtype.kind == "M":
        return values
    text = _text(values)
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    if date_only:
        parsed = parsed.dt.normalize()
    ok = parsed.notna().to_numpy(dtype=bool)
    if ok.all():
        return parsed
    out = values.astype(object).copy()
    out[ok] = parsed[ok].to_numpy(dtype=object)
    return out


def _derive(source: pd.Series, days: int, kind: str, timezone: str) -> pd.Series:
    """``source`` + ``days`` (a date field keeps the local calendar day); cells that are not
    times give a blank (the source field's own error says why)."""
    if isinstance(source.dtype, pd.DatetimeTZDtype):
        stamps = source.dt.tz_convert(timezone).dt.tz_localize(None)
    elif source.dtype.kind == "M":
        stamps = source
    else:

        def one(value: Any) -> Any:
            try:
                stamp = pd.Timestamp(value.strip() if isinstance(value, str) else value)
            except (ValueError, TypeError):
                return pd.NaT
            if stamp is pd.NaT or stamp.tzinfo is None:
                return stamp
            return stamp.tz_convert(timezone).tz_localize(None)

        stamps = pd.to_datetime(source.map(one, na_action="ignore"), errors="coerce")
    out = stamps + pd.Timedelta(days=days)
    return out.dt.normalize() if kind == "date" else out


TEMPLATE = "mapping_template.yaml"


def template_text() -> str:
    """The commented example mapping ``shiprisk data template`` writes (every option)."""
    from importlib import resources

    return (resources.files("shiprisk.data") / "reference" / TEMPLATE).read_text("utf-8")
