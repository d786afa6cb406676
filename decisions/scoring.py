"""The one scoring path: shipments x candidate channels -> probabilities, costs, decision.

``POST /score``, ``POST /score_batch``, ``shiprisk score-open``, the training-side decision
evaluation and the benchmarks all call :func:`score`; none of them featurizes, predicts, fills
the shipments x channels grid or decides on its own. Two input shapes, one result:

* contract records (the online path): each shipment with its own candidate list (listed
  channels, else the eligible ones). One shipment takes the DataFrame-free fast path (encoded
  once, repeated per channel), bit-identical to the batch arithmetic;
* a validated DataFrame (batch, evaluation): every catalog channel, scored where eligible
  (plus each row's ``chosen`` channel, even when ineligible, so it can be reported).

Either way the model is called once for all (shipment, channel) pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from shiprisk.data.catalogs import Catalog
from shiprisk.data.outcomes import EVENT_KEYS
from shiprisk.decisions.candidates import (
    CandidateTable,
    build_candidates,
    candidate_carriers,
    candidates_for_shipment,
    quote_arrays,
    shipment_arrays,
    shipment_terms,
)
from shiprisk.decisions.costs import Constraints, SellerCosts
from shiprisk.decisions.policy import Decision, decide
from shiprisk.models.risk_model import RiskModel


@dataclass
class Scored:
    """The scoring path's answer for n shipments x K candidate columns."""

    table: CandidateTable
    """Eligibility, price, insurance terms, transit of every (shipment, candidate)."""
    channel_ids: np.ndarray
    """(n, K) object: the candidate in each column ('' where a shipment has fewer)."""
    probs: dict[str, np.ndarray]
    """(n, K) per event of the outcome spec; NaN where not scored."""
    decision: Decision
    X: np.ndarray | None = None
    """Feature rows of a single shipment's candidates (reasons need them); else None."""
    chosen_unknown: dict[str, np.ndarray] | None = None
    """Frame path: (n,) per event, the probability on each row's chosen channel where that
    channel is not in the catalog (scored with generic channel attributes, as online); NaN
    elsewhere. None when no row chose an unknown channel."""

    def ids_of(self, i: int) -> list[str]:
        """Shipment ``i``'s candidate ids (padding dropped)."""
        return [c for c in self.channel_ids[i].tolist() if c]


def score(
    model: RiskModel,
    catalog: Catalog,
    shipments: Any,
    costs: SellerCosts,
    *,
    candidates: Sequence[Sequence[Mapping[str, Any] | BaseModel] | None] | None = None,
    chosen: Sequence[str | None] | None = None,
    constraints: Constraints | None = None,
    num_threads: int = 1,
) -> Scored:
    """Score ``shipments`` on their candidate channels and decide.

    ``shipments``: a list of contract records (online) or a validated DataFrame (batch).
    ``candidates`` (records only): per shipment, a list of ``CandidateChannel``-shaped
    entries, or None for that shipment's eligible channels. ``chosen``: per shipment, the
    seller's channel id (or None), scored even when ineligible or unknown so it can be
    reported; it is never recommended unless eligible.
    """
    if hasattr(shipments, "columns"):
        return _score_frame(model, catalog, shipments, costs, constraints, chosen, num_threads)
    return _score_records(
        model, catalog, list(shipments), costs, candidates, chosen, constraints, num_threads
    )


def _decide(
    catalog: Catalog,
    table: CandidateTable,
    probs: dict[str, np.ndarray],
    costs: SellerCosts,
    constraints: Constraints | None,
) -> Decision:
    needs_carriers = constraints is not None and constraints.allowed_carriers is not None
    carriers = candidate_carriers(catalog, table.channel_index) if needs_carriers else None
    return decide(table, probs, costs, constraints, carriers)


def _score_frame(
    model: RiskModel,
    catalog: Catalog,
    frame: Any,
    costs: SellerCosts,
    constraints: Constraints | None,
    chosen: Sequence[str | None] | None,
    num_threads: int,
) -> Scored:
    ids = np.asarray(catalog.channel_ids, dtype=object)
    n, k = len(frame), len(ids)
    arrays = shipment_arrays(catalog, frame)
    arrays.update(shipment_terms(catalog, frame, arrays["value_usd"]))
    table = build_candidates(catalog, **arrays, costs=costs)
    wanted = table.eligible.copy()
    unknown = np.empty(0, dtype=np.int64)
    if chosen is not None:
        index = np.fromiter(
            (catalog.channel_index.get(c, -1) if c else -1 for c in chosen), np.int64, n
        )
        rows = np.flatnonzero(index >= 0)
        wanted[rows, index[rows]] = True  # reported even when ineligible
        unknown = np.flatnonzero((index < 0) & np.fromiter((bool(c) for c in chosen), bool, n))
    pair_rows, pair_cols = np.nonzero(wanted)
    pair_ids = ids[pair_cols]
    if unknown.size:  # the seller's unknown channel: scored too, in the same model call
        pair_rows = np.concatenate([pair_rows, unknown])
        pair_ids = np.concatenate([pair_ids, np.asarray(chosen, dtype=object)[unknown]])
    probs = {o: np.full((n, k), np.nan) for o in EVENT_KEYS}
    chosen_unknown = None
    if len(pair_rows):
        X = model.featurizer.transform_pairs(frame, pair_rows, pair_ids)
        split = len(pair_cols)
        predicted = model.predict_matrix(X, num_threads=num_threads)
        for o, p in predicted.items():
            probs[o][pair_rows[:split], pair_cols] = p[:split]
        if unknown.size:
            chosen_unknown = {o: np.full(n, np.nan) for o in EVENT_KEYS}
            for o, p in predicted.items():
                chosen_unknown[o][unknown] = p[split:]
    decision = _decide(catalog, table, probs, costs, constraints)
    return Scored(
        table, np.broadcast_to(ids, (n, k)), probs, decision, chosen_unknown=chosen_unknown
    )


