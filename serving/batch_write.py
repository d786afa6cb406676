"""Batch scoring, writing: one output row per input row, published all or nothing.

Files go through :mod:`shiprisk.data.atomic`; SQL outputs through a staging table swapped in
by one transaction. Debris of a killed run (a spool directory ``shiprisk-batch-<pid>-*`` in
the temp directory, a staging table ``<table>__staging_<pid>``) carries the dead writer's
process id, and the next run towards the same output removes it before writing anything.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shiprisk.data.atomic import AtomicFile, pid_alive
from shiprisk.serving.batch_chunks import OUTPUT_SCHEMA
from shiprisk.serving.batch_read import (
    BatchError,
    SqlTable,
    engine_for,
    is_parquet,
    retry_locked,
)

if TYPE_CHECKING:
    import sqlalchemy as sa


STAGING_INFIX = "__staging_"
SPOOL_PREFIX = "shiprisk-batch-"
FORMULA_START = "^[=+\\-@\t\r]"
"""Text a spreadsheet would run as a formula (CSV injection): see :class:`CsvSink`."""
SQL_INSERT_ROWS = 10_000


# -- writing ----------------------------------------------------------------------------------


class FileSink:
    """Chunks go to a temp file beside the output; ``commit`` fsyncs and renames it."""

    def __init__(
        self, path: Path, metadata: dict[str, str], schema: pa.Schema = OUTPUT_SCHEMA
    ) -> None:
        self.path = Path(path)
        self.schema = schema
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
        schema = self.schema.with_metadata({f"shiprisk.{k}": v for k, v in self.metadata.items()})
        return pq.ParquetWriter(self._fh, schema, compression="zstd")


class CsvSink(FileSink):
    """Header once, then each chunk; nulls are empty cells, booleans true/false.

    Text cells starting with ``= + - @``, a tab or a carriage return get a leading ``'``:
    input values are echoed back (``shipment_id``, ``channel_id``), and a spreadsheet would
    run ``=HYPERLINK(...)`` or ``=cmd|...`` as a formula. Parquet and SQL keep exact values.
    """

    def _open_writer(self) -> pacsv.CSVWriter:
        return pacsv.CSVWriter(self._fh, self.schema)

    def write(self, batch: pa.RecordBatch) -> None:
        super().write(neutralise_formulas(batch))


def neutralise_formulas(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Prefix formula-leading text cells with ``'`` (string columns only; nulls stay)."""
    arrays = []
    for col, f in zip(batch.columns, batch.schema, strict=True):
        if pa.types.is_string(f.type):
            risky = pc.fill_null(pc.match_substring_regex(col, FORMULA_START), False)
            if pc.any(risky).as_py():
                col = pc.if_else(risky, pc.binary_join_element_wise("'", col, ""), col)
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


class SqlSink:
    """Spool chunks to a local Parquet file, then load a staging table and swap it in.

    Spooling keeps the database untouched until every chunk is scored (and lets input and
    output share one SQLite file: no write waits for our own open read cursor).
    """

    def __init__(
        self, target: SqlTable, metadata: dict[str, str], schema: pa.Schema = OUTPUT_SCHEMA
    ) -> None:
        self.target = target
        remove_stale_spools()
        remove_stale_staging(target)
        self._dir = Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-"))
        self._spool = ParquetSink(self._dir / "scores.parquet", metadata, schema)

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


def open_sink(
    destination: Path | SqlTable, metadata: dict[str, str], schema: pa.Schema = OUTPUT_SCHEMA
) -> Any:
    if isinstance(destination, SqlTable):
        return SqlSink(destination, metadata, schema)
    if is_parquet(destination):
        return ParquetSink(destination, metadata, schema)
    return CsvSink(destination, metadata, schema)


def _sql_type(t: pa.DataType) -> Any:
    import sqlalchemy as sa

    if pa.types.is_integer(t):
        return sa.BigInteger()
    if pa.types.is_floating(t):
        return sa.Double()
    if pa.types.is_boolean(t):
        return sa.Boolean(create_constraint=False)
    return sa.Text()


def _dead_pid(name: str, prefix: str) -> bool:
    """``name`` is ``<prefix><pid>...`` and that process is gone (not this one)."""
    match = re.match(re.escape(prefix) + r"(\d+)(?:-|$)", name, flags=re.IGNORECASE)
    if match is None:
        return False
    pid = int(match.group(1))
    return pid != os.getpid() and not pid_alive(pid)


def remove_stale_spools(directory: Path | None = None) -> list[Path]:
    """Delete spool directories of killed runs (their pid is gone) in the temp directory."""
    root = Path(directory or tempfile.gettempdir())
    removed = []
    for path in root.glob(f"{SPOOL_PREFIX}*"):
        if path.is_dir() and _dead_pid(path.name, SPOOL_PREFIX):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def staging_name(target: SqlTable) -> str:
    return f"{target.table}{STAGING_INFIX}{os.getpid()}"


def remove_stale_staging(target: SqlTable) -> list[str]:
    """Drop ``<table>__staging_<pid>`` tables of killed runs (best effort: a locked
    database is left for the next run). The pid is checked on this host only."""
    import sqlalchemy as sa

    engine = engine_for(target, write=False)
    prefix = f"{target.table}{STAGING_INFIX}"
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            stale = [n for n in names if _dead_pid(n, prefix)]
            q = conn.dialect.identifier_preparer.quote
            for name in stale:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(name)}")
            conn.commit()
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()
    return stale


def _refuse_collision(conn: sa.Connection, staging: str, output: str) -> None:
    import sqlalchemy as sa

    names = {n.casefold() for n in sa.inspect(conn).get_table_names()}
    if staging.casefold() in names:
        raise BatchError(
            f"table {staging!r} already exists in the output database and is not ours to "
            f"drop: rename it, or choose another output table than {output!r}"
        )


def write_table(target: SqlTable, parquet_file: Path) -> None:
    """Load a Parquet file into ``target`` all-or-nothing: staging table, then swap.

    The staging table ``<table>__staging_<pid>`` is unique to this run; an existing table of
    that name is refused, never dropped. On failure the staging table is dropped (best
    effort; else the next run does) and the old output table stays as it was.
    """
    import sqlalchemy as sa

    engine = engine_for(target, write=True)
    q = engine.dialect.identifier_preparer.quote
    staging = staging_name(target)
    pf = pq.ParquetFile(parquet_file)
    table = sa.Table(
        staging, sa.MetaData(), *(sa.Column(f.name, _sql_type(f.type)) for f in pf.schema_arrow)
    )

    def run(sql: str) -> Callable[[], None]:
        def step() -> None:
            with engine.begin() as conn:
                conn.exec_driver_sql(sql)

        return step

    created = False

    def create() -> None:
        nonlocal created
        with engine.begin() as conn:
            _refuse_collision(conn, staging, target.table)
            table.create(conn)
        created = True

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
        for batch in pf.iter_batches(batch_size=SQL_INSERT_ROWS):
            rows = batch.to_pylist()
            if rows:
                retry_locked(insert(rows), target, "loading the staging table")
        retry_locked(swap, target, "replacing the output table")
    except BaseException:
        if not created:
            raise
        try:
            cleanup = SqlTable(target.url, target.table, lock_timeout_s=0.2)
            retry_locked(run(f"DROP TABLE IF EXISTS {q(staging)}"), cleanup, "cleanup")
        except Exception:  # best effort; the next run replaces it anyway
            pass
        raise
    finally:
        engine.dispose()
