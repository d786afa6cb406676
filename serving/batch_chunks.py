"""Batch scoring, one chunk: validate, score through the one scoring path, lay out the rows.

The output columns are documented in :mod:`shiprisk.serving.batch`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from shiprisk.data.catalogs import Catalog, load_catalog
from shiprisk.data.contract import (
    CHANNEL_FIELD,
    OPEN_FIELDS,
    SHIPMENT_ID_FIELD,
)
from shiprisk.data.outcomes import EVENT_KEYS, PROBABILITIES
from shiprisk.data.validation import DUPLICATE_ID, validate_frame
from shiprisk.decisions.alternatives import verdicts
from shiprisk.decisions.costs import Constraints, SellerCosts, cents
from shiprisk.decisions.scoring import score
from shiprisk.serving.batch_notes import RowNotes
from shiprisk.serving.missing import absent_cells, price_estimated_rows
from shiprisk.serving.notices import uncertain_warning
from shiprisk.settings import get_settings

if TYPE_CHECKING:  # LightGBM is imported only where a model is loaded (see _init_worker)
    from shiprisk.models.risk_model import RiskModel


MONEY_COLUMNS: tuple[str, ...] = (
    "price_usd",
    "premium_usd",
    "expected_cost_usd",
    "recommended_price_usd",
    "recommended_expected_cost_usd",
    "saving_usd",
    "expected_profit_usd",
    "recommended_expected_profit_usd",
)
"""USD columns, rounded to the cent in every output."""
EXPLAIN_COLUMNS: tuple[str, ...] = ("reasons", "actions")
"""Added by ``explain=True``: JSON lists shaped like /score's ``reasons`` and ``actions``."""

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
        *((name, pa.float64()) for name in PROBABILITIES),
        ("price_usd", pa.float64()),
        ("premium_usd", pa.float64()),
        ("insure", pa.bool_()),
        ("expected_cost_usd", pa.float64()),
        ("recommended_channel_id", pa.string()),
        *((f"recommended_{name}", pa.float64()) for name in PROBABILITIES),
        ("recommended_price_usd", pa.float64()),
        ("recommended_insure", pa.bool_()),
        ("recommended_expected_cost_usd", pa.float64()),
        ("saving_usd", pa.float64()),
        ("no_recommendation_reason", pa.string()),
        # Added in the "batch = online" release (CHANGELOG): appended, so positions hold.
        ("order_id", pa.string()),
        ("destination_country", pa.string()),
        ("warnings", pa.string()),
        ("no_saving_reason", pa.string()),
        # Added with the cost model of issue 16 ("Decisions I"): appended.
        ("expected_profit_usd", pa.float64()),
        ("recommended_expected_profit_usd", pa.float64()),
        ("verdict", pa.string()),
        # Added with support counts (issue 17, "Decisions II"): appended.
        ("support", pa.int64()),
        ("uncertain", pa.bool_()),
        ("recommended_support", pa.int64()),
        ("recommended_uncertain", pa.bool_()),
        # Added with seller catalogs (issue 15): the catalog version every row was priced on.
        ("catalog_version", pa.string()),
        # Heads where the labels allow (issue 15): JSON {outcome: "model" | "prior" |
        # "recalibrated"}.
        ("sources", pa.string()),
        # Optional fields (issue 14): priced without the weight or a side, as /score says.
        ("price_estimated", pa.bool_()),
        ("recommended_price_estimated", pa.bool_()),
    ]
)
OUTPUT_COLUMNS: tuple[str, ...] = tuple(OUTPUT_SCHEMA.names)
SUPPORT_COLUMNS = ("support", "recommended_support")
"""Counts; -1 in the work arrays means no count (not scored, or none recorded): null."""


def output_schema(explain: bool = False) -> pa.Schema:
    """The output columns; ``explain`` appends :data:`EXPLAIN_COLUMNS`."""
    if not explain:
        return OUTPUT_SCHEMA
    return pa.schema([*OUTPUT_SCHEMA, *((name, pa.string()) for name in EXPLAIN_COLUMNS)])


SCORED, ERROR = "scored", "error"
NOT_UTF8_REASON = (
    "holds a byte that is not UTF-8 (text in another encoding, e.g. Latin-1): "
    "save the file as UTF-8"
)
CHANNEL = CHANNEL_FIELD.name
SHIPMENT_ID = SHIPMENT_ID_FIELD.name


# -- scoring one chunk (runs in a worker process) ---------------------------------------------


