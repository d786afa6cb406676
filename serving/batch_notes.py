"""Batch scoring, the words per row: warnings, why there is no saving, reasons and actions.

The same texts ``POST /score`` answers with (:mod:`shiprisk.serving.notices`,
:func:`~shiprisk.decisions.candidates.ineligibility_reasons`, :mod:`shiprisk.serving.explain`,
:func:`~shiprisk.decisions.action_savings.measured_actions`), laid out as text columns: lists
are JSON.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shiprisk.data.catalogs import Catalog
from shiprisk.data.contract import OPTIONAL_FIELDS, SHIPMENT_FIELDS
from shiprisk.data.extras import PREFIX
from shiprisk.data.outcomes import EVENTS
from shiprisk.decisions.action_savings import measured_actions, recommended_shipments
from shiprisk.decisions.candidates import ineligibility_reasons
from shiprisk.decisions.policy import blocked_reasons
from shiprisk.serving.missing import absent_decision_warnings, absent_field_warnings
from shiprisk.serving.notices import no_recommendation_warning, shipment_warnings

if TYPE_CHECKING:
    from shiprisk.decisions.costs import SellerCosts
    from shiprisk.decisions.scoring import Scored
    from shiprisk.models.risk_model import RiskModel


def unknown_channel_note(channel_id: str) -> str:
    return f"chosen channel {channel_id} is not in the channel catalog: no price or expected cost"


class RowNotes:
    """Per-row texts of one chunk; warnings are cached per (country, channel) and per
    pattern of absent fields."""

    def __init__(self, model: RiskModel, catalog: Catalog, costs: SellerCosts) -> None:
        self.model = model
        self.catalog = catalog
        self.costs = costs
        self._warnings: dict[tuple[str, str], list[str]] = {}
        self._absent: dict[tuple[bytes, bool], list[str]] = {}

    def warnings(self, country: str, channel_id: str) -> list[str]:
        key = (country, channel_id)
        if key not in self._warnings:
            self._warnings[key] = shipment_warnings(
                self.catalog, self.model.featurizer, country, [channel_id]
            )
        return self._warnings[key]

    def absent_warnings(self, row: np.ndarray, recommended: bool) -> list[str]:
        """/score's warnings about the absent fields of one row (a row of ``absent_cells``):
        what the model scored as unknown, what price and eligibility could not check, and
        whether that makes the recommendation less certain."""
        key = (np.packbits(row).tobytes(), recommended)
        if key not in self._absent:
            gone = [f for f, out in zip(OPTIONAL_FIELDS, row, strict=True) if out]
            self._absent[key] = [
                *absent_field_warnings(gone, self.model.featurizer.fields_),
                *absent_decision_warnings(gone, recommended),
            ]
        return self._absent[key]

    def for_rows(
        self,
        frame: pd.DataFrame,
        chosen_ids: list[str],
        scored: Scored,
        chosen: np.ndarray,
        has_rec: np.ndarray,
        explain: bool,
        absent: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """``warnings``, ``no_saving_reason`` (and ``reasons``/``actions``) for ``frame``;
        ``absent``: its ``absent_cells``."""
        m = len(frame)
        d = scored.decision
        countries = frame["destination_country"].astype(str).tolist()
        reasons = d.reasons
        warnings = np.full(m, None, dtype=object)
        for i in range(m):
            found = self.warnings(countries[i], chosen_ids[i])
            found = [*found, *self.absent_warnings(absent[i], bool(has_rec[i]))]
            if not has_rec[i]:
                found = [*found, no_recommendation_warning(str(reasons[i]))]
            if found:
                warnings[i] = json.dumps(found, ensure_ascii=False)

        no_saving = np.full(m, None, dtype=object)
        known = chosen >= 0
        ch = np.where(known, chosen, 0)
        r = np.arange(m)
        ineligible = known & ~scored.table.eligible[r, ch]
        blocked = known & ~ineligible & ~d.allowed[r, ch]
        records: list[dict[str, Any]] | None = None
        if ineligible.any() or blocked.any() or explain:
            records = self._records(frame)
        for i in np.flatnonzero(~known & has_rec):
            no_saving[i] = unknown_channel_note(chosen_ids[i])
        for i in np.flatnonzero(ineligible & has_rec):
            why = ineligibility_reasons(self.catalog, records[i], [chosen_ids[i]])  # type: ignore[index]
            no_saving[i] = f"chosen channel {chosen_ids[i]} does not accept this shipment: " + (
                "; ".join(why.get(chosen_ids[i], ["not eligible"]))
            )
        if blocked.any():
            masks = d.blocked[r, ch]
            for i in np.flatnonzero(blocked & has_rec):
                no_saving[i] = (
                    f"chosen channel {chosen_ids[i]} is outside the seller's constraints: "
                    + "; ".join(blocked_reasons(int(masks[i])))
                )
        out = {"warnings": warnings, "no_saving_reason": no_saving}
        if explain:
            out.update(self._explain(records or [], scored, has_rec, chosen_ids))
        return out

    def _records(self, frame: pd.DataFrame) -> list[dict[str, Any]]:
        """The rows as /score's records: contract fields (an optional column the file lacks:
        unknown, NaN), the model's extras under ``extra`` and the cost-side sale value."""
        records = frame.reindex(columns=list(SHIPMENT_FIELDS)).to_dict("records")
        specs = self.model.featurizer.extras_
        present = [name for name in specs if PREFIX + name in frame]
        if present:
            columns = {name: frame[PREFIX + name].tolist() for name in present}
            for i, record in enumerate(records):
                record["extra"] = {name: values[i] for name, values in columns.items()}
        if "sale_value" in frame:
            for record, sale in zip(records, frame["sale_value"].tolist(), strict=True):
                record["sale_value"] = sale
        return records

    def _explain(
        self,
        records: list[dict[str, Any]],
        scored: Scored,
        has_rec: np.ndarray,
        chosen_ids: list[str],
    ) -> dict[str, np.ndarray]:
        """/score's ``reasons`` and ``actions`` for the recommended channel ("[]": none); the
        chunk's actions are measured in one scoring-path call."""
        from shiprisk.serving import explain as explain_mod

        m = len(records)
        reasons = np.full(m, "[]", dtype=object)
        actions = np.full(m, "[]", dtype=object)
        ids = self.catalog.channel_ids
        rec = scored.decision.recommended
        for i in np.flatnonzero(has_rec):
            record = records[i]
            channel_id = ids[int(rec[i])]
            x = self.model.featurizer.encode_channels(record, [channel_id])[0]
            found = [
                *explain_mod.channel_comparison(
                    self._channel_rows(scored, i), int(rec[i]), int(scored.decision.cheapest[i])
                ),
                *explain_mod.explain(self.model, {**record, "channel_id": channel_id}, x),
            ]
            reasons[i] = json.dumps([r.__dict__ for r in found], ensure_ascii=False, default=float)
        shipments = recommended_shipments(scored, records, chosen=chosen_ids)
        measured = measured_actions(self.model, self.catalog, list(shipments.values()), self.costs)
        for i, todo in zip(shipments, measured, strict=True):
            actions[i] = json.dumps([a.__dict__ for a in todo], ensure_ascii=False)
        return {"reasons": reasons, "actions": actions}

    def _channel_rows(self, scored: Scored, i: int) -> list[SimpleNamespace]:
        """Row ``i``'s channels shaped like /score's answer rows, for the channel comparison."""
        allowed = scored.decision.allowed[i]
        return [
            SimpleNamespace(
                channel_id=cid,
                allowed=bool(allowed[j]),
                **{
                    o.probability: (float(p[i, j]) if np.isfinite(p[i, j]) else None)
                    for o, p in ((o, scored.probs[o.key]) for o in EVENTS)
                },
            )
            for j, cid in enumerate(self.catalog.channel_ids)
        ]
