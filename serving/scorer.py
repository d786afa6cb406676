"""In-process scoring of one shipment: features, model, policy, reasons, actions.

This is the request path behind ``POST /score``. It never builds a DataFrame: the request
becomes one plain dict, the pipeline's fast path encodes it on every candidate channel,
LightGBM scores the float array on one thread, and the vectorised policy decides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from shiprisk.data.catalogs import TRACKING_NAMES, Catalog, load_catalog
from shiprisk.data.contract import SHIPMENT_FIELDS, CandidateChannel
from shiprisk.decisions.actions import mitigations
from shiprisk.decisions.candidates import (
    candidate_carriers,
    candidates_for_shipment,
    ineligibility_reasons,
)
from shiprisk.decisions.costs import SellerCosts, resolve_costs
from shiprisk.decisions.policy import blocked_reasons, decide
from shiprisk.models.risk_model import RiskModel
from shiprisk.serving import explain as explain_mod
from shiprisk.serving.schemas import (
    Action,
    ChannelScore,
    ModelRef,
    Reason,
    Recommendation,
    ScoreRequest,
    ScoreResponse,
)
from shiprisk.settings import get_settings

_CHANNEL_LIST = TypeAdapter(list[ChannelScore])


@dataclass
class Scorer:
    """A loaded, verified model plus the catalog and the default seller costs."""

    model: RiskModel
    ref: ModelRef
    catalog: Catalog
    costs: SellerCosts

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
        fields = request.__dict__  # pydantic keeps validated field values here
        record = {f: fields[f] for f in SHIPMENT_FIELDS}
        costs = resolve_costs(self.costs, request.costs)
        warnings = self._warnings(record, request)
        candidates = request.candidates
        if candidates is None and request.channel_id is not None:
            _, eligible_ids = candidates_for_shipment(self.catalog, record, costs)
            extra = [] if request.channel_id in eligible_ids else [request.channel_id]
            ids = [*eligible_ids, *extra]
            candidates = [CandidateChannel(channel_id=c) for c in ids]
        table, ids = candidates_for_shipment(self.catalog, record, costs, candidates)
        if not ids:
            return self._empty(request, warnings, "no channel in the catalog accepts this shipment")

        X = self.model.featurizer.encode_channels(record, ids)
        p_loss, p_reject = self.model.predict_matrix(X, num_threads=1)
        limits = request.constraints
        needs_carriers = limits is not None and limits.allowed_carriers is not None
        carriers = candidate_carriers(self.catalog, table.channel_index) if needs_carriers else None
        decision = decide(
            table, p_loss[None, :], p_reject[None, :], costs, request.constraints, carriers
        )
        requested = {request.channel_id} | {c.channel_id for c in request.candidates or ()}
        refused = (
            ineligibility_reasons(self.catalog, record, ids) if not table.eligible.all() else {}
        )
        blocked = decision.blocked[0].tolist()
        # Whole rows to Python lists once: indexing numpy scalars per field is slow.
        eligible = table.eligible[0].tolist()
        allowed = decision.allowed[0].tolist()
        insure = decision.insure[0].tolist()
        tracking = table.tracking_level[0].tolist()
        loss, reject = p_loss.tolist(), p_reject.tolist()
        price, premium, transit = (
            _nums(a[0]) for a in (table.price_usd, table.premium_usd, table.transit_days)
        )
        expected = _nums(decision.expected_cost[0])
        uninsured = _nums(decision.expected_cost_uninsured[0])
        rows = []
        for k, cid in enumerate(ids):
            ch = self._channel(cid)
            rows.append(
                {
                    "channel_id": cid,
                    "name": ch.name if ch else None,
                    "carrier": ch.carrier if ch else None,
                    "requested": cid in requested,
                    "eligible": eligible[k],
                    "ineligible_reasons": refused.get(cid, []),
                    "allowed": allowed[k],
                    "blocked_reasons": blocked_reasons(blocked[k]),
                    "p_loss": loss[k],
                    "p_reject": reject[k],
                    "price_usd": price[k],
                    "premium_usd": premium[k],
                    "insure": insure[k],
                    "expected_cost_usd": expected[k],
                    "expected_cost_uninsured_usd": uninsured[k],
                    "transit_days": transit[k],
                    "tracking": TRACKING_NAMES[tracking[k]] if ch else None,
                }
            )
        channels = _CHANNEL_LIST.validate_python(rows)  # one pydantic-core call for all rows
        rec = int(decision.recommended[0])
        if rec < 0:
            return self._empty(request, warnings, str(decision.reasons[0]), channels)
        cheap = int(decision.cheapest[0])
        best = channels[rec]
        recommendation = Recommendation(
            channel_id=best.channel_id,
            insure=best.insure,
            p_loss=best.p_loss,
            p_reject=best.p_reject,
            price_usd=best.price_usd or 0.0,
            premium_usd=best.premium_usd,
            expected_cost_usd=best.expected_cost_usd or 0.0,
            cheapest_channel_id=ids[cheap] if cheap >= 0 else None,
            saving_vs_cheapest_usd=_num(decision.saving_vs_cheapest_usd[0]),
        )
        reasons = (
            [Reason(**r.__dict__) for r in self.explain(record, best.channel_id, X[rec])]
            if with_reasons
            else []
        )
        actions = mitigations(
            record,
            destination=self.catalog.destination_by_country.get(record["destination_country"]),
            recommended_channel=self._channel(best.channel_id),
            value_usd=float(table.value_usd[0]),
        )
        return ScoreResponse(
            order_id=request.order_id,
            channels=channels,
            recommendation=recommendation,
            reasons=reasons,
            actions=[Action(**a) for a in actions],
            warnings=warnings,
            model=self.ref,
        )

    def explain(self, record: Mapping[str, Any], channel_id: str, x: Any) -> list[Any]:
        """Top factors behind p_loss and p_reject of ``record`` on ``channel_id``."""
        return explain_mod.explain(self.model, {**record, "channel_id": channel_id}, x)

    # -- helpers ------------------------------------------------------------------------------
    def _channel(self, channel_id: str) -> Any:
        index = self.catalog.channel_index.get(channel_id)
        return None if index is None else self.catalog.channels[index]

    def _warnings(self, record: Mapping[str, Any], request: ScoreRequest) -> list[str]:
        out = []
        country = record["destination_country"]
        if country not in self.catalog.country_index:
            out.append(
                f"destination_country {country} is not in the destination catalog: scored as "
                "an unknown destination (zone 5, risk tier 2); treat the figures with care"
            )
        listed = [request.channel_id, *(c.channel_id for c in request.candidates or ())]
        for cid in dict.fromkeys(c for c in listed if c is not None):
            if cid not in self.catalog.channel_index:
                out.append(
                    f"channel_id {cid} is not in the channel catalog: scored with generic "
                    "channel attributes and never recommended"
                )
            elif not self.model.featurizer.is_known("channel_id", cid):
                out.append(f"channel_id {cid} did not occur in the training data")
        if country in self.catalog.country_index and not self.model.featurizer.is_known(
            "destination_country", country
        ):
            out.append(f"destination_country {country} did not occur in the training data")
        return out

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
            warnings=[*warnings, f"no recommendation: {reason}"],
            model=self.ref,
        )


def _nums(values: Any) -> list[float | None]:
    """JSON-safe floats of a 1-D array: NaN/inf (not applicable) become null."""
    return [v if math.isfinite(v) else None for v in values.tolist()]


def _num(value: Any) -> float | None:
    """JSON-safe float: NaN/inf (not applicable) become null."""
    value = float(value)
    return value if math.isfinite(value) else None
