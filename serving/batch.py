"""Nightly batch scoring of open shipments: risk, insurance and a better channel, per row.

Operations score every open shipment once a night. :func:`score_open` streams a table of
open shipments (contract schema ``open``: ``shipment_id``, the shipment fields and the chosen
``channel_id``) from a Parquet or CSV file or a SQL table, in chunks, across worker
processes, and writes one output row per input row, in input order. Each chunk goes through
the one scoring path online scoring uses (:func:`shiprisk.decisions.scoring.score`): every
eligible (shipment, channel) pair, plus the chosen pair, scored in one vectorised call.

The run is split by concern: reading (``batch_read``), scoring a chunk (``batch_chunks``),
writing (``batch_write``) and this module, the run loop (workers, order, progress, summary).

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
    p_<event>                      double  one per event of the outcome spec
                                           (data/reference/outcomes.json; today p_loss =
                                           P(lost), p_reject = P(rejected, returned)) on
                                           the chosen channel
    price_usd                      double  list price on the chosen channel (null: no price)
    premium_usd                    double  insurance premium there (null: not insurable)
    insure                         bool    buying that insurance lowers the expected cost
    expected_cost_usd              double  policy expected cost on the chosen channel, with
                                           the insure decision above
    recommended_channel_id         string  the policy's channel among all eligible channels
                                           (null: none, see no_recommendation_reason)
    recommended_p_<event>          double  its probability of each event
    recommended_price_usd          double  its list price
    recommended_insure             bool    insure on the recommended channel
    recommended_expected_cost_usd  double  its expected cost
    saving_usd                     double  expected_cost_usd - recommended_expected_cost_usd;
                                           0 when the chosen channel is the recommended one;
                                           null when the chosen channel is not eligible or
                                           breaks the seller's constraints (see
                                           no_saving_reason)
    no_recommendation_reason       string  why there is no recommendation (null otherwise)
    order_id                       string  as given (columns from here on were appended in
                                           issue 18; existing positions are unchanged)
    destination_country            string  as given
    warnings                       string  JSON list of /score's warnings for this shipment
                                           (serving/notices.py); null when there are none
    no_saving_reason               string  why saving_usd is null although there is a
                                           recommendation: the chosen channel is unknown,
                                           does not accept the shipment, or breaks the
                                           seller's constraints
    expected_profit_usd            double  margin on the sale minus expected_cost_usd on the
                                           chosen channel (docs/policy.md; null: not priced)
    recommended_expected_profit_usd double the same on the recommended channel
    verdict                        string  as /score's: ship, do_not_ship_as_is (every option
                                           loses money) or no_channel; /score lists the
                                           alternatives (prepayment, confirm, DDP, decline)
    support                        int64   training shipments the model saw in the chosen
                                           channel's cell (channel x declared-value band x
                                           destination risk tier; null: none recorded)
    uncertain                      bool    fewer than SHIPRISK_SUPPORT_MIN shipments or
                                           SHIPRISK_SUPPORT_MIN_EVENTS events of an outcome
                                           in that cell: an uncertain estimate
    recommended_support            int64   the same for the recommended channel
    recommended_uncertain          bool    the recommendation rests on an uncertain estimate
    catalog_version                string  the catalog the row was priced on (as /score's
                                           ``catalog.version``; docs/catalog.md)
    sources                        string  JSON {outcome: "model" | "prior" |
                                           "recalibrated"}: whether each probability came
                                           from a trained head, the prior or the base model
                                           recalibrated to the history (as /score's
                                           ``sources``; docs/history.md)
    price_estimated                bool    price_usd is the chosen channel's catalog price at
                                           its minimum chargeable weight (or the weight or
                                           size given): the row lacks weight_kg or a side
                                           (as /score's ``price_estimated``; false when
                                           there is no price)
    recommended_price_estimated    bool    the same for recommended_price_usd (null: no
                                           recommendation)
    reasons, actions               string  only with ``explain``: JSON lists shaped like
                                           /score's ``reasons`` and ``actions``

Money columns are rounded to the cent. A chosen channel missing from the catalog is scored
like /score scores it (generic channel attributes; no price, so no expected cost) with a
warning; it is never recommended.

Error rows: every problem :func:`~shiprisk.data.validation.validate_frame` finds (schema
``open``), a ``shipment_id`` already seen earlier in the input (in any chunk: the first
occurrence is scored, later ones are errors).
``error_field``/``error_reason`` name the first problem in contract field order.

Output is all-or-nothing. Files are written to ``.<name>.partial-<pid>`` next to the
destination, fsynced and renamed over it (a previous output stays until then; a partial file
left by a killed run is removed by the next run). A rerun on the same input with the same
model, costs and ``chunk_rows`` writes byte-identical files: no timestamps, one Parquet row
group per chunk, results re-assembled in input order whatever the number of workers. SQL
output goes to ``<table>__staging_<pid>`` first, then one transaction drops the old table and
renames the staging table (this needs transactional DDL: SQLite, PostgreSQL).

Refused before anything is written: an output that is the input however spelled (symlinks,
another URL for the same SQLite file, table names differing in case), a file that cannot be
what its name says (NUL bytes, UTF-16, no Parquet header, nested or duplicate Parquet
columns), a CSV byte that is not UTF-8, and an input without rows (unless ``allow_empty``).
Workers exit when the run that started them dies; a killed run's spool directory and
staging table are removed by the next run (:mod:`shiprisk.serving.batch_write`). CSV output
neutralises formula-leading text (see :class:`~shiprisk.serving.batch_write.CsvSink`).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from shiprisk.data.catalogs import load_catalog
from shiprisk.data.loaders import (
    Mapping,
    load_mapping,
)
from shiprisk.decisions.costs import Constraints, SellerCosts
from shiprisk.serving.batch_chunks import Chunk, ChunkResult, ChunkScorer, output_schema
from shiprisk.serving.batch_read import (
    BatchError,
    Endpoint,
    SqlTable,
    check_file_kind,
    number_chunks,
    read_source,
    sniff_file,
)
from shiprisk.serving.batch_report import BatchSummary, Progress, RunTotals, history_columns
from shiprisk.serving.batch_write import open_sink
from shiprisk.settings import BATCH_CHUNK_ROWS, get_settings

if TYPE_CHECKING:  # LightGBM is imported only where a model is loaded (see _init_worker)
    from rich.console import Console

    from shiprisk.models.risk_model import RiskModel


IN_FLIGHT_PER_WORKER = 2
"""Chunks queued per worker: keeps both cores busy while bounding memory."""


# -- worker processes -------------------------------------------------------------------------

_WORKER: ChunkScorer | None = None


PARENT_POLL_S = 0.25
"""How often a worker checks that the run that started it is still alive."""


def _exit_with_parent(parent_pid: int) -> None:
    """Exit as soon as the parent is gone (reparented): a SIGKILLed run left its workers
    alive, blocked on a pipe, holding ~400 MB each."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def _init_worker(
    model_dir: str,
    costs_json: str,
    constraints_json: str | None,
    timezone: str,
    now: str,
    parent_pid: int,
    explain: bool = False,
) -> None:
    """Load the model once per worker; one OpenMP thread each (the workers fill the cores)."""
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
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
        explain=explain,
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


