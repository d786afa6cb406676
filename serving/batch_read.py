"""Batch scoring, reading: open-shipment files and SQL tables, in numbered chunks.

Files are read by the history loaders' readers (:mod:`shiprisk.data.loaders`); this module
adds SQL tables (with lock retries) and the chunking and repeated-id marking a run needs.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shiprisk.data.contract import (
    OPEN_FIELDS,
)
from shiprisk.data.loaders import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    Mapping,
    apply_mapping,
    tidy_text,
)
from shiprisk.serving.batch_chunks import SHIPMENT_ID, Chunk

if TYPE_CHECKING:  # LightGBM is imported only where a model is loaded (see _init_worker)
    import sqlalchemy as sa


T = TypeVar("T")


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

    def identity(self) -> tuple[object, ...]:
        """Which database this is, whatever the spelling: a SQLite file by inode (or resolved
        path if it does not exist yet), a server by backend, host, port and database."""
        import sqlalchemy as sa

        url = sa.make_url(self.sqlalchemy_url)
        if url.get_backend_name() != "sqlite":
            host = (url.host or "").lower()
            return (url.get_backend_name(), host, url.port, url.database)
        if not url.database or url.database == ":memory:":
            return ("sqlite-memory", id(self))  # each connection has its own database
        path = Path(url.database).resolve()
        try:
            st = os.stat(path)
        except OSError:
            return ("sqlite", str(path))
        return ("sqlite-inode", st.st_dev, st.st_ino)

    def same_table(self, other: SqlTable) -> bool:
        """Same database and same table name ignoring case (SQLite, and most servers for
        unquoted names, treat ``scores`` and ``SCORES`` as one table)."""
        return self.identity() == other.identity() and (
            self.table.casefold() == other.table.casefold()
        )


Endpoint = str | Path | SqlTable


# -- reading ----------------------------------------------------------------------------------


def is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def is_csv(path: Path) -> bool:
    return path.name.lower().endswith(CSV_SUFFIXES)


def check_file_kind(path: Path) -> None:
    if not (is_parquet(path) or is_csv(path)):
        raise ValueError(
            f"{path.name!r}: use a Parquet ({', '.join(PARQUET_SUFFIXES)}) "
            f"or CSV ({', '.join(CSV_SUFFIXES)}) file, or a SqlTable"
        )


SNIFF_BYTES = 64 * 1024


def _head(path: Path) -> bytes:
    """The first bytes of a file, decompressed for ``.gz``/``.bz2`` CSV files."""
    name = path.name.lower()
    opener: Callable[..., Any] = (
        gzip.open if name.endswith(".gz") else bz2.open if name.endswith(".bz2") else open
    )
    with opener(path, "rb") as fh:
        return bytes(fh.read(SNIFF_BYTES))


def sniff_file(path: Path) -> None:
    """Refuse, in one line and before reading it, a file that cannot be what its name says.

    A file of NUL bytes (zeroed or sparse) parsed as CSV gave "0 rows" after reading all of
    it into memory (17 GB for a 2 GB sparse file); UTF-16 text failed deep in the parser.
    """
    if path.stat().st_size == 0:
        raise BatchError(f"input file {path.name} is empty (0 bytes): nothing to score")
    try:
        head = _head(path)
    except (OSError, EOFError) as exc:
        raise BatchError(f"input file {path.name} cannot be read: {exc}") from exc
    if is_parquet(path):
        if not head.startswith(b"PAR1"):
            what = "only NUL bytes" if not head.strip(b"\0") else "no Parquet header"
            raise BatchError(f"input file {path.name} is not a Parquet file ({what})")
        return
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise BatchError(f"input file {path.name} is UTF-16 (or UTF-32) text: save it as UTF-8 CSV")
    if b"\0" in head:
        if not head.strip(b"\0"):
            raise BatchError(
                f"input file {path.name} starts with only NUL bytes (zeroed or sparse file): "
                "not CSV text"
            )
        raise BatchError(
            f"input file {path.name} contains NUL bytes: not UTF-8 CSV text "
            "(UTF-16 without a byte-order mark?); save it as UTF-8"
        )


def _check_parquet_schema(path: Path, schema: pa.Schema, columns: list[str] | None) -> None:
    """Duplicate or nested columns ended in pandas internals ("truth value of an array")."""
    names = schema.names
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BatchError(f"input file {path.name} has duplicate columns: {', '.join(repeated)}")
    for f in schema:
        if (columns is None or f.name in columns) and pa.types.is_nested(f.type):
            raise BatchError(
                f"input file {path.name}: column {f.name!r} holds {f.type} values; "
                "open-shipment fields must be plain values (text, numbers, dates)"
            )


UNDECODABLE = "\ufffd"
"""What a byte that is not UTF-8 becomes: its row gets an error, the run goes on."""
_REPLACE = "shiprisk-replace"


class _Replaced:
    """How many undecodable bytes the current CSV read replaced (one run at a time)."""

    count = 0


def _replace_and_count(exc: UnicodeError) -> tuple[str, int]:
    _Replaced.count += 1
    return UNDECODABLE, exc.end  # type: ignore[attr-defined]


def _undecodable_fields(frame: pd.DataFrame) -> np.ndarray | None:
    """Per row, the first column holding a replaced byte (None: clean); None if no row."""
    found = np.full(len(frame), None, dtype=object)
    for name in reversed(frame.columns):  # the first column wins
        col = frame[name]
        if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
            hit = col.astype("str").str.contains(UNDECODABLE, regex=False).to_numpy(bool)
            found[hit] = name
    return found if pd.notna(found).any() else None


def _decoded(path: Path, frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """CSV chunks; a byte that is not UTF-8 stops the run with one line naming it."""
    try:
        yield from frames
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from exc


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> BatchError:
    bad = exc.object[exc.start : exc.start + 1].hex() if exc.object else "?"
    return BatchError(
        f"input file {path.name} is not valid UTF-8 (byte 0x{bad}, e.g. Latin-1 or "
        "Windows-1252 text): save it as UTF-8"
    )


@contextmanager
def read_source(
    source: Path | SqlTable, chunk_rows: int, all_columns: bool
) -> Iterator[tuple[int | None, Iterator[pd.DataFrame]]]:
    """(row count if known, iterator of DataFrame chunks); resources closed on exit."""
    if isinstance(source, SqlTable):
        engine = engine_for(source, write=False)
        try:
            with engine.connect() as conn:
                yield _count_rows(conn, source), _sql_chunks(conn, source, chunk_rows)
        finally:
            engine.dispose()
        return
    if is_parquet(source):
        pf = pq.ParquetFile(source)
        try:
            names = pf.schema_arrow.names
            columns = [c for c in names if c in OPEN_FIELDS]
            columns = None if all_columns or not columns else columns
            _check_parquet_schema(source, pf.schema_arrow, columns)
            batches = pf.iter_batches(batch_size=chunk_rows, columns=columns)
            yield pf.metadata.num_rows, (b.to_pandas() for b in batches)
        finally:
            pf.close()
        return
    codecs.register_error(_REPLACE, _replace_and_count)
    _Replaced.count = 0  # the reader decodes its first block as soon as it is made
    try:
        reader = pd.read_csv(
            source,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            encoding_errors=_REPLACE,  # a stray byte is that row's error, not the run's
            chunksize=chunk_rows,
        )
    except UnicodeDecodeError as exc:
        raise _not_utf8(source, exc) from exc
    with reader:
        yield None, _decoded(source, iter(reader))


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


def number_chunks(
    frames: Iterable[pd.DataFrame], mapping: Mapping | None, seen: set[str]
) -> Iterator[Chunk]:
    """Tidy, map and number the input chunks; mark repeated ids (needs input order)."""
    first = 1
    for index, raw in enumerate(frames):
        frame = tidy_text(raw.reset_index(drop=True))
        if mapping is not None:
            frame = apply_mapping(frame, mapping)
        frame = frame[[c for c in frame.columns if c in OPEN_FIELDS]]
        # The reader runs ahead of the chunks: once a byte was replaced, check every chunk.
        undecodable = _undecodable_fields(frame) if _Replaced.count else None
        yield Chunk(index, first, frame, _repeated_ids(frame, seen), undecodable)
        first += len(frame)


def engine_for(target: SqlTable, *, write: bool) -> sa.Engine:
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


def is_locked(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database table is locked" in text


def retry_locked(step: Callable[[], T], target: SqlTable, what: str) -> T:
    """Run a transaction, retrying while the database is locked, up to the lock timeout."""
    import sqlalchemy as sa

    deadline = time.monotonic() + target.lock_timeout_s
    pause = 0.05
    while True:
        try:
            return step()
        except sa.exc.OperationalError as exc:
            if not is_locked(exc):
                raise
            if time.monotonic() >= deadline:
                raise BatchError(
                    f"{what}: database {target.url} is locked by another connection "
                    f"(gave up after {target.lock_timeout_s:g} s); output table "
                    f"{target.table!r} was not changed"
                ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
