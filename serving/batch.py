"""Nightly batch scoring of open shipments: risk, insurance and a better channel, per row.

Operations score every open shipment once a night. :func:`score_open` streams a table of
open shipments (contract schema ``open``: ``shipment_id``, the shipment fields and the chosen
``channel_id``) from a Parquet or CSV file or a SQL table, in chunks, across worker
processes, and writes one output row per input row, in input order. The risk model and the
decision policy are the ones online scoring uses (:mod:`shiprisk.decisions.policy`): per chunk
every eligible (shipment, channel) pair, plus the chosen pair, is featurised in one vectorised
pass over a repeated frame, scored, and handed to :func:`~shiprisk.decisions.policy.decide`.

Output columns (stable order and types; nulls where a value does not apply)::

    row                            int64   input row number, 1-based (CSV: data rows, the
                                           header not counted; SQL: the query's row order)
    shipment_id                    string  as given (text of the cell; null if missing)
    status                         string  'scored' or 'error'
    error_field                    string  error rows: the first contract field at fault
    error_reason                   string  error rows: what is wrong with it
    error_count                    int64   problems found in the row (0 when scored)
    channel_id                     string  the chosen channel, as given
    chosen_eligible                bool    the chosen channel accepts this shipment (catalog)
    p_loss                         double  P(lost) on the chosen channel
    p_reject                       double  P(rejected, returned) on the chosen channel
    price_usd                      double  list price on the chosen channel (null: no price)
    premium_usd                    double  insurance premium there (null: not insurable)
    insure                         bool    buying that insurance lowers the expected cost
    expected_cost_usd              double  policy expected cost on the chosen channel, with
                                           the insure decision above
    recommended_channel_id         string  the policy's channel among all eligible channels
                                           (null: none, see no_recommendation_reason)
    recommended_p_loss             double  its P(lost)
    recommended_p_reject           double  its P(rejected)
    recommended_price_usd          double  its list price
    recommended_insure             bool    insure on the recommended channel
    recommended_expected_cost_usd  double  its expected cost
    saving_usd                     double  expected_cost_usd - recommended_expected_cost_usd;
                                           0 when the chosen channel is the recommended one,
                                           negative only if the chosen channel is not
                                           eligible or breaks the seller's constraints
    no_recommendation_reason       string  why there is no recommendation (null otherwise)

Error rows: every problem :func:`~shiprisk.data.validation.validate_frame` finds (schema
``open``), a ``shipment_id`` already seen earlier in the input (in any chunk: the first
occurrence is scored, later ones are errors) and a chosen channel missing from the catalog.
``error_field``/``error_reason`` name the first problem in contract field order.

Output is all-or-nothing. Files are written to ``.<name>.partial-<pid>`` next to the
destination, fsynced and renamed over it (a previous output stays until then; a partial file
left by a killed run is removed by the next run). A rerun on the same input with the same
model, costs and ``chunk_rows`` writes byte-identical files: no timestamps, one Parquet row
group per chunk, results re-assembled in input order whatever the number of workers. SQL
output goes to ``<table>__staging`` first, then one transaction drops the old table and
renames the staging table (this needs transactional DDL: SQLite, PostgreSQL).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shiprisk.data.atomic import AtomicFile
from shiprisk.data.catalogs import Catalog, load_catalog
from shiprisk.data.contract import (
    CHANNEL_FIELD,
    OPEN_FIELDS,
    SHIPMENT_ID_FIELD,
)
from shiprisk.data.loaders import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    Mapping,
    apply_mapping,
    load_mapping,
    tidy_text,
)
from shiprisk.data.validation import DUPLICATE_ID, validate_frame
from shiprisk.decisions.candidates import (
    UNKNOWN_CHANNEL_REASON,
    build_candidates,
    candidate_carriers,
    frame_arrays,
)
from shiprisk.decisions.costs import Constraints, SellerCosts
from shiprisk.decisions.policy import decide
from shiprisk.settings import get_settings

if TYPE_CHECKING:  # LightGBM is imported only where a model is loaded (see _init_worker)
    import sqlalchemy as sa
    from rich.console import Console

    from shiprisk.models.risk_model import RiskModel

OUTPUT_SCHEMA = pa.schema(
    [
        ("row", pa.int64()),
        ("shipment_id", pa.string()),
        ("status", pa.string()),
        ("error_field", pa.string()),
        ("error_reason", pa.string()),
        ("error_count", pa.int64()),
        ("channel_id", pa.string()),
        ("chosen_eligible", pa.bool_()),
        ("p_loss", pa.float64()),
        ("p_reject", pa.float64()),
        ("price_usd", pa.float64()),
        ("premium_usd", pa.float64()),
        ("insure", pa.bool_()),
        ("expected_cost_usd", pa.float64()),
        ("recommended_channel_id", pa.string()),
        ("recommended_p_loss", pa.float64()),
        ("recommended_p_reject", pa.float64()),
        ("recommended_price_usd", pa.float64()),
        ("recommended_insure", pa.bool_()),
        ("recommended_expected_cost_usd", pa.float64()),
        ("saving_usd", pa.float64()),
        ("no_recommendation_reason", pa.string()),
    ]
)
OUTPUT_COLUMNS: tuple[str, ...] = tuple(OUTPUT_SCHEMA.names)
SCORED, ERROR = "scored", "error"
CHANNEL = CHANNEL_FIELD.name
SHIPMENT_ID = SHIPMENT_ID_FIELD.name
STAGING_SUFFIX = "__staging"
IN_FLIGHT_PER_WORKER = 2
"""Chunks queued per worker: keeps both cores busy while bounding memory."""
SQL_INSERT_ROWS = 10_000


class BatchError(RuntimeError):
    """A batch run cannot go on (locked database, input equals output...); nothing written."""


@dataclass(frozen=True)
class SqlTable:
    """A table in a SQL database. ``url`` is a SQLAlchemy URL or a SQLite file path.

    ``order_by`` fixes the input row order (give one on server databases; SQLite reads in
    rowid order without it). ``lock_timeout_s`` is how long a locked database is retried.
    """

    url: str
    table: str
    order_by: str | None = None
    lock_timeout_s: float = 10.0

    @property
    def sqlalchemy_url(self) -> str:
        return self.url if "://" in self.url else f"sqlite:///{Path(self.url).resolve()}"


Endpoint = str | Path | SqlTable


@dataclass(frozen=True)
class BatchSummary:
    """What a run did; ``pairs`` counts the (shipment, channel) rows the model scored."""

    rows: int
    scored: int
    errors: int
    pairs: int
    chunks: int
    seconds: float
    destination: str
    model_digest: str
    errors_by_field: dict[str, int] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else float("inf")


# -- scoring one chunk (runs in a worker process) ---------------------------------------------


@dataclass
class Chunk:
    """Input rows ``first_row .. first_row + len(frame) - 1`` and their repeated-id mask."""

    index: int
    first_row: int
    frame: pd.DataFrame
    duplicate: np.ndarray


@dataclass
class ChunkResult:
    """A chunk's output rows plus the counts the summary needs."""

    index: int
    first_row: int
    batch: pa.RecordBatch
    scored: int
    errors: int
    pairs: int
    error_fields: dict[str, int]