@dataclass
class Chunk:
    """Input rows ``first_row .. first_row + len(frame) - 1``, their repeated-id mask and,
    per row, the first field holding a byte that was not UTF-8 (None: all text decoded)."""

    index: int
    first_row: int
    frame: pd.DataFrame
    duplicate: np.ndarray
    undecodable: np.ndarray | None = None


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
    warned: int = 0
    kept: int = 0
    recommended: dict[str, int] = field(default_factory=dict)
    """Rows switched to another channel, by recommended channel id."""
    no_recommendation: int = 0
    saving_usd: float = 0.0


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
        explain: bool = False,
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
        self.explain = explain
        self.schema = output_schema(explain)
        self.notes = RowNotes(model, self.catalog, costs)
        self.support_min = get_settings().support_min
        self.support_min_events = get_settings().support_min_events
        self.sources = json.dumps(model.sources)

    def __call__(self, chunk: Chunk) -> ChunkResult:
        df = chunk.frame
        n = len(df)
        rows = np.arange(chunk.first_row, chunk.first_row + n, dtype=np.int64)
        checked = validate_frame(
            df, "open", unique_ids=False, now=self.now, row_numbers=rows, timezone=self.timezone
        )
        out = _empty_output(n, self.schema)
        out["row"] = rows
        out["catalog_version"] = np.full(n, self.catalog.version, dtype=object)
        out["sources"] = np.full(n, self.sources, dtype=object)
        for name in (SHIPMENT_ID, CHANNEL, "order_id", "destination_country"):
            out[name] = _cell_text(df, name, n)

        # Valid, non-repeated rows are scored; a channel the catalog does not know is scored
        # with generic attributes and a warning, as /score does.
        bad_text = (
            np.zeros(n, dtype=bool)
            if chunk.undecodable is None
            else pd.notna(chunk.undecodable).astype(bool)
        )
        skip = chunk.duplicate | bad_text  # never scored: an error row each
        ok = checked.valid_mask & ~skip
        frame = checked.valid[~skip[checked.valid_mask]]
        positions = np.flatnonzero(ok)

        first_field, first_reason, count = _first_errors(
            checked.errors, chunk.duplicate, chunk.first_row, n
        )
        if chunk.undecodable is not None:
            at = np.flatnonzero(bad_text)
            first_field[at] = chunk.undecodable[at]
            first_reason[at] = NOT_UTF8_REASON
            count[at] = np.maximum(count[at], 1)
        is_error = count > 0
        out["status"] = np.where(is_error, ERROR, SCORED).astype(object)
        out["error_field"] = first_field
        out["error_reason"] = first_reason
        out["error_count"] = count

        result = ChunkResult(
            index=chunk.index,
            first_row=chunk.first_row,
            batch=None,  # type: ignore[arg-type]
            scored=int(n - is_error.sum()),
            errors=int(is_error.sum()),
            pairs=0,
            error_fields=dict(Counter(first_field[is_error].tolist())),
        )
        if len(frame):
            self._score(frame, positions, out, result)
        result.batch = _to_batch(out, self.schema)
        return result

    def _score(
        self, frame: pd.DataFrame, at: np.ndarray, out: dict[str, Any], result: ChunkResult
    ) -> None:
        """Fill the score columns of rows ``at`` and the chunk's summary counts."""
        chosen_ids = frame[CHANNEL].astype(str).tolist()
        scored = score(
            self.model,
            self.catalog,
            frame,
            self.costs,
            chosen=chosen_ids,
            constraints=self.constraints,
            num_threads=self.num_threads,
        )
        cands, d, probs = scored.table, scored.decision, scored.probs
        m = len(frame)
        r = np.arange(m)
        chosen = self.channel_index.get_indexer(chosen_ids).astype(np.int64)  # -1: unknown
        known = chosen >= 0
        ch = np.where(known, chosen, 0)

        def at_chosen(a: np.ndarray) -> np.ndarray:
            return np.where(known, a[r, ch], np.nan)

        rec = d.recommended
        has_rec = rec >= 0
        rc = np.where(has_rec, rec, 0)

        def at_rec(a: np.ndarray) -> np.ndarray:
            return np.where(has_rec, a[r, rc], np.nan)

        unknown_p = scored.chosen_unknown or {}
        expected = cents(at_chosen(d.expected_cost))
        rec_expected = cents(at_rec(d.expected_cost))
        comparable = known & d.allowed[r, ch] & has_rec
        countries = frame["destination_country"].tolist()
        support, events = self.model.support_cells(scored.channel_ids, cands.value_usd, countries)
        low = ((support >= 0) & (support < self.support_min)) | (
            (events >= 0) & (events < self.support_min_events)
        )
        absent = absent_cells(frame)
        estimated = price_estimated_rows(absent)
        price, rec_price = at_chosen(cands.price_usd), at_rec(cands.price_usd)
        values: dict[str, Any] = {
            "chosen_eligible": known & cands.eligible[r, ch],
            **{
                f"p_{o}": np.where(known, p[r, ch], unknown_p.get(o, np.nan))
                for o, p in probs.items()
            },
            "price_usd": price,
            "premium_usd": at_chosen(cands.premium_usd),
            "insure": known & d.insure[r, ch],  # no price, no cover: False, as online
            "expected_cost_usd": expected,
            "recommended_channel_id": np.where(has_rec, self.channel_ids[rc], None),
            **{f"recommended_p_{o}": at_rec(p) for o, p in probs.items()},
            "recommended_price_usd": rec_price,
            "recommended_insure": d.insure[r, rc],
            "recommended_expected_cost_usd": rec_expected,
            "saving_usd": np.where(comparable, cents(expected - rec_expected), np.nan),
            "no_recommendation_reason": np.where(has_rec, None, d.reasons),
            "expected_profit_usd": cents(at_chosen(d.expected_profit)),
            "recommended_expected_profit_usd": cents(at_rec(d.expected_profit)),
            "verdict": verdicts(d.best_utility),
            "support": np.where(known, support[r, ch], -1),
            "uncertain": ~known | low[r, ch],  # a channel the model never saw: uncertain
            "recommended_support": np.where(has_rec, support[r, rc], -1),
            "recommended_uncertain": low[r, rc],
            "price_estimated": estimated & ~np.isnan(price),  # no price: nothing estimated
            "recommended_price_estimated": estimated & ~np.isnan(rec_price),
        }
        notes = self.notes.for_rows(
            frame, chosen_ids, scored, chosen, has_rec, self.explain, absent
        )
        self._warn_uncertain(
            notes["warnings"], countries, cands.value_usd, support, events, low, rc, has_rec
        )
        values.update(notes)
        for name, value in values.items():
            out[name][at] = value
        out["_scored"][at] = True
        out["_has_rec"][at] = has_rec

        switched = has_rec & (~known | (rc != ch))
        result.pairs = int(np.count_nonzero(~np.isnan(probs[EVENT_KEYS[0]])))
        result.pairs += int(np.count_nonzero(~known))
        result.warned = int(pd.notna(notes["warnings"]).sum())
        result.kept = int((has_rec & ~switched).sum())
        result.recommended = dict(Counter(self.channel_ids[rc[switched]].tolist()))
        result.no_recommendation = int((~has_rec).sum())
        saving = values["saving_usd"]
        result.saving_usd = float(np.nansum(saving)) if m else 0.0

    def _warn_uncertain(
        self,
        warnings: np.ndarray,
        countries: list[str],
        value_usd: np.ndarray,
        support: np.ndarray,
        events: np.ndarray,
        low: np.ndarray,
        rc: np.ndarray,
        has_rec: np.ndarray,
    ) -> None:
        """Append /score's uncertain-recommendation warning where it applies (same words)."""
        rows = np.flatnonzero(has_rec & low[np.arange(len(rc)), rc])
        if not len(rows):
            return
        tiers = self.model.featurizer.destination_attribute("risk_tier", countries)
        for i in rows:
            j = rc[i]
            found = json.loads(warnings[i]) if warnings[i] is not None else []
            found.append(
                uncertain_warning(
                    str(self.channel_ids[j]),
                    int(support[i, j]),
                    int(events[i, j]),
                    float(value_usd[i]),
                    int(tiers[i]),
                    self.support_min,
                    self.support_min_events,
                )
            )
            warnings[i] = json.dumps(found, ensure_ascii=False)


