"""Batch scoring, one chunk: validate, score through the one scoring path, lay out the rows.

The output columns are documented in :mod:`shiprisk.serving.batch`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
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
from shiprisk.decisions.candidates import (
    UNKNOWN_CHANNEL_REASON,
)
from shiprisk.decisions.costs import Constraints, SellerCosts
from shiprisk.decisions.scoring import score
from shiprisk.settings import get_settings

if TYPE_CHECKING:  # LightGBM is imported only where a model is loaded (see _init_worker)
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
        ("support", pa.int64()),
        ("uncertain", pa.bool_()),
        ("recommended_support", pa.int64()),
        ("recommended_uncertain", pa.bool_()),
    ]
)
OUTPUT_COLUMNS: tuple[str, ...] = tuple(OUTPUT_SCHEMA.names)
REC_BOOLS = ("recommended_insure", "recommended_uncertain")
SUPPORT_COLUMNS = ("support", "recommended_support")
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
        self.support_min = get_settings().support_min
        self.support_min_events = get_settings().support_min_events

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
        bad_text = (
            np.zeros(n, dtype=bool)
            if chunk.undecodable is None
            else pd.notna(chunk.undecodable).astype(bool)
        )
        skip = chunk.duplicate | bad_text  # never scored: an error row each
        ok = checked.valid_mask & ~skip
        valid = checked.valid
        keep = ~skip[checked.valid_mask]
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
        scored = score(
            self.model,
            self.catalog,
            frame,
            self.costs,
            chosen=frame[CHANNEL].tolist(),
            constraints=self.constraints,
            num_threads=self.num_threads,
        )
        cands, d, probs = scored.table, scored.decision, scored.probs
        r = np.arange(len(frame))

        rec = d.recommended
        has_rec = rec >= 0
        rc = np.where(has_rec, rec, 0)

        def at_rec(a: np.ndarray) -> np.ndarray:
            return np.where(has_rec, a[r, rc], np.nan)

        expected = d.expected_cost[r, chosen]
        support = self.model.support_of(
            scored.channel_ids, cands.value_usd, frame["destination_country"].tolist()
        )
        events = self.model.support_events_of(
            scored.channel_ids, cands.value_usd, frame["destination_country"].tolist()
        )
        low = ((support >= 0) & (support < self.support_min)) | (
            (events >= 0) & (events < self.support_min_events)
        )
        rec_expected = at_rec(d.expected_cost)
        values: dict[str, Any] = {
            "chosen_eligible": cands.eligible[r, chosen],
            **{f"p_{o}": p[r, chosen] for o, p in probs.items()},
            "price_usd": cands.price_usd[r, chosen],
            "premium_usd": cands.premium_usd[r, chosen],
            "insure": d.insure[r, chosen],
            "expected_cost_usd": expected,
            "recommended_channel_id": np.where(has_rec, self.channel_ids[rc], None),
            **{f"recommended_p_{o}": at_rec(p) for o, p in probs.items()},
            "recommended_price_usd": at_rec(cands.price_usd),
            "recommended_insure": d.insure[r, rc],
            "recommended_expected_cost_usd": rec_expected,
            "saving_usd": expected - rec_expected,
            "no_recommendation_reason": np.where(has_rec, None, d.reasons),
            "support": support[r, chosen],
            "uncertain": low[r, chosen],
            "recommended_support": np.where(has_rec, support[r, rc], -1),
            "recommended_uncertain": low[r, rc],
        }
        for name, value in values.items():
            out[name][at] = value
        out["_scored"][at] = True
        out["_has_rec"][at] = has_rec
        return int(np.count_nonzero(~np.isnan(probs[EVENT_KEYS[0]])))


def _empty_output(n: int) -> dict[str, Any]:
    """Output columns for n rows, all null; bool columns get a values array + a mask."""
    out: dict[str, Any] = {"_scored": np.zeros(n, dtype=bool), "_has_rec": np.zeros(n, bool)}
    for f in OUTPUT_SCHEMA:
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


def _to_batch(out: dict[str, Any]) -> pa.RecordBatch:
    """The output dict as a record batch of :data:`OUTPUT_SCHEMA` (NaN becomes null)."""
    arrays = []
    for f in OUTPUT_SCHEMA:
        value = out[f.name]
        if pa.types.is_boolean(f.type):
            valid = out["_has_rec"] if f.name in REC_BOOLS else out["_scored"]
            arrays.append(pa.array(value, type=f.type, mask=~valid))
        elif f.name in SUPPORT_COLUMNS:  # -1: no count (not scored, or none recorded)
            arrays.append(pa.array(value, type=f.type, mask=value < 0))
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