class ChunkScorer:
    """Validate, featurise, score and decide one chunk; the same object serves every chunk."""

    def __init__(
        self,
        model: RiskModel,
        costs: SellerCosts,
        constraints: Constraints | None,
        *,
        timezone: str,
        now: datetime,
        num_threads: int = 0,
        catalog: Catalog | None = None,
    ) -> None:
        self.model = model
        self.costs = costs
        self.constraints = constraints
        self.timezone = timezone
        self.now = now
        self.num_threads = num_threads
        self.catalog = catalog or load_catalog()
        self.channel_ids = np.asarray(self.catalog.channel_ids, dtype=object)
        self.channel_index = pd.Index(self.channel_ids)
        n_channels = len(self.channel_ids)
        self.carriers = candidate_carriers(self.catalog, np.arange(n_channels)[None, :])

    def __call__(self, chunk: Chunk) -> ChunkResult:
        df = chunk.frame
        n = len(df)
        rows = np.arange(chunk.first_row, chunk.first_row + n, dtype=np.int64)
        checked = validate_frame(
            df, "open", unique_ids=False, now=self.now, row_numbers=rows, timezone=self.timezone
        )
        out = _empty_output(n)
        out["row"] = rows
        out["shipment_id"] = _cell_text(df, SHIPMENT_ID, n)
        out[CHANNEL] = _cell_text(df, CHANNEL, n)

        # Which valid, non-repeated rows name a channel the catalog knows.
        ok = checked.valid_mask & ~chunk.duplicate
        valid = checked.valid
        keep = ~chunk.duplicate[checked.valid_mask]
        frame = valid[keep]
        chosen = self.channel_index.get_indexer(frame[CHANNEL]).astype(np.int64)  # -1: unknown
        known = chosen >= 0
        positions = np.flatnonzero(ok)
        unknown_at = positions[~known]
        frame, chosen, positions = frame[known], chosen[known], positions[known]

        first_field, first_reason, count = _first_errors(
            checked.errors, chunk.duplicate, chunk.first_row, n
        )
        first_field[unknown_at] = CHANNEL
        first_reason[unknown_at] = UNKNOWN_CHANNEL_REASON
        count[unknown_at] = 1
        is_error = count > 0
        out["status"] = np.where(is_error, ERROR, SCORED).astype(object)
        out["error_field"] = first_field
        out["error_reason"] = first_reason
        out["error_count"] = count

        pairs = self._score(frame, chosen, positions, out) if len(frame) else 0
        fields = Counter(first_field[is_error].tolist())
        return ChunkResult(
            index=chunk.index,
            first_row=chunk.first_row,
            batch=_to_batch(out),
            scored=int(n - is_error.sum()),
            errors=int(is_error.sum()),
            pairs=pairs,
            error_fields=dict(fields),
        )

    def _score(
        self, frame: pd.DataFrame, chosen: np.ndarray, at: np.ndarray, out: dict[str, Any]
    ) -> int:
        """Fill the score columns of rows ``at``; returns the number of pairs scored."""
        catalog, costs = self.catalog, self.costs
        m, n_channels = len(frame), len(self.channel_ids)
        cands = build_candidates(catalog, **frame_arrays(catalog, frame), costs=costs)
        r = np.arange(m)
        wanted = cands.eligible.copy()
        wanted[r, chosen] = True  # the chosen channel is scored even when ineligible
        pair_rows, pair_cols = np.nonzero(wanted)
        X = self.model.featurizer.transform_pairs(frame, pair_rows, self.channel_ids[pair_cols])
        pl, pj = self.model.predict_matrix(X, num_threads=self.num_threads)
        p_loss = np.full((m, n_channels), np.nan)
        p_reject = np.full((m, n_channels), np.nan)
        p_loss[pair_rows, pair_cols] = pl
        p_reject[pair_rows, pair_cols] = pj
        carriers = self.carriers if self.constraints is not None else None
        d = decide(cands, p_loss, p_reject, costs, self.constraints, carriers)

        rec = d.recommended
        has_rec = rec >= 0
        rc = np.where(has_rec, rec, 0)

        def at_rec(a: np.ndarray) -> np.ndarray:
            return np.where(has_rec, a[r, rc], np.nan)

        expected = d.expected_cost[r, chosen]
        rec_expected = at_rec(d.expected_cost)
        values: dict[str, Any] = {
            "chosen_eligible": cands.eligible[r, chosen],
            "p_loss": p_loss[r, chosen],
            "p_reject": p_reject[r, chosen],
            "price_usd": cands.price_usd[r, chosen],
            "premium_usd": cands.premium_usd[r, chosen],
            "insure": d.insure[r, chosen],
            "expected_cost_usd": expected,
            "recommended_channel_id": np.where(has_rec, self.channel_ids[rc], None),
            "recommended_p_loss": at_rec(p_loss),
            "recommended_p_reject": at_rec(p_reject),
            "recommended_price_usd": at_rec(cands.price_usd),
            "recommended_insure": d.insure[r, rc],
            "recommended_expected_cost_usd": rec_expected,
            "saving_usd": expected - rec_expected,
            "no_recommendation_reason": np.where(has_rec, None, d.reasons),
        }
        for name, value in values.items():
            out[name][at] = value
        out["_scored"][at] = True
        out["_has_rec"][at] = has_rec
        return len(pair_rows)