# -- the run ----------------------------------------------------------------------------------


def _endpoint(value: Endpoint) -> Path | SqlTable:
    if isinstance(value, SqlTable):
        if not value.table:
            raise ValueError("SqlTable needs a table name")
        return value
    path = Path(value)
    check_file_kind(path)
    return path


def _same_place(a: Path | SqlTable, b: Path | SqlTable) -> bool:
    """Input and output are one thing, however spelled: ``./`` and ``..`` segments,
    symlinks and hard links, another URL for the same SQLite file, ``SCORES`` vs ``scores``."""
    if isinstance(a, SqlTable) and isinstance(b, SqlTable):
        return a.same_table(b)
    if isinstance(a, Path) and isinstance(b, Path):
        if a.resolve() == b.resolve():
            return True
        try:
            return os.path.samefile(a, b)
        except OSError:  # one of them does not exist yet
            return False
    return False


@contextmanager
def _model_dir(model: RiskModel | str | Path) -> Iterator[tuple[Path, RiskModel | None]]:
    """A directory the workers can load the model from (a temp copy for an in-memory model)."""
    if isinstance(model, str | Path):
        yield Path(model), None
        return
    with tempfile.TemporaryDirectory(prefix="shiprisk-model-") as tmp:
        yield model.save(Path(tmp) / "model"), model


