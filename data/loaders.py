"""Real seller histories: read an export, map its columns onto the contract, validate, split.

A seller's export rarely uses contract names or spellings, so a small YAML mapping file
translates it::

    columns:            # their column -> contract field
      Order No: order_id
      Payment: payment_method
    values:             # contract field -> {their spelling: contract value}
      payment_method: {Prepaid: prepaid, COD: cod}
      outcome: {Delivered: delivered, Returned: rejected, In transit: null}
    defaults:           # contract field -> value, for columns the export lacks
      duties_terms: DDU
    timezone: Asia/Shanghai   # zone of naive timestamps (default UTC)

The mapping is read with YAML 1.2 booleans (only ``true``/``false``), so spellings such as
``Yes``, ``No``, ``on`` or ``NA`` stay text. :func:`load_history` then validates every row
(:func:`shiprisk.data.validation.validate_frame`), and splits the rows into invalid, open
(no outcome yet), immature (too young for the outcome to be final) and training rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shiprisk.data.atomic import write_atomic
from shiprisk.data.coercion import blank_mask
from shiprisk.data.contract import OUTCOME_DATE_FIELD, OUTCOME_FIELD, SCHEMA_FIELDS, SPECS
from shiprisk.data.validation import empty_errors, validate_frame

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2")
PARQUET_SUFFIXES = (".parquet", ".pq")
HISTORY_FIELDS = SCHEMA_FIELDS["history"]
OUTCOME_FIELDS = (OUTCOME_FIELD.name, OUTCOME_DATE_FIELD.name)
"""Fields an open shipment (outcome not known yet) legitimately leaves blank."""


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (every column read as text: validation does the typing) or a Parquet file.

    Empty CSV cells stay empty strings and ``NA``/``null`` stay text (``NA`` is Namibia),
    so only the validator decides what is missing.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return pd.read_parquet(path)
    if name.endswith(CSV_SUFFIXES):
        return _read_csv_text(path)
    raise ValueError(
        f"cannot read {path.name!r}: use a CSV ({', '.join(CSV_SUFFIXES)}) "
        f"or Parquet ({', '.join(PARQUET_SUFFIXES)}) file"
    )


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Every column as text, empty cells as ``""``; pyarrow's reader (~3x pandas' speed)."""
    names = pacsv.open_csv(path).schema.names  # reads only the first block
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    return table.to_pandas()


# -- the mapping file -------------------------------------------------------------------------


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
    if value is None:
        return
    if spec.kind == "enum" and value not in (spec.values or ()):
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(spec.values or ())}")
    if spec.kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} must be true or false")


class Mapping(BaseModel):
    """How one seller's export maps onto the contract (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(default_factory=dict, description="their column -> field")
    values: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="field -> {their spelling: contract value}"
    )
    defaults: dict[str, Any] = Field(
        default_factory=dict, description="field -> value for a column the export lacks"
    )
    timezone: str = Field(default="UTC", description="zone of naive timestamps")

    @field_validator("columns", mode="before")
    @classmethod
    def _column_keys(cls, value: Any) -> Any:
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("values", mode="before")
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

    @model_validator(mode="after")
    def _targets_are_contract_fields(self) -> Mapping:
        for where, names in (
            ("columns", self.columns.values()),
            ("values", self.values),
            ("defaults", self.defaults),
        ):
            unknown = sorted(set(names) - set(SPECS))
            if unknown:
                raise ValueError(
                    f"{where}: {', '.join(unknown)} not contract fields (known: {', '.join(SPECS)})"
                )
        targets = list(self.columns.values())
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"columns: several columns map onto {', '.join(twice)}")
        for name, table in self.values.items():
            for target in table.values():
                _check_target(name, target)
        for name, value in self.defaults.items():
            _check_target(name, value)
        return self


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file (a ``ValueError`` names what is wrong)."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise ValueError(f"{path.name}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: expected a mapping with columns/values/defaults")
    return Mapping.model_validate(raw)


def tidy_text(df: pd.DataFrame) -> pd.DataFrame:
    """Strip surrounding blanks from text columns (exports pad cells; the contract does not)."""
    out = df.copy(deep=False)
    for name in out.columns:
        if isinstance(out[name].dtype, pd.StringDtype):
            out[name] = out[name].str.strip()
    return out


def apply_mapping(df: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    """Rename columns, translate spellings and add defaults; unmapped columns are kept."""
    clash = sorted(set(mapping.columns.values()) & (set(df.columns) - set(mapping.columns)))
    if clash:
        raise ValueError(
            f"the file already has column(s) {', '.join(clash)} and the mapping maps "
            "another column onto them"
        )
    out = df.rename(columns=mapping.columns)
    for name, table in mapping.values.items():
        if name in out.columns and table:
            out[name] = _translate(out[name], table)
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
    return out


def _translate(values: pd.Series, table: dict[str, Any]) -> pd.Series:
    """Replace cells whose text is one of the seller's spellings by the contract value."""
    text = values if isinstance(values.dtype, pd.StringDtype) else values.astype("str")
    hit = text.isin(list(table)).to_numpy(dtype=bool)
    if not hit.any():
        return values
    mapped = text[hit].map(table)
    if all(isinstance(v, str) or v is None for v in table.values()):
        out = values.astype("str") if not isinstance(values.dtype, pd.StringDtype) else values
        out = out.copy()
        out[hit] = mapped.astype("str")
        return out
    out = values.astype(object)
    out[hit] = mapped.to_numpy(dtype=object)
    return out


