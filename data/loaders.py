"""Real seller histories: read an export, map it onto the contract, validate, split.

The mapping file (:mod:`shiprisk.data.mapping`, documented in ``docs/history.md``) says how
to read the file (encoding, delimiter, number and date formats) and how its columns and
spellings become contract fields. :func:`load_history` validates every row
(:func:`shiprisk.data.validation.validate_frame`) and splits the rows into excluded (by the
mapping's ``exclude``), invalid, open (no outcome yet), immature (too young for the outcome
to be final) and training rows. A file that cannot be read at all raises
:class:`~shiprisk.data.mapping.HistoryFileError` with one line naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shiprisk.data.atomic import write_atomic
from shiprisk.data.coercion import DATE_WITH_TIME, NOT_DATE, NOT_DATETIME, blank_mask
from shiprisk.data.contract import OUTCOME_DATE_FIELD, OUTCOME_FIELD, SCHEMA_FIELDS, SPECS
from shiprisk.data.extras import ATTR as EXTRAS_ATTR
from shiprisk.data.mapping import (
    EXCLUDE,
    FileOptions,
    HistoryFileError,
    Mapping,
    apply_mapping,
    load_mapping,
    map_frame,
)
from shiprisk.data.validation import empty_errors, validate_frame

__all__ = ["EXCLUDE", "HistoryFileError", "Mapping", "apply_mapping", "load_mapping"]

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2")
PARQUET_SUFFIXES = (".parquet", ".pq")
HISTORY_FIELDS = SCHEMA_FIELDS["history"]
OUTCOME_FIELDS = (OUTCOME_FIELD.name, OUTCOME_DATE_FIELD.name)
"""Fields an open shipment (outcome not known yet) legitimately leaves blank."""
OTHER_DELIMITERS = (";", "\t", "|", ",")


def read_table(path: str | Path, options: FileOptions | None = None) -> pd.DataFrame:
    """A CSV (every column read as text: validation does the typing) or a Parquet file.

    Empty CSV cells stay empty strings and ``NA``/``null`` stay text (``NA`` is Namibia),
    so only the validator decides what is missing. ``options`` (the mapping's ``file``)
    give the CSV's encoding and delimiter.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        try:
            return pd.read_parquet(path)
        except (OSError, pa.ArrowException) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HistoryFileError(f"{path.name}: not a readable Parquet file ({first})") from None
    if name.endswith(CSV_SUFFIXES):
        return _read_csv_text(path, options or FileOptions())
    raise HistoryFileError(
        f"cannot read {path.name!r}: use a CSV ({', '.join(CSV_SUFFIXES)}) "
        f"or Parquet ({', '.join(PARQUET_SUFFIXES)}) file"
    )


def _check_encoding(path: Path, encoding: str) -> str:
    """The header line; or one line naming the first line that is not in ``encoding``
    (pyarrow would name a column number of a block, often a column nobody mapped)."""
    with pa.input_stream(str(path), compression="detect") as stream:
        raw = stream.read()
    if not raw.strip():
        raise HistoryFileError(f"{path.name}: the file is empty (no header, no rows)")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise HistoryFileError(
            f"{path.name}: line {line} is not valid {encoding} (byte 0x{byte}); the file is in "
            "another encoding: set `file: {encoding: latin-1}` (or cp1252, utf-16...) in the "
            "mapping"
        ) from None
    return text.lstrip("\ufeff").splitlines()[0]


def _read_csv_text(path: Path, options: FileOptions) -> pd.DataFrame:
    """Every column as text, empty cells as ``""``; pyarrow's reader (~3x pandas' speed)."""
    header = _check_encoding(path, options.encoding)
    if options.delimiter not in header:
        _check_delimiter(path, header, options.delimiter)
    read = pacsv.ReadOptions(encoding=options.encoding)
    parse = pacsv.ParseOptions(delimiter=options.delimiter)
    try:
        names = pacsv.open_csv(path, read_options=read, parse_options=parse).schema.names
        table = pacsv.read_csv(
            path,
            read_options=read,
            parse_options=parse,
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        first = str(exc).splitlines()[0]
        if "Empty CSV file" in first:
            raise HistoryFileError(f"{path.name}: the file is empty (no header, no rows)") from None
        raise HistoryFileError(
            f"{path.name}: not a CSV with delimiter {options.delimiter!r} ({first}); check "
            "`file: {delimiter: ...}` in the mapping and the file's quoting"
        ) from None
    frame = table.to_pandas()
    if frame.columns.has_duplicates:
        dupes = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise HistoryFileError(f"{path.name}: the header repeats column(s) {', '.join(dupes)}")
    return frame


def _check_delimiter(path: Path, header: str, delimiter: str) -> None:
    """A header without the delimiter but with another separator: the delimiter is wrong."""
    for other in OTHER_DELIMITERS:
        if other != delimiter and header.count(other) >= 1:
            shown = "\\t" if other == "\t" else other
            raise HistoryFileError(
                f"{path.name}: the header is one column holding '{shown}': the file looks "
                f"'{shown}'-separated, not {delimiter!r}: set `file: {{delimiter: \"{shown}\"}}` "
                "in the mapping"
            )


def tidy_text(df: pd.DataFrame) -> pd.DataFrame:
    """Strip surrounding blanks from text columns (exports pad cells; the contract does not)."""
    out = df.copy(deep=False)
    for name in out.columns:
        if isinstance(out[name].dtype, pd.StringDtype):
            out[name] = out[name].str.strip()
    return out


def data_key(columns: list[str] | pd.Index, mapping: Mapping | None) -> str:
    """The identity of a data source and its mapping: the export's columns and every
    mapping option. Same key, same meaning of a row; the frozen evaluation set is keyed by
    it, so a changed mapping or another kind of export gets a set of its own."""
    payload = {
        "columns": sorted(str(c) for c in columns),
        "mapping": None if mapping is None else mapping.model_dump(mode="json", by_alias=True),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- loading a history ------------------------------------------------------------------------


@dataclass
class HistoryLoad:
    """A validated history split into rows to train on and rows left out (with counts).

    Every input row is exactly one of: training (``train``), excluded (the mapping maps one
    of its values to ``exclude``), invalid (at least one record in ``errors``), open (valid
    but no outcome yet) or immature (valid, but created within ``maturity_days`` of
    ``as_of`` or its outcome dated after ``as_of``). ``train`` keeps the contract columns
    (normalised dtypes) plus any non-contract columns of the input; its index is the input
    position (``row - 1``). ``errors`` has ``row`` (1-based data row; the CSV line is
    ``row + 1``), ``field``, ``reason`` and the offending ``value`` as text.
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
    n_excluded: int = 0
    excluded_by: Counter = field(default_factory=Counter)
    unmapped: dict[str, Counter] = field(default_factory=dict)
    """Field -> spellings no value map, pattern or country name covered (with row counts)."""
    columns: tuple[str, ...] = ()
    """The contract fields the input provides (mapped, derived or defaulted)."""
    key: str = ""
    """:func:`data_key` of the source and mapping."""

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
    taken as given (and not modified). A file that cannot be read, a header without rows or
    a broken mapping raise :class:`HistoryFileError` (one line).
    """
    from shiprisk.settings import get_settings

    if maturity_days is None:
        maturity_days = get_settings().maturity_days
    if maturity_days < 0:
        raise ValueError("maturity_days must be >= 0")
    as_of = as_of or datetime.now(UTC)
    as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    if isinstance(path, pd.DataFrame):  # typed frame from code (e.g. the simulator)
        df, source = path.reset_index(drop=True), "DataFrame"
    else:  # a file export: cells may be padded
        df = tidy_text(read_table(path, mapping.file if mapping else None))
        source = str(path)
        if df.empty:
            raise HistoryFileError(
                f"{Path(path).name}: a header ({len(df.columns)} columns) and no data rows"
            )
    key = data_key(df.columns, mapping)
    warnings: list[str] = []
    timezone = "UTC"
    excluded = np.zeros(len(df), dtype=bool)
    mapped = None
    if mapping is not None:
        lacking = [c for c in mapping.columns if c not in df.columns]
        if lacking:
            warnings.append(f"mapping names column(s) the file lacks: {', '.join(lacking)}")
        mapped = map_frame(df, mapping)
        df, excluded = mapped.frame, mapped.excluded
        timezone = mapping.timezone

    absent = [name for name in HISTORY_FIELDS if name not in df.columns and SPECS[name].core]
    if absent:
        hint = (
            " (no contract column at all: the export needs a mapping file, see "
            "`shiprisk data template` and docs/history.md)"
        )
        warnings.append(
            f"missing column(s): {', '.join(absent)}"
            + (hint if len(absent) == len(HISTORY_FIELDS) else "")
        )
    n = len(df)
    kept = np.flatnonzero(~excluded)
    sub = df.iloc[kept]
    now = max(as_of, datetime.now(UTC))
    result = validate_frame(sub, "history", now=now, timezone=timezone, row_numbers=kept + 1)
    outcome = OUTCOME_FIELD.name
    is_open = np.zeros(n, dtype=bool)
    if outcome in df.columns:
        is_open[kept] = blank_mask(sub[outcome])
    errors = result.errors
    if is_open.any() and len(errors):
        row_open = is_open[errors["row"].to_numpy() - 1]
        errors = errors[~(row_open & errors["field"].isin(OUTCOME_FIELDS).to_numpy())]
    invalid = np.zeros(n, dtype=bool)
    invalid[errors["row"].to_numpy() - 1] = True

    valid = result.valid  # outcome present: open rows always fail validation as history
    if mapping is not None and mapping.extras:
        errors, valid = _extras(df, mapping, kept, errors, valid, invalid)
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
    if mapping is not None and mapping.extras:  # what the pipeline makes features of
        train.attrs[EXTRAS_ATTR] = {n: e.describe() for n, e in mapping.extras.items()}
    errors = _with_hints(errors.reset_index(drop=True), mapping)
    return HistoryLoad(
        train=train,
        errors=_with_values(errors, df),
        n_rows=n,
        n_invalid=int(invalid.sum()),
        n_immature=int(immature.sum()),
        n_open=int((is_open & ~invalid).sum()),
        as_of=as_of,
        maturity_days=maturity_days,
        source=source,
        warnings=warnings,
        n_excluded=int(excluded.sum()),
        excluded_by=mapped.excluded_by if mapped else Counter(),
        unmapped=mapped.unmapped if mapped else {},
        columns=tuple(c for c in HISTORY_FIELDS if c in df.columns),
        key=key,
    )


def _extras(
    df: pd.DataFrame,
    mapping: Mapping,
    kept: np.ndarray,
    errors: pd.DataFrame,
    valid: pd.DataFrame,
    invalid: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Declared extra columns typed in place (``extra.<name>``); a value that is not a number,
    or not a declared category, is an error on its row (blank: unknown)."""
    from shiprisk.data.extras import PREFIX, coerce

    records = [errors]
    for name, spec in mapping.extras.items():
        column = PREFIX + name
        if column not in df.columns:
            continue
        typed, bad, reason = coerce(df[column], spec.describe())
        df[column] = typed
        bad &= np.isin(np.arange(len(df)), kept)  # rows the mapping excluded are not checked
        rows = np.flatnonzero(bad)
        invalid[rows] = True
        records.append(
            pd.DataFrame({"row": rows + 1, "field": column, "reason": reason}).astype(
                {"row": np.int64, "field": "str", "reason": "str"}
            )
        )
    errors = pd.concat(records, ignore_index=True).sort_values("row", kind="stable")
    return errors.reset_index(drop=True), valid[~invalid[valid.index]]


def _with_hints(errors: pd.DataFrame, mapping: Mapping | None) -> pd.DataFrame:
    """Unreadable dates name the format that was expected and where to change it."""
    if errors.empty:
        return errors
    reasons = errors["reason"].astype(object).to_numpy(copy=True)
    fields = errors["field"].astype(object).to_numpy()
    formats = mapping.formats if mapping else {}
    for i in np.flatnonzero(np.isin(reasons, (NOT_DATETIME, NOT_DATE, DATE_WITH_TIME))):
        name = fields[i]
        if name in formats:
            reasons[i] = f"{reasons[i]} in the format {formats[name]} (formats.{name})"
        else:
            reasons[i] = (
                f"{reasons[i]} (ISO 8601 such as {SPECS[name].example}; "
                f"set formats.{name} in the mapping for another format)"
            )
    out = errors.copy()
    out["reason"] = pd.array(reasons, dtype="str")
    return out


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