def score_open(
    source: Endpoint,
    destination: Endpoint,
    *,
    model: RiskModel | str | Path,
    costs: SellerCosts | None = None,
    chunk_rows: int = BATCH_CHUNK_ROWS,
    workers: int = 2,
    progress: bool = True,
    mapping: Mapping | str | Path | None = None,
    constraints: Constraints | None = None,
    now: datetime | None = None,
    console: Console | None = None,
    allow_empty: bool = False,
    explain: bool = False,
) -> BatchSummary:
    """Score every open shipment of ``source`` into ``destination`` (see the module doc).

    ``model`` is a loaded :class:`RiskModel` or a saved model directory (workers load it from
    there). ``workers`` <= 1 scores in this process; more starts that many spawned processes.
    ``mapping`` (a loaders mapping or its YAML file) is applied to each chunk first. ``now``
    is the clock for the "created in the future" check (default: the start of the run).
    Raises on a fatal problem; nothing is written then. An input without a single row is
    one: it would replace the previous good output with nothing (``allow_empty`` permits it).

    ``explain`` adds the ``reasons`` and ``actions`` columns (slower: one explanation per row).
    Input that carries outcome columns (delivered history, not open shipments) is scored,
    with a warning in the summary's ``notes`` (and on ``console``).

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
    if isinstance(src, Path):
        sniff_file(src)
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    costs = costs or SellerCosts()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    timezone = mapping.timezone if mapping is not None else "UTC"

    from shiprisk.models.risk_model import model_digest, read_manifest, verify_files

    notes = history_columns(src, mapping)
    if notes and console is not None:
        for note in notes:
            console.print(f"[yellow]warning:[/yellow] {note}", highlight=False, soft_wrap=True)

    with ExitStack() as stack:
        model_dir, loaded = stack.enter_context(_model_dir(model))
        verify_files(model_dir, read_manifest(model_dir))  # fail here, not in a worker
        digest = model_digest(model_dir)
        metadata = {
            "model_digest": digest,
            "costs": costs.model_dump_json(),
            "constraints": constraints.model_dump_json() if constraints else "",
            "chunk_rows": str(chunk_rows),
            "usd_rates_as_of": load_catalog().rates_as_of,  # the dated rates every USD uses
            "catalog_version": load_catalog().version,
            "catalog_source": load_catalog().source,
        }
        total, frames = stack.enter_context(read_source(src, chunk_rows, mapping is not None))
        bar = Progress(progress, total, console)
        stack.callback(bar.close)
        schema = output_schema(explain)
        sink = open_sink(dst, metadata, schema)
        chunks = number_chunks(frames, mapping, set())
        try:
            if workers <= 1:
                if loaded is None:
                    from shiprisk.models.risk_model import RiskModel

                    loaded = RiskModel.load(model_dir, compile_trees=get_settings().compiled_trees)
                scorer = ChunkScorer(
                    loaded, costs, constraints, timezone=timezone, now=now, explain=explain
                )
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
                        os.getpid(),
                        explain,
                    ),
                )
                stack.callback(pool.shutdown, wait=True, cancel_futures=True)
                results = _ordered_map(
                    pool, _score_in_worker, chunks, depth=IN_FLIGHT_PER_WORKER * workers
                )
            totals = RunTotals()
            for result in results:
                sink.write(result.batch)
                totals.add(result)
                bar.chunk_written(result)
            bar.close()
            if totals.rows == 0 and not allow_empty:
                raise BatchError(
                    "the input has no rows: nothing written, the previous output (if any) is "
                    "unchanged (allow an empty output with --allow-empty)"
                )
            sink.commit()
        except BaseException:
            sink.abort()
            raise
    return totals.summary(
        seconds=time.perf_counter() - start,
        destination=f"table {dst.table} in {dst.url}" if isinstance(dst, SqlTable) else str(dst),
        model_digest=digest,
        notes=notes,
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