def _score_records(
    model: RiskModel,
    catalog: Catalog,
    records: list[Mapping[str, Any]],
    costs: SellerCosts,
    candidates: Sequence[Sequence[Mapping[str, Any] | BaseModel] | None] | None,
    chosen: Sequence[str | None] | None,
    constraints: Constraints | None,
    num_threads: int,
) -> Scored:
    n = len(records)
    listed = list(candidates) if candidates is not None else [None] * n
    extra = list(chosen) if chosen is not None else [None] * n
    if n == 1:  # the online case: one shipment, no padding bookkeeping
        table, ids = candidates_for_shipment(catalog, records[0], costs, listed[0])
        if listed[0] is None and extra[0] and extra[0] not in ids:  # report the seller's pick
            entries = [{"channel_id": c} for c in (*ids, extra[0])]
            table, ids = candidates_for_shipment(catalog, records[0], costs, entries)
        return _score_one(model, catalog, records[0], table, ids, costs, constraints, num_threads)
    arrays = shipment_arrays(catalog, records)
    terms = shipment_terms(catalog, records, arrays["value_usd"])
    every = None
    if any(c is None for c in listed):  # (n, C): who is eligible
        every = build_candidates(catalog, **arrays, costs=costs)
    per_shipment: list[list[str]] = []
    for i in range(n):
        if listed[i] is not None or every is None:
            ids = [c.channel_id if isinstance(c, BaseModel) else c["channel_id"] for c in listed[i]]
        else:
            ids = [catalog.channel_ids[j] for j in np.flatnonzero(every.eligible[i])]
            if extra[i] and extra[i] not in ids:
                ids.append(extra[i])
        per_shipment.append(ids)
    width = max((len(ids) for ids in per_shipment), default=0)
    channel_ids = np.full((n, width), "", dtype=object)
    for i, ids in enumerate(per_shipment):
        channel_ids[i, : len(ids)] = ids
    index = np.array(
        [[catalog.channel_index.get(c, -1) for c in row] for row in channel_ids.tolist()],
        dtype=np.int64,
    ).reshape(n, width)
    quotes = quote_arrays(listed, width)
    table = build_candidates(catalog, **arrays, **terms, channel_index=index, costs=costs, **quotes)
    probs = {o: np.full((n, width), np.nan) for o in EVENT_KEYS}
    if width:  # every (shipment, listed channel) pair in one model call
        rows, cols = np.nonzero(channel_ids != "")
        pairs = [
            {**records[r], "channel_id": channel_ids[r, c]}
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ]
        X_pairs = model.featurizer.transform_records(pairs)
        for o, p in model.predict_matrix(X_pairs, num_threads=num_threads).items():
            probs[o][rows, cols] = p
    decision = _decide(catalog, table, probs, costs, constraints)
    return Scored(table, channel_ids, probs, decision)


def _score_one(
    model: RiskModel,
    catalog: Catalog,
    record: Mapping[str, Any],
    table: CandidateTable,
    ids: list[str],
    costs: SellerCosts,
    constraints: Constraints | None,
    num_threads: int,
) -> Scored:
    """One shipment on its eligible channels: encoded once (no DataFrame), one model call.

    The same arithmetic as the batch path (``tests/serving/test_scorer.py`` checks it to
    1e-12), without the padding bookkeeping a batch of shipments needs."""
    channel_ids = np.array([ids], dtype=object).reshape(1, len(ids))
    X = None
    if ids:
        X = model.featurizer.encode_channels(record, ids)
        probs = {o: p[None, :] for o, p in model.predict_matrix(X, num_threads).items()}
    else:
        probs = {o: np.empty((1, 0)) for o in EVENT_KEYS}
    decision = _decide(catalog, table, probs, costs, constraints)
    return Scored(table, channel_ids, probs, decision, X)
