"""In-process scoring of one shipment: features, model, policy, reasons, actions.

This is the request path behind ``POST /score`` and ``POST /score_batch``: the requests
become plain dicts and go through the one scoring path (``decisions/scoring.py``); this module
only turns its arrays into answers (rows, recommendation, reasons, actions, warnings). One
shipment never builds a DataFrame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from shiprisk.data.catalogs import TRACKING_NAMES, Catalog, load_catalog
from shiprisk.data.contract import SHIPMENT_FIELDS
from shiprisk.data.outcomes import EVENTS
from shiprisk.decisions.action_savings import measured_actions, recommended_shipments
from shiprisk.decisions.alternatives import alternatives, no_channel_reason, verdict
from shiprisk.decisions.candidates import ineligibility_reasons
from shiprisk.decisions.costs import SellerCosts, cents, resolve_costs
from shiprisk.decisions.policy import blocked_reasons
from shiprisk.decisions.scoring import Scored, score
from shiprisk.models.risk_model import RiskModel
from shiprisk.serving import explain as explain_mod
from shiprisk.serving.extras import check_extra
from shiprisk.serving.missing import decision_warnings, field_warnings, price_estimated
from shiprisk.serving.notices import (
    no_recommendation_warning,
    shipment_warnings,
    uncertain_warning,
)
from shiprisk.serving.schemas import (
    Action,
    Alternative,
    CatalogRef,
    ChannelScore,
    ModelRef,
    Reason,
    Recommendation,
    ScoreRequest,
    ScoreResponse,
)
from shiprisk.settings import get_settings

_CHANNEL_LIST = TypeAdapter(list[ChannelScore])
_PROBABILITIES = tuple(o.probability for o in EVENTS)


@dataclass
class Scorer:
    """A loaded, verified model plus the catalog and the default seller costs."""

    model: RiskModel
    ref: ModelRef
    catalog: Catalog
    costs: SellerCosts
    support_min: int | None = None
    """Fewer training shipments in a channel's cell: the answer is flagged uncertain
    (default: ``settings.support_min``)."""
    support_min_events: int | None = None
    """Fewer training events of any outcome there: also uncertain (settings' default)."""

    def __post_init__(self) -> None:
        if self.support_min is None:
            self.support_min = get_settings().support_min
        if self.support_min_events is None:
            self.support_min_events = get_settings().support_min_events

    def _uncertain(self, shipments: int, events: int) -> bool:
        """Few comparable training shipments or events (-1: the model records none)."""
        return 0 <= shipments < self.support_min or 0 <= events < self.support_min_events

    @classmethod
    def from_directory(
        cls,
        directory: Path,
        ref: ModelRef,
        costs: SellerCosts | None = None,
        *,
        compile_trees: bool | None = None,
    ) -> Scorer:
        """Load (checksums verified, trees compiled unless the settings say not), then warm
        up, so the first request is not slow."""
        if compile_trees is None:
            compile_trees = get_settings().compiled_trees
        model = RiskModel.load(directory, compile_trees=compile_trees)
        scorer = cls(model, ref, load_catalog(), costs or SellerCosts())
        scorer.warm_up()
        return scorer

    def warm_up(self) -> None:
        from shiprisk.data.contract import example_request

        self.score(ScoreRequest.model_validate(example_request()))

    # -- the request path -------------------------------------------------------------------
    def score(self, request: ScoreRequest, *, with_reasons: bool = True) -> ScoreResponse:
        """One shipment: the scoring path's single-shipment fast path."""
        return self._score_group([request], with_reasons)[0]

    def score_many(
        self, requests: Sequence[ScoreRequest], *, with_reasons: bool = True
    ) -> list[ScoreResponse]:
        """Several shipments, one call to the scoring path per distinct costs/constraints
        (usually one: a batch shares them), answers in request order."""
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            key = "" if r.costs is None and r.constraints is None else _settings_key(r)
            groups.setdefault(key, []).append(i)
        out: list[ScoreResponse | None] = [None] * len(requests)
        for members in groups.values():
            batch = [requests[i] for i in members]
            for i, answer in zip(members, self._score_group(batch, with_reasons), strict=True):
                out[i] = answer
        return out  # type: ignore[return-value]

    def _score_group(self, requests: list[ScoreRequest], with_reasons: bool) -> list[ScoreResponse]:
        records = [_record(r) for r in requests]
        extra_warnings = self._extras(requests, records)
        costs = resolve_costs(self.costs, requests[0].costs)
        scored = score(
            self.model,
            self.catalog,
            records,
            costs,
            candidates=[r.candidates for r in requests],
            chosen=[r.channel_id for r in requests],
            constraints=requests[0].constraints,
            num_threads=1,
        )
        answers = [
            self._answer(r, record, scored, i, with_reasons)
            for i, (r, record) in enumerate(zip(requests, records, strict=True))
        ]
        # What the seller can do, each action re-scored: one more scoring-path call per group.
        shipments = recommended_shipments(
            scored,
            records,
            chosen=[r.channel_id for r in requests],
            candidates=[r.candidates for r in requests],
        )
        found = measured_actions(self.model, self.catalog, list(shipments.values()), costs)
        for i, actions in zip(shipments, found, strict=True):
            answers[i].actions = [Action(**a.__dict__) for a in actions]
        # Say why, and what would make the order pay: one more scoring-path call per group.
        pending = [i for i, answer in enumerate(answers) if answer.verdict not in (None, "ship")]
        if pending:
            options = alternatives(
                self.model,
                self.catalog,
                [records[i] for i in pending],
                costs,
                requests[0].constraints,
            )
            for i, found in zip(pending, options, strict=True):
                self._explain_verdict(answers[i], records[i], found)
        for answer, notes in zip(answers, extra_warnings, strict=True):
            answer.warnings[:0] = notes
        return answers

    def _extras(self, requests: list[ScoreRequest], records: list[dict[str, Any]]) -> list:
        """Each request's ``extra`` checked against the model's (into its record); warnings."""
        specs = self.model.featurizer.extras_
        ignore = get_settings().unknown_fields == "ignore"
        notes = []
        for i, (request, record) in enumerate(zip(requests, records, strict=True)):
            where = "extra" if len(requests) == 1 else f"shipments.{i}.extra"
            record["extra"], warned = check_extra(
                request.extra, specs, ignore_unknown=ignore, where=where
            )
            notes.append(warned)
        return notes

    def _explain_verdict(
        self, answer: ScoreResponse, record: dict[str, Any], found: list[Any]
    ) -> None:
        if answer.verdict == "no_channel" and not any(c.eligible for c in answer.channels):
            answer.verdict_reason = no_channel_reason(self.catalog, record)
        elif answer.verdict == "do_not_ship_as_is":
            answer.verdict_reason = (
                "every option's expected profit is negative: shipping as is loses money"
            )
        answer.alternatives = [Alternative(**a.__dict__) for a in found]

    def _answer(
        self,
        request: ScoreRequest,
        record: dict[str, Any],
        scored: Scored,
        i: int,
        with_reasons: bool,
    ) -> ScoreResponse:
        noted = self._warnings(record, request)
        warnings = [*noted, *decision_warnings(record, False)]  # without a recommendation
        ids = scored.ids_of(i)
        if not ids:
            answer = self._empty(
                request, warnings, "no channel in the catalog accepts this shipment"
            )
            answer.verdict = "no_channel"
            return answer
        k = len(ids)
        table, decision = scored.table, scored.decision
        requested = {request.channel_id} | {c.channel_id for c in request.candidates or ()}
        eligible = table.eligible[i, :k].tolist()
        refused = ineligibility_reasons(self.catalog, record, ids) if not all(eligible) else {}
        blocked = decision.blocked[i, :k].tolist()
        # Whole rows to Python lists once: indexing numpy scalars per field is slow.
        allowed = decision.allowed[i, :k].tolist()
        insure = decision.insure[i, :k].tolist()
        tracking = table.tracking_level[i, :k].tolist()
        columns = [scored.probs[o.key][i, :k].tolist() for o in EVENTS]
        probs = [dict(zip(_PROBABILITIES, row, strict=True)) for row in zip(*columns, strict=True)]
        price, premium, transit = (
            _nums(a[i, :k]) for a in (table.price_usd, table.premium_usd, table.transit_days)
        )
        estimated = price_estimated(record)
        quoted = {c.channel_id for c in request.candidates or () if c.quoted_price_usd is not None}
        expected = _nums(decision.expected_cost[i, :k])
        country = [record["destination_country"]]
        at_i = table.value_usd[i : i + 1]
        cells = np.array([ids], dtype=object)
        support, events = (c[0].tolist() for c in self.model.support_cells(cells, at_i, country))
        uninsured = _nums(decision.expected_cost_uninsured[i, :k])
        profit = _nums(decision.expected_profit[i, :k])
        certain = _nums(decision.utility[i, :k])
        rows = []
        for j, cid in enumerate(ids):
            ch = self._channel(cid)
            rows.append(
                {
                    "channel_id": cid,
                    "name": ch.name if ch else None,
                    "carrier": ch.carrier if ch else None,
                    "requested": cid in requested,
                    "eligible": eligible[j],
                    "ineligible_reasons": refused.get(cid, []),
                    "allowed": allowed[j],
                    "blocked_reasons": blocked_reasons(blocked[j]),
                    **probs[j],
                    "price_usd": price[j],
                    "price_estimated": estimated and cid not in quoted and price[j] is not None,
                    "premium_usd": premium[j],
                    "insure": insure[j],
                    "expected_cost_usd": expected[j],
                    "expected_cost_uninsured_usd": uninsured[j],
                    "transit_days": transit[j],
                    "tracking": TRACKING_NAMES[tracking[j]] if ch else None,
                    "expected_profit_usd": profit[j],
                    "certainty_equivalent_usd": certain[j],
                    "support": support[j] if support[j] >= 0 else None,
                    "support_events": events[j] if events[j] >= 0 else None,
                    "uncertain": self._uncertain(support[j], events[j]),
                }
            )
        channels = _CHANNEL_LIST.validate_python(rows)  # one pydantic-core call for all rows
        rec = int(decision.recommended[i])
        if rec < 0:
            answer = self._empty(request, warnings, str(decision.reasons[i]), channels)
            answer.verdict = "no_channel" if not any(eligible) else None
            return answer
        cheap = int(decision.cheapest[i])
        best = channels[rec]
        recommendation = Recommendation(
            channel_id=best.channel_id,
            insure=best.insure,
            **{o.probability: getattr(best, o.probability) for o in EVENTS},
            price_usd=best.price_usd or 0.0,
            premium_usd=best.premium_usd,
            expected_cost_usd=best.expected_cost_usd or 0.0,
            cheapest_channel_id=ids[cheap] if cheap >= 0 else None,
            saving_vs_cheapest_usd=_saving(channels, cheap, best.expected_cost_usd),
            expected_profit_usd=best.expected_profit_usd,
            certainty_equivalent_usd=_num(decision.best_utility[i]),
            support=best.support,
            uncertain=best.uncertain,
        )
        warnings = [*noted, *decision_warnings(record, True)]  # the decision is less certain
        if best.uncertain:
            warnings.append(self._uncertain_warning(best, float(table.value_usd[i]), record))
        reasons = []
        if with_reasons:
            x = (
                scored.X[rec]
                if scored.X is not None
                else self.model.featurizer.encode_channels(record, [best.channel_id])[0]
            )
            found = [
                *explain_mod.channel_comparison(channels, rec, cheap),
                *self.explain(record, best.channel_id, x),
            ]
            reasons = [Reason(**r.__dict__) for r in found]
        return ScoreResponse(
            order_id=request.order_id,
            channels=channels,
            recommendation=recommendation,
            reasons=reasons,
            actions=[],  # measured for the whole group in _score_group
            warnings=warnings,
            model=self.ref,
            catalog=self.catalog_ref,
            sources=self.model.sources,
            verdict=verdict(_num(decision.best_utility[i])),
        )

    def explain(self, record: Mapping[str, Any], channel_id: str, x: Any) -> list[Any]:
        """Top factors behind p_loss and p_reject of ``record`` on ``channel_id``."""
        return explain_mod.explain(self.model, {**record, "channel_id": channel_id}, x)

    # -- helpers ------------------------------------------------------------------------------
    def _uncertain_warning(self, best: Any, value_usd: float, record: Mapping[str, Any]) -> str:
        country = [record["destination_country"]]
        tier = int(self.model.featurizer.destination_attribute("risk_tier", country)[0])
        return uncertain_warning(
            best.channel_id,
            best.support,
            best.support_events,
            value_usd,
            tier,
            self.support_min,
            self.support_min_events,
        )

    @property
    def catalog_ref(self) -> CatalogRef:
        """The catalog every answer names (version, bundled or the seller's, origin)."""
        c = self.catalog
        return CatalogRef(version=c.version, source=c.source, origin=c.origin)

    def _channel(self, channel_id: str) -> Any:
        index = self.catalog.channel_index.get(channel_id)
        return None if index is None else self.catalog.channels[index]

    def _warnings(self, record: Mapping[str, Any], request: ScoreRequest) -> list[str]:
        listed = [request.channel_id, *(c.channel_id for c in request.candidates or ())]
        return [
            *shipment_warnings(
                self.catalog, self.model.featurizer, record["destination_country"], listed
            ),
            *field_warnings(record, self.model.featurizer.fields_),
        ]

    def _empty(
        self,
        request: ScoreRequest,
        warnings: list[str],
        reason: str,
        channels: list[ChannelScore] | None = None,
    ) -> ScoreResponse:
        return ScoreResponse(
            order_id=request.order_id,
            channels=channels or [],
            recommendation=None,
            no_recommendation_reason=reason,
            reasons=[],
            actions=[],
            warnings=[*warnings, no_recommendation_warning(reason)],
            model=self.ref,
            catalog=self.catalog_ref,
            sources=self.model.sources,
        )


def _record(request: ScoreRequest) -> dict[str, Any]:
    """The contract fields of a request, plus its optional sale value (cost side only)."""
    record = {f: request.__dict__[f] for f in SHIPMENT_FIELDS}
    if request.sale_value is not None:
        record["sale_value"] = request.sale_value
    return record


def _settings_key(request: ScoreRequest) -> str:
    """Requests with equal cost overrides and constraints are decided together."""
    costs = request.costs.model_dump_json(exclude_unset=True) if request.costs else ""
    limits = request.constraints.model_dump_json() if request.constraints else ""
    return f"{costs}|{limits}"


def _saving(channels: list[Any], cheap: int, best: float | None) -> float | None:
    """Cheapest channel's expected cost minus the recommendation's, from the rounded figures
    shown (so the answer adds up to the cent); the decision was taken on exact costs."""
    other = channels[cheap].expected_cost_usd if cheap >= 0 else None
    return None if other is None or best is None else cents(other - best)


def _num(value: Any) -> float | None:
    """JSON-safe float: NaN/inf (not applicable) become null."""
    value = float(value)
    return value if math.isfinite(value) else None


def _nums(values: Any) -> list[float | None]:
    """JSON-safe floats of a 1-D array: NaN/inf (not applicable) become null."""
    return [v if math.isfinite(v) else None for v in values.tolist()]
