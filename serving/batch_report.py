"""Batch scoring, what the user sees: progress while it runs, a summary when it ends, and a
warning when the input looks like delivered history rather than open shipments."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiprisk.data.contract import HISTORY_FIELDS, OPEN_FIELDS
from shiprisk.serving.batch_chunks import ChunkResult

if TYPE_CHECKING:
    from rich.console import Console

    from shiprisk.data.loaders import Mapping
    from shiprisk.serving.batch_read import SqlTable

OUTCOME_COLUMNS: tuple[str, ...] = tuple(f for f in HISTORY_FIELDS if f not in OPEN_FIELDS)


@dataclass(frozen=True)
class BatchSummary:
    """What a run did; ``pairs`` counts the (shipment, channel) rows the model scored.

    ``kept``: scored rows whose chosen channel is the recommended one; ``switched``: rows
    where another channel is recommended, by that channel; ``saving_usd``: the expected
    saving summed over rows where the chosen channel could be compared (``saving_usd``
    column); ``notes``: warnings about the input as a whole.
    """

    rows: int
    scored: int
    errors: int
    pairs: int
    chunks: int
    seconds: float
    destination: str
    model_digest: str
    errors_by_field: dict[str, int] = field(default_factory=dict)
    warned: int = 0
    kept: int = 0
    switched: dict[str, int] = field(default_factory=dict)
    no_recommendation: int = 0
    saving_usd: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else float("inf")

    def lines(self) -> list[str]:
        """The run summary, a few labelled lines (printed by ``shiprisk score-open``)."""
        n_switched = sum(self.switched.values())
        top = ", ".join(f"{c} {k:,}" for c, k in list(self.switched.items())[:5])
        more = len(self.switched) - 5
        out = [
            f"summary: {self.rows:,} rows, {self.scored:,} scored, {self.errors:,} errors, "
            f"{self.warned:,} with warnings -> {self.destination}",
            f"  recommendation: keep the chosen channel {self.kept:,}, switch {n_switched:,}"
            + (f" (to {top}{f', {more} more' if more > 0 else ''})" if n_switched else "")
            + f", none {self.no_recommendation:,}",
            f"  expected saving if every recommendation is followed: {self.saving_usd:,.2f} USD",
        ]
        for name, count in list(self.errors_by_field.items())[:10]:
            out.append(f"  errors on {name}: {count:,}")
        out.append(
            f"  {self.seconds:.1f} s, {self.rows_per_s:,.0f} rows/s "
            f"({self.pairs_per_s:,.0f} shipment-channel pairs/s)"
        )
        return out


@dataclass
class RunTotals:
    """Counts summed over the chunks of a run."""

    rows: int = 0
    scored: int = 0
    errors: int = 0
    pairs: int = 0
    chunks: int = 0
    warned: int = 0
    kept: int = 0
    no_recommendation: int = 0
    saving_usd: float = 0.0
    by_field: Counter[str] = field(default_factory=Counter)
    switched: Counter[str] = field(default_factory=Counter)

    def add(self, result: ChunkResult) -> None:
        self.chunks += 1
        self.rows += result.scored + result.errors
        self.scored += result.scored
        self.errors += result.errors
        self.pairs += result.pairs
        self.warned += result.warned
        self.kept += result.kept
        self.no_recommendation += result.no_recommendation
        self.saving_usd += result.saving_usd
        self.by_field.update(result.error_fields)
        self.switched.update(result.recommended)

    def summary(
        self, *, seconds: float, destination: str, model_digest: str, notes: list[str]
    ) -> BatchSummary:
        def ranked(c: Counter[str]) -> dict[str, int]:
            return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

        return BatchSummary(
            rows=self.rows,
            scored=self.scored,
            errors=self.errors,
            pairs=self.pairs,
            chunks=self.chunks,
            seconds=seconds,
            destination=destination,
            model_digest=model_digest,
            errors_by_field=ranked(self.by_field),
            warned=self.warned,
            kept=self.kept,
            switched=ranked(self.switched),
            no_recommendation=self.no_recommendation,
            saving_usd=round(self.saving_usd, 2),
            notes=notes,
        )


def history_columns(source: Path | SqlTable, mapping: Mapping | None) -> list[str]:
    """A warning when the input carries outcome columns: delivered history, not open
    shipments (scored anyway; the outcome columns are ignored)."""
    names = _column_names(source)
    if mapping is not None:
        names = [mapping.columns.get(n, n) for n in names]
    found = [c for c in OUTCOME_COLUMNS if c in names]
    if not found:
        return []
    return [
        f"the input has {', '.join(found)} column(s): these look like delivered history rows, "
        "not open shipments; they were scored anyway (score only shipments not yet delivered)"
    ]


def _column_names(source: Path | SqlTable) -> list[str]:
    """The input's column names, read without reading its rows (best effort: [] on error)."""
    import pandas as pd
    import pyarrow.parquet as pq

    from shiprisk.serving.batch_read import SqlTable, engine_for, is_parquet

    try:
        if isinstance(source, SqlTable):
            import sqlalchemy as sa

            engine = engine_for(source, write=False)
            try:
                with engine.connect() as conn:
                    return [c["name"] for c in sa.inspect(conn).get_columns(source.table)]
            finally:
                engine.dispose()
        if is_parquet(source):
            return list(pq.read_schema(source).names)
        return list(pd.read_csv(source, nrows=0, encoding="utf-8-sig").columns)
    except Exception:  # the reader proper reports unreadable input, in its own words
        return []


class Progress:
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
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self.bar = Bar(
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