def _empty_output(n: int, schema: pa.Schema) -> dict[str, Any]:
    """Output columns for n rows, all null; bool columns get a values array + a mask."""
    out: dict[str, Any] = {
        "_scored": np.zeros(n, dtype=bool),
        "_has_rec": np.zeros(n, bool),
    }
    for f in schema:
        if pa.types.is_floating(f.type):
            out[f.name] = np.full(n, np.nan)
        elif pa.types.is_boolean(f.type):
            out[f.name] = np.zeros(n, dtype=bool)
        elif f.name in SUPPORT_COLUMNS:
            out[f.name] = np.full(n, -1, dtype=np.int64)
        elif pa.types.is_integer(f.type):
            out[f.name] = np.zeros(n, dtype=np.int64)
        else:
            out[f.name] = np.full(n, None, dtype=object)
    return out


_BOOL_VALID = {
    "recommended_insure": "_has_rec",
    "recommended_uncertain": "_has_rec",
    "recommended_price_estimated": "_has_rec",
}
"""Which rows a bool column applies to (else null); the rest apply to every scored row."""


def _to_batch(out: dict[str, Any], schema: pa.Schema) -> pa.RecordBatch:
    """The output dict as a record batch of ``schema`` (NaN becomes null, money in cents)."""
    arrays = []
    for f in schema:
        value = out[f.name]
        if pa.types.is_boolean(f.type):
            valid = out[_BOOL_VALID.get(f.name, "_scored")]
            arrays.append(pa.array(value, type=f.type, mask=~valid))
        elif f.name in SUPPORT_COLUMNS:  # -1: no count (not scored, or none recorded)
            arrays.append(pa.array(value, type=f.type, mask=value < 0))
        elif pa.types.is_floating(f.type):
            if f.name in MONEY_COLUMNS:
                value = cents(value)
            arrays.append(pa.array(value, type=f.type, from_pandas=True))
        else:
            arrays.append(pa.array(value, type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


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