# -- loading a history ------------------------------------------------------------------------


@dataclass
class HistoryLoad:
    """A validated history split into rows to train on and rows left out (with counts).

    Every input row is exactly one of: training (``train``), invalid (at least one record
    in ``errors``), open (valid but no outcome yet) or immature (valid, but created within
    ``maturity_days`` of ``as_of`` or its outcome dated after ``as_of``).
    ``train`` keeps the contract columns (normalised dtypes) plus any non-contract columns
    of the input; its index is the input position (``row - 1``). ``errors`` has ``row``
    (1-based data row; the CSV line is ``row + 1``), ``field``, ``reason`` and the offending
    ``value`` as text.
    """

    train: pd.DataFrame
    errors: pd.DataFrame
    n_rows: int
    n_invalid: int
    n_immature: int
    n_open: int
    as_of: datetime
    maturity_days: int = 0
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def n_train(self) -> int:
        return len(self.train)


def load_history(
    path: str | Path | pd.DataFrame,
    mapping: Mapping | str | Path | None = None,
    maturity_days: int | None = None,
    as_of: datetime | None = None,
) -> HistoryLoad:
    """Read (or take) a history, map it, validate every row and keep the mature valid ones.

    Text cells of a file have surrounding blanks stripped before mapping; a DataFrame is
    taken as given (and not modified).
    """
    from shiprisk.settings import get_settings

    if maturity_days is None:
        maturity_days = get_settings().maturity_days
    if maturity_days < 0:
        raise ValueError("maturity_days must be >= 0")
    as_of = as_of or datetime.now(UTC)
    as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
    if isinstance(path, pd.DataFrame):  # typed frame from code (e.g. the simulator)
        df, source = path.reset_index(drop=True), "DataFrame"
    else:  # a file export: cells may be padded
        df, source = tidy_text(read_table(path)), str(path)
    warnings: list[str] = []
    timezone = "UTC"
    if mapping is not None:
        if not isinstance(mapping, Mapping):
            mapping = load_mapping(mapping)
        lacking = [c for c in mapping.columns if c not in df.columns]
        if lacking:
            warnings.append(f"mapping names column(s) the file lacks: {', '.join(lacking)}")
        df = apply_mapping(df, mapping)
        timezone = mapping.timezone

    absent = [name for name in HISTORY_FIELDS if name not in df.columns]
    if absent:
        hint = " (no contract column at all: does the export need a mapping file?)"
        warnings.append(
            f"missing column(s): {', '.join(absent)}"
            + (hint if len(absent) == len(HISTORY_FIELDS) else "")
        )
    n = len(df)
    result = validate_frame(df, "history", now=max(as_of, datetime.now(UTC)), timezone=timezone)
    outcome = OUTCOME_FIELD.name
    is_open = blank_mask(df[outcome]) if outcome in df.columns else np.zeros(n, dtype=bool)
    errors = result.errors
    if is_open.any() and len(errors):
        row_open = is_open[errors["row"].to_numpy() - 1]
        errors = errors[~(row_open & errors["field"].isin(OUTCOME_FIELDS).to_numpy())]
    invalid = np.zeros(n, dtype=bool)
    invalid[errors["row"].to_numpy() - 1] = True

    valid = result.valid  # outcome present: open rows always fail validation as history
    created = valid["created_at"]
    cutoff = as_of - timedelta(days=maturity_days)
    outcome_day = valid[OUTCOME_DATE_FIELD.name]
    immature = (created > cutoff).to_numpy() | (
        outcome_day > pd.Timestamp(as_of.replace(tzinfo=None))
    ).to_numpy()
    train = valid[~immature]
    extras = [c for c in df.columns if c not in HISTORY_FIELDS]
    if extras:
        train = pd.concat([train, df.loc[train.index, extras]], axis=1)
    return HistoryLoad(
        train=train,
        errors=_with_values(errors.reset_index(drop=True), df),
        n_rows=n,
        n_invalid=int(invalid.sum()),
        n_immature=int(immature.sum()),
        n_open=int((is_open & ~invalid).sum()),
        as_of=as_of,
        maturity_days=maturity_days,
        source=source,
        warnings=warnings,
    )