def _empty_output(n: int) -> dict[str, Any]:
    """Output columns for n rows, all null; bool columns get a values array + a mask."""
    out: dict[str, Any] = {"_scored": np.zeros(n, dtype=bool), "_has_rec": np.zeros(n, bool)}
    for f in OUTPUT_SCHEMA:
        if pa.types.is_floating(f.type):
            out[f.name] = np.full(n, np.nan)
        elif pa.types.is_boolean(f.type):
            out[f.name] = np.zeros(n, dtype=bool)
        elif pa.types.is_integer(f.type):
            out[f.name] = np.zeros(n, dtype=np.int64)
        else:
            out[f.name] = np.full(n, None, dtype=object)
    return out


def _to_batch(out: dict[str, Any]) -> pa.RecordBatch:
    """The output dict as a record batch of :data:`OUTPUT_SCHEMA` (NaN becomes null)."""
    arrays = []
    for f in OUTPUT_SCHEMA:
        value = out[f.name]
        if pa.types.is_boolean(f.type):
            valid = out["_has_rec"] if f.name == "recommended_insure" else out["_scored"]
            arrays.append(pa.array(value, type=f.type, mask=~valid))
        elif pa.types.is_floating(f.type):
            arrays.append(pa.array(value, type=f.type, from_pandas=True))
        else:
            arrays.append(pa.array(value, type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=OUTPUT_SCHEMA)


def _cell_text(df: pd.DataFrame, name: str, n: int) -> np.ndarray:
    """A column's cells as text (object array, None where missing) for echoing back."""
    if name not in df.columns:
        return np.full(n, None, dtype=object)
    col = df[name]
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(col.cat.categories.dtype)
    return col.astype("str").to_numpy(dtype=object, na_value=None)


def _first_errors(
    errors: pd.DataFrame, duplicate: np.ndarray, first_row: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: first (field, reason) in contract field order, and the number of problems.

    Validation errors arrive sorted by row, field order, check order; a repeated id is a
    ``shipment_id`` problem ranked after the id's own format problems.
    """
    rank = {name: i for i, name in enumerate(OPEN_FIELDS)}
    pos = errors["row"].to_numpy(dtype=np.int64) - first_row
    fields = errors["field"].to_numpy(dtype=object)
    reasons = errors["reason"].to_numpy(dtype=object)
    field_rank = np.fromiter((rank.get(f, len(rank)) for f in fields), np.int64, len(fields))
    seq = np.arange(len(pos))
    dup = np.flatnonzero(duplicate)
    if dup.size:
        pos = np.concatenate([pos, dup])
        fields = np.concatenate([fields, np.full(dup.size, SHIPMENT_ID, dtype=object)])
        reasons = np.concatenate([reasons, np.full(dup.size, DUPLICATE_ID, dtype=object)])
        field_rank = np.concatenate([field_rank, np.zeros(dup.size, dtype=np.int64)])
        seq = np.concatenate([seq, len(seq) + np.arange(dup.size)])
    first_field = np.full(n, None, dtype=object)
    first_reason = np.full(n, None, dtype=object)
    count = np.zeros(n, dtype=np.int64)
    if len(pos):
        order = np.lexsort((seq, field_rank, pos))
        pos, fields, reasons = pos[order], fields[order], reasons[order]
        rows, first, counts = np.unique(pos, return_index=True, return_counts=True)
        first_field[rows] = fields[first]
        first_reason[rows] = reasons[first]
        count[rows] = counts
    return first_field, first_reason, count


# -- worker processes -------------------------------------------------------------------------

_WORKER: ChunkScorer | None = None


def _init_worker(
    model_dir: str, costs_json: str, constraints_json: str | None, timezone: str, now: str
) -> None:
    """Load the model once per worker; one OpenMP thread each (the workers fill the cores)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    from shiprisk.models.risk_model import RiskModel

    global _WORKER
    _WORKER = ChunkScorer(
        RiskModel.load(Path(model_dir), compile_trees=get_settings().compiled_trees),
        SellerCosts.model_validate_json(costs_json),
        Constraints.model_validate_json(constraints_json) if constraints_json else None,
        timezone=timezone,
        now=datetime.fromisoformat(now),
        num_threads=1,
    )


def _score_in_worker(chunk: Chunk) -> ChunkResult:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER(chunk)


T = TypeVar("T")
R = TypeVar("R")


def _ordered_map(
    pool: ProcessPoolExecutor, fn: Callable[[T], R], items: Iterable[T], depth: int
) -> Iterator[R]:
    """``map`` with at most ``depth`` items in flight; results come back in input order."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= depth:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


# -- reading ----------------------------------------------------------------------------------


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith(CSV_SUFFIXES)


def _check_file_kind(path: Path) -> None:
    if not (_is_parquet(path) or _is_csv(path)):
        raise ValueError(
            f"{path.name!r}: use a Parquet ({', '.join(PARQUET_SUFFIXES)}) "
            f"or CSV ({', '.join(CSV_SUFFIXES)}) file, or a SqlTable"
        )


@contextmanager
def _read(
    source: Path | SqlTable, chunk_rows: int, all_columns: bool
) -> Iterator[tuple[int | None, Iterator[pd.DataFrame]]]:
    """(row count if known, iterator of DataFrame chunks); resources closed on exit."""
    if isinstance(source, SqlTable):
        engine = _engine(source, write=False)
        try:
            with engine.connect() as conn:
                yield _count_rows(conn, source), _sql_chunks(conn, source, chunk_rows)
        finally:
            engine.dispose()
        return
    if _is_parquet(source):
        pf = pq.ParquetFile(source)
        try:
            names = pf.schema_arrow.names
            columns = [c for c in names if c in OPEN_FIELDS]
            columns = None if all_columns or not columns else columns
            batches = pf.iter_batches(batch_size=chunk_rows, columns=columns)
            yield pf.metadata.num_rows, (b.to_pandas() for b in batches)
        finally:
            pf.close()
        return
    reader = pd.read_csv(
        source, dtype=str, keep_default_na=False, encoding="utf-8-sig", chunksize=chunk_rows
    )
    with reader:
        yield None, iter(reader)


def _count_rows(conn: sa.Connection, source: SqlTable) -> int:
    import sqlalchemy as sa

    quoted = conn.dialect.identifier_preparer.quote(source.table)
    return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {quoted}")).scalar_one())


def _sql_chunks(conn: sa.Connection, source: SqlTable, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import sqlalchemy as sa

    q = conn.dialect.identifier_preparer.quote
    query = f"SELECT * FROM {q(source.table)}"
    if source.order_by:
        query += f" ORDER BY {q(source.order_by)}"
    yield from pd.read_sql(sa.text(query), conn, chunksize=chunk_rows)


def _id_cells(frame: pd.DataFrame) -> np.ndarray:
    """shipment_id cells that are non-empty text (others cannot repeat: they are errors)."""
    n = len(frame)
    if SHIPMENT_ID not in frame.columns:
        return np.full(n, None, dtype=object)
    col = frame[SHIPMENT_ID]
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(col.cat.categories.dtype)
    if isinstance(col.dtype, pd.StringDtype):
        cells = col.to_numpy(dtype=object, na_value=None)
    elif col.dtype == object:
        cells = col.to_numpy(dtype=object)
        cells = np.where(col.map(type, na_action="ignore").isin((str, np.str_)), cells, None)
    else:
        return np.full(n, None, dtype=object)
    return np.where(cells == "", None, cells)


def _repeated_ids(frame: pd.DataFrame, seen: set[str]) -> np.ndarray:
    """True where a shipment_id already occurred, in this chunk or an earlier one."""
    cells = _id_cells(frame)
    present = np.not_equal(cells, None)
    within = pd.Series(cells).duplicated(keep="first").to_numpy() & present
    before = np.fromiter((c in seen for c in cells), dtype=bool, count=len(cells))
    seen.update(cells[present].tolist())
    return within | (before & present)


def _chunks(
    frames: Iterable[pd.DataFrame], mapping: Mapping | None, seen: set[str]
) -> Iterator[Chunk]:
    """Tidy, map and number the input chunks; mark repeated ids (needs input order)."""
    first = 1
    for index, raw in enumerate(frames):
        frame = tidy_text(raw.reset_index(drop=True))
        if mapping is not None:
            frame = apply_mapping(frame, mapping)
        frame = frame[[c for c in frame.columns if c in OPEN_FIELDS]]
        yield Chunk(index, first, frame, _repeated_ids(frame, seen))
        first += len(frame)


# -- writing ----------------------------------------------------------------------------------


class FileSink:
    """Chunks go to a temp file beside the output; ``commit`` fsyncs and renames it."""

    def __init__(self, path: Path, metadata: dict[str, str]) -> None:
        self.path = Path(path)
        self._file = AtomicFile(self.path)
        self.tmp = self._file.tmp
        self.metadata = metadata
        self._fh = self._file.fh
        try:
            self._writer = self._open_writer()
        except BaseException:
            self.abort()
            raise

    def _open_writer(self) -> Any:
        raise NotImplementedError

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one chunk and flush it to the OS (a killed run leaves only the temp file)."""
        self._writer.write_batch(batch)
        self._fh.flush()

    def commit(self) -> None:
        self._writer.close()
        self._file.commit()

    def abort(self) -> None:
        """Drop the temp file (never the output); safe to call twice."""
        try:
            if getattr(self, "_writer", None) is not None:
                self._writer.close()
        except Exception:  # the write already failed; the file goes anyway
            pass
        self._file.abort()


class ParquetSink(FileSink):
    """One row group per chunk; run settings in the footer's key-value metadata."""

    def _open_writer(self) -> pq.ParquetWriter:
        schema = OUTPUT_SCHEMA.with_metadata({f"shiprisk.{k}": v for k, v in self.metadata.items()})
        return pq.ParquetWriter(self._fh, schema, compression="zstd")


class CsvSink(FileSink):
    """Header once, then each chunk; nulls are empty cells, booleans true/false."""

    def _open_writer(self) -> pacsv.CSVWriter:
        return pacsv.CSVWriter(self._fh, OUTPUT_SCHEMA)


class SqlSink:
    """Spool chunks to a local Parquet file, then load a staging table and swap it in.

    Spooling keeps the database untouched until every chunk is scored (and lets input and
    output share one SQLite file: no write waits for our own open read cursor).
    """

    def __init__(self, target: SqlTable, metadata: dict[str, str]) -> None:
        self.target = target
        self._dir = Path(tempfile.mkdtemp(prefix="shiprisk-batch-"))
        self._spool = ParquetSink(self._dir / "scores.parquet", metadata)

    def write(self, batch: pa.RecordBatch) -> None:
        self._spool.write(batch)

    def commit(self) -> None:
        try:
            self._spool.commit()
            write_table(self.target, self._spool.path)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def abort(self) -> None:
        self._spool.abort()
        shutil.rmtree(self._dir, ignore_errors=True)


def _open_sink(destination: Path | SqlTable, metadata: dict[str, str]) -> Any:
    if isinstance(destination, SqlTable):
        return SqlSink(destination, metadata)
    if _is_parquet(destination):
        return ParquetSink(destination, metadata)
    return CsvSink(destination, metadata)


def _engine(target: SqlTable, *, write: bool) -> sa.Engine:
    """An engine; for SQLite a short busy timeout, and for writing real transactions.

    Python's sqlite3 driver does not open a transaction before DDL, so the drop + rename
    swap would not be atomic: the driver's own handling is switched off and ``BEGIN
    IMMEDIATE`` issued instead (it also takes the write lock up front, so a locked database
    fails at BEGIN, before any change).
    """
    import sqlalchemy as sa

    url = sa.make_url(target.sqlalchemy_url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url)
    wait = max(0.05, min(1.0, target.lock_timeout_s))
    engine = sa.create_engine(url, connect_args={"timeout": wait}, poolclass=sa.pool.NullPool)
    if write:

        @sa.event.listens_for(engine, "connect")
        def _no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin_immediate(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _is_locked(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database table is locked" in text


def _retry_locked(step: Callable[[], T], target: SqlTable, what: str) -> T:
    """Run a transaction, retrying while the database is locked, up to the lock timeout."""
    import sqlalchemy as sa

    deadline = time.monotonic() + target.lock_timeout_s
    pause = 0.05
    while True:
        try:
            return step()
        except sa.exc.OperationalError as exc:
            if not _is_locked(exc):
                raise
            if time.monotonic() >= deadline:
                raise BatchError(
                    f"{what}: database {target.url} is locked by another connection "
                    f"(gave up after {target.lock_timeout_s:g} s); output table "
                    f"{target.table!r} was not changed"
                ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def _sql_type(t: pa.DataType) -> Any:
    import sqlalchemy as sa

    if pa.types.is_integer(t):
        return sa.BigInteger()
    if pa.types.is_floating(t):
        return sa.Double()
    if pa.types.is_boolean(t):
        return sa.Boolean(create_constraint=False)
    return sa.Text()


def write_table(target: SqlTable, parquet_file: Path) -> None:
    """Load a Parquet file into ``target`` all-or-nothing: staging table, then swap.

    The staging table ``<table>__staging`` is replaced if a killed run left one; on failure it
    is dropped (best effort) and the old output table stays as it was.
    """
    import sqlalchemy as sa

    engine = _engine(target, write=True)
    q = engine.dialect.identifier_preparer.quote
    staging = f"{target.table}{STAGING_SUFFIX}"
    table = sa.Table(
        staging, sa.MetaData(), *(sa.Column(f.name, _sql_type(f.type)) for f in OUTPUT_SCHEMA)
    )

    def run(sql: str) -> Callable[[], None]:
        def step() -> None:
            with engine.begin() as conn:
                conn.exec_driver_sql(sql)

        return step

    def create() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(staging)}")
            table.create(conn)

    def insert(rows: list[dict[str, Any]]) -> Callable[[], None]:
        def step() -> None:
            with engine.begin() as conn:
                conn.execute(table.insert(), rows)

        return step

    def swap() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(target.table)}")
            conn.exec_driver_sql(f"ALTER TABLE {q(staging)} RENAME TO {q(target.table)}")

    try:
        _retry_locked(create, target, "creating the staging table")
        pf = pq.ParquetFile(parquet_file)
        for batch in pf.iter_batches(batch_size=SQL_INSERT_ROWS):
            rows = batch.to_pylist()
            if rows:
                _retry_locked(insert(rows), target, "loading the staging table")
        _retry_locked(swap, target, "replacing the output table")
    except BaseException:
        try:
            cleanup = SqlTable(target.url, target.table, lock_timeout_s=0.2)
            _retry_locked(run(f"DROP TABLE IF EXISTS {q(staging)}"), cleanup, "cleanup")
        except Exception:  # best effort; the next run replaces it anyway
            pass
        raise
    finally:
        engine.dispose()


# -- the run ----------------------------------------------------------------------------------


def _endpoint(value: Endpoint) -> Path | SqlTable:
    if isinstance(value, SqlTable):
        if not value.table:
            raise ValueError("SqlTable needs a table name")
        return value
    path = Path(value)
    _check_file_kind(path)
    return path


def _same_place(a: Path | SqlTable, b: Path | SqlTable) -> bool:
    if isinstance(a, SqlTable) and isinstance(b, SqlTable):
        return a.sqlalchemy_url == b.sqlalchemy_url and a.table == b.table
    if isinstance(a, Path) and isinstance(b, Path):
        return a.resolve() == b.resolve()
    return False


@contextmanager
def _model_dir(model: RiskModel | str | Path) -> Iterator[tuple[Path, RiskModel | None]]:
    """A directory the workers can load the model from (a temp copy for an in-memory model)."""
    if isinstance(model, str | Path):
        yield Path(model), None
        return
    with tempfile.TemporaryDirectory(prefix="shiprisk-model-") as tmp:
        yield model.save(Path(tmp) / "model"), model


class _Progress:
    """A rich bar on a terminal; otherwise one plain line per chunk written (for logs)."""

    def __init__(self, enabled: bool, total: int | None, console: Console | None) -> None:
        from rich.console import Console

        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self.bar: Any = None
        if enabled and self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("scoring open shipments"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("score", total=total)

    def chunk_written(self, result: ChunkResult) -> None:
        if not self.enabled:
            return
        rows, first_row = result.scored + result.errors, result.first_row
        if self.bar is not None:
            self.bar.advance(self.task, rows)
        else:
            self.console.print(
                f"chunk {result.index + 1} written: rows {first_row:,}-{first_row + rows - 1:,} "
                f"({result.scored:,} scored, {result.errors:,} errors)",
                highlight=False,
                soft_wrap=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def score_open(
    source: Endpoint,
    destination: Endpoint,
    *,
    model: RiskModel | str | Path,
    costs: SellerCosts | None = None,
    chunk_rows: int = 50_000,
    workers: int = 2,
    progress: bool = True,
    mapping: Mapping | str | Path | None = None,
    constraints: Constraints | None = None,
    now: datetime | None = None,
    console: Console | None = None,
) -> BatchSummary:
    """Score every open shipment of ``source`` into ``destination`` (see the module doc).

    ``model`` is a loaded :class:`RiskModel` or a saved model directory (workers load it from
    there). ``workers`` <= 1 scores in this process; more starts that many spawned processes.
    ``mapping`` (a loaders mapping or its YAML file) is applied to each chunk first. ``now``
    is the clock for the "created in the future" check (default: the start of the run).
    Raises on a fatal problem; nothing is written then.

    Memory is bounded by ``chunk_rows`` x (2 x ``workers`` chunks in flight) plus the set of
    shipment ids seen so far (the repeated-id check spans chunks: ~100 bytes per row).
    """
    start = time.perf_counter()
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    src, dst = _endpoint(source), _endpoint(destination)
    if _same_place(src, dst):
        raise BatchError("the output would overwrite the input: choose another destination")
    if isinstance(src, Path) and not src.is_file():
        raise FileNotFoundError(f"input file {src} does not exist")
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    costs = costs or SellerCosts()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    timezone = mapping.timezone if mapping is not None else "UTC"

    from shiprisk.models.risk_model import model_digest, read_manifest, verify_files

    with ExitStack() as stack:
        model_dir, loaded = stack.enter_context(_model_dir(model))
        verify_files(model_dir, read_manifest(model_dir))  # fail here, not in a worker
        digest = model_digest(model_dir)
        metadata = {
            "model_digest": digest,
            "costs": costs.model_dump_json(),
            "constraints": constraints.model_dump_json() if constraints else "",
            "chunk_rows": str(chunk_rows),
        }
        total, frames = stack.enter_context(_read(src, chunk_rows, mapping is not None))
        bar = _Progress(progress, total, console)
        stack.callback(bar.close)
        sink = _open_sink(dst, metadata)
        chunks = _chunks(frames, mapping, set())
        try:
            if workers <= 1:
                if loaded is None:
                    from shiprisk.models.risk_model import RiskModel

                    loaded = RiskModel.load(model_dir, compile_trees=get_settings().compiled_trees)
                scorer = ChunkScorer(loaded, costs, constraints, timezone=timezone, now=now)
                results: Iterator[ChunkResult] = (scorer(c) for c in chunks)
            else:
                pool = ProcessPoolExecutor(
                    max_workers=workers,
                    mp_context=get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(
                        str(model_dir),
                        costs.model_dump_json(),
                        constraints.model_dump_json() if constraints else None,
                        timezone,
                        now.isoformat(),
                    ),
                )
                stack.callback(pool.shutdown, wait=True, cancel_futures=True)
                results = _ordered_map(
                    pool, _score_in_worker, chunks, depth=IN_FLIGHT_PER_WORKER * workers
                )
            rows = scored = errors = pairs = n_chunks = 0
            by_field: Counter[str] = Counter()
            for result in results:
                sink.write(result.batch)
                n_chunks += 1
                rows += result.scored + result.errors
                scored += result.scored
                errors += result.errors
                pairs += result.pairs
                by_field.update(result.error_fields)
                bar.chunk_written(result)
            bar.close()
            sink.commit()
        except BaseException:
            sink.abort()
            raise
    return BatchSummary(
        rows=rows,
        scored=scored,
        errors=errors,
        pairs=pairs,
        chunks=n_chunks,
        seconds=time.perf_counter() - start,
        destination=f"table {dst.table} in {dst.url}" if isinstance(dst, SqlTable) else str(dst),
        model_digest=digest,
        errors_by_field=dict(sorted(by_field.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


# -- the default model ------------------------------------------------------------------------


def champion_model_dir() -> Path:
    """The registry's ``champion``, fetched and verified once (``registry.fetch_verified``)."""
    from shiprisk.models import registry
    from shiprisk.settings import CHAMPION

    registry.configure()
    version = registry.get_version(CHAMPION)
    if version is None:
        raise BatchError(
            f"no '{CHAMPION}' model in the registry: train and promote one, or pass --model-dir"
        )
    return registry.fetch_verified(version)


def load_costs(path: str | Path) -> SellerCosts:
    """Seller cost overrides for one run from YAML (keys: :class:`SellerCosts` fields)."""
    import yaml

    from shiprisk.decisions.costs import resolve_costs

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{Path(path).name}: expected a mapping of SellerCosts fields")
    return resolve_costs(SellerCosts(), raw)
