"""Batch scoring, writing: one output row per input row, published all or nothing.

Files go through :mod:`shiprisk.data.atomic`; SQL outputs through a staging table swapped in
by one transaction.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shiprisk.data.atomic import AtomicFile
from shiprisk.serving.batch_chunks import OUTPUT_SCHEMA
from shiprisk.serving.batch_read import SqlTable, engine_for, is_parquet, retry_locked

if TYPE_CHECKING:  # LightGBM is imported only where a model is loaded (see _init_worker)
    pass


STAGING_SUFFIX = "__staging"
SQL_INSERT_ROWS = 10_000


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


def open_sink(destination: Path | SqlTable, metadata: dict[str, str]) -> Any:
    if isinstance(destination, SqlTable):
        return SqlSink(destination, metadata)
    if is_parquet(destination):
        return ParquetSink(destination, metadata)
    return CsvSink(destination, metadata)


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

    engine = engine_for(target, write=True)
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
        retry_locked(create, target, "creating the staging table")
        pf = pq.ParquetFile(parquet_file)
        for batch in pf.iter_batches(batch_size=SQL_INSERT_ROWS):
            rows = batch.to_pylist()
            if rows:
                retry_locked(insert(rows), target, "loading the staging table")
        retry_locked(swap, target, "replacing the output table")
    except BaseException:
        try:
            cleanup = SqlTable(target.url, target.table, lock_timeout_s=0.2)
            retry_locked(run(f"DROP TABLE IF EXISTS {q(staging)}"), cleanup, "cleanup")
        except Exception:  # best effort; the next run replaces it anyway
            pass
        raise
    finally:
        engine.dispose()