def _with_values(errors: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Add the offending cell (as text) to each error record, one vectorised take per field."""
    values = np.full(len(errors), "", dtype=object)
    if len(errors):
        positions = errors["row"].to_numpy() - 1
        fields = errors["field"].to_numpy(dtype=object)
        for name in pd.unique(fields):
            if name not in df.columns:
                continue
            at = np.flatnonzero(fields == name)
            cells = df[name].iloc[positions[at]]
            text = cells.astype(object).astype("str")
            values[at] = text.where(cells.notna().to_numpy(), "").to_numpy(dtype=object)
    out = errors.copy() if len(errors) else empty_errors()
    out["value"] = pd.array(values, dtype="str")
    return out


# -- reporting --------------------------------------------------------------------------------

TOP_REASONS = 20
EXAMPLE_ROWS = 5


def print_report(result: HistoryLoad, console: Console, report_path: Path | None = None) -> None:
    """Summarise a load (counts, the commonest problems) and optionally write every error."""
    counts = Table(title=f"History check: {escape(result.source)}", show_header=False)
    counts.add_column("what")
    counts.add_column("rows", justify="right")
    cutoff = (result.as_of - timedelta(days=result.maturity_days)).date().isoformat()
    counts.add_row("rows read", f"{result.n_rows:,}")
    counts.add_row("[green]usable for training[/]", f"{result.n_train:,}")
    counts.add_row("[red]invalid[/] (see problems)", f"{result.n_invalid:,}")
    counts.add_row("open (no outcome yet)", f"{result.n_open:,}")
    counts.add_row(
        f"immature (created after {cutoff}, {result.maturity_days} d window)",
        f"{result.n_immature:,}",
    )
    counts.add_row("problems found", f"{len(result.errors):,}")
    console.print(counts)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")

    if len(result.errors):
        grouped = (
            result.errors.groupby(["field", "reason"], sort=False)["row"]
            .agg(["size", lambda rows: rows.head(EXAMPLE_ROWS).tolist()])
            .set_axis(["rows", "examples"], axis=1)
            .sort_values("rows", ascending=False, kind="stable")
        )
        problems = Table(title="Problems by field (top reasons)")
        for name, justify in (("field", "left"), ("reason", "left"), ("rows", "right")):
            problems.add_column(name, justify=justify)  # type: ignore[arg-type]
        problems.add_column("example rows")
        for (field_name, reason), rec in grouped.head(TOP_REASONS).iterrows():
            examples = ", ".join(str(r) for r in rec["examples"])
            problems.add_row(escape(field_name), escape(reason), f"{rec['rows']:,}", examples)
        console.print(problems)
        if len(grouped) > TOP_REASONS:
            console.print(f"... and {len(grouped) - TOP_REASONS} more kinds of problem")
    if report_path is not None:
        write_errors(result.errors, Path(report_path))
        console.print(f"wrote {len(result.errors):,} problem(s) to {escape(str(report_path))}")
    if result.n_invalid:
        console.print(f"[red]{result.n_invalid:,} invalid row(s)[/]")
    else:
        console.print("[green]no invalid rows[/]")


def write_errors(errors: pd.DataFrame, path: Path) -> Path:
    """Write the error table to CSV atomically (temp file in the same dir, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda tmp: errors.to_csv(tmp, index=False))
