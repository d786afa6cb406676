"""Decision policy: expected cost per channel, insure or not, recommended channel.

A pure module (numpy only, no model, no BentoML) shared by every scoring path. Everything is
laid out as ``(n, K)`` arrays (shipments x candidate channels,
:func:`shiprisk.decisions.candidates.build_candidates`); :func:`decide` adds one probability
array per event of the outcome spec and returns a :class:`Decision`. The cost model and its
defaults are written up in ``docs/policy.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from shiprisk.data.catalogs import TRACKING_LEVELS
from shiprisk.data.outcomes import EVENTS
from shiprisk.decisions.candidates import CandidateTable
from shiprisk.decisions.costs import Constraints, SellerCosts

# -- decision --------------------------------------------------------------------------------

BLOCK_INELIGIBLE = 1
BLOCK_UNSCORED = 2
BLOCK_TRACKING = 4
BLOCK_TRANSIT = 8
BLOCK_CARRIER = 16
BLOCK_PRICE = 32
BLOCK_REASONS: dict[int, str] = {
    BLOCK_INELIGIBLE: "not eligible for this shipment",
    BLOCK_UNSCORED: "no risk estimate or price",
    BLOCK_TRACKING: "tracking below the required level",
    BLOCK_TRANSIT: "expected transit above the limit",
    BLOCK_CARRIER: "carrier not allowed",
    BLOCK_PRICE: "price above the limit",
}
NO_RECOMMENDATION_REASONS: tuple[str, ...] = (
    "",
    "no candidate channels",
    "no eligible channel for this shipment",
    "no eligible channel has a risk estimate and a price",
    "no eligible channel meets the seller's constraints",
)
"""Indexed by ``Decision.no_recommendation`` (0 = there is a recommendation)."""


@dataclass
class Decision:
    """Per candidate (n, K) and per shipment (n,) results of :func:`decide`.

    ``expected_cost`` uses the chosen ``insure``; ``expected_cost_insured`` is NaN where
    insurance is not available. ``allowed`` = eligible, scored and within the constraints.
    ``recommended``/``cheapest`` index into K (-1 = none); ``saving_vs_cheapest_usd`` =
    expected cost of the cheapest-by-price eligible channel minus that of the recommendation
    (NaN if either is missing; negative when the seller's constraints cost money).
    """

    insure: np.ndarray
    expected_cost: np.ndarray
    expected_cost_uninsured: np.ndarray
    expected_cost_insured: np.ndarray
    allowed: np.ndarray
    recommended: np.ndarray
    cheapest: np.ndarray
    saving_vs_cheapest_usd: np.ndarray
    no_recommendation: np.ndarray
    """(n,) int8 index into ``NO_RECOMMENDATION_REASONS`` (0 = there is a recommendation)."""
    ineligible: np.ndarray = field(repr=False)
    unscored: np.ndarray = field(repr=False)
    constraint_passes: list[tuple[int, np.ndarray]] = field(default_factory=list, repr=False)

    @property
    def blocked(self) -> np.ndarray:
        """(n, K) uint8 bit mask of ``BLOCK_*`` reasons (0 = allowed); built on demand."""
        out = self.ineligible * np.uint8(BLOCK_INELIGIBLE)
        out |= self.unscored * np.uint8(BLOCK_UNSCORED)
        for bit, ok in self.constraint_passes:
            out |= ~ok * np.uint8(bit)
        return out

    @property
    def reasons(self) -> np.ndarray:
        """(n,) text of why there is no recommendation ('' where there is one)."""
        return np.asarray(NO_RECOMMENDATION_REASONS, dtype=object)[self.no_recommendation]


def blocked_reasons(mask: int) -> list[str]:
    """Plain-words reasons behind one ``Decision.blocked`` value."""
    if not mask:
        return []
    return [text for bit, text in BLOCK_REASONS.items() if mask & bit]


def event_costs(
    cands: CandidateTable,
    costs: SellerCosts,
    value: np.ndarray | None = None,
    liability: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """(n, K) cost to the seller if the event happens, by cost role (``data.outcomes``).

    ``goods_lost``: refund (or reship) minus the carrier's expected liability payout;
    ``returned``: return shipping plus the goods' unrecoverable share (docs/policy.md).
    ``value`` and ``liability`` (n, K), when the caller has them, save recomputing.
    """
    price = cands.price_usd
    n, k = price.shape
    if value is None:
        value = cands.value_usd.repeat(k).reshape(n, k)
    g = costs.goods_cost_ratio
    if liability is None:
        liability = np.minimum(cands.liability_usd, value)  # capped at the value
    paid = _f(costs.liability_paid_probability) * liability
    if costs.reship_policy == "refund":  # lose the sale; a rejected parcel's goods come back
        lost = value - paid
        returned = cands.return_cost_ratio * price
        returned += _f((1.0 - g) + costs.unrecoverable_share * g) * value
    else:  # send a new unit (or the returned one) again on the same channel
        lost = _f(g) * value + price - paid
        returned = (cands.return_cost_ratio + _ONE) * price
        returned += _f(costs.unrecoverable_share * g) * value
    return {"goods_lost": lost, "returned": returned}


def decide(
    cands: CandidateTable,
    probs: Mapping[str, np.ndarray],
    costs: SellerCosts,
    constraints: Constraints | None = None,
    carriers: np.ndarray | None = None,
) -> Decision:
    """Expected cost of each candidate, insure or not, and the recommended channel.

    ``probs`` holds one (n, K) array per event of ``data.outcomes`` (NaN = not scored).
    Expected cost (docs/policy.md): price + delay + sum over events of p x the event's cost,
    plus (if insured) premium - p(goods lost) x expected payout. Insurance is bought when
    premium < risk_aversion x expected payout - only ``goods_lost`` events are covered, so a
    refusal never makes insurance better. ``carriers`` (broadcastable to (n, K), see
    :func:`candidate_carriers`) is needed only for ``allowed_carriers``. Written for small
    arrays too (one shipment online): same-shape operations, few temporaries.
    """
    price = cands.price_usd
    n, k = price.shape
    value = cands.value_usd.repeat(k).reshape(n, k)
    # Carrier liability capped at the value; insurance tops up above it, to the cover limit.
    liability = np.minimum(cands.liability_usd, value)
    insured_amount = np.minimum(value - liability, cands.max_cover_usd)
    cost_of = event_costs(cands, costs, value, liability)
    uninsured: np.ndarray | None = None
    covered: np.ndarray | None = None
    for event in EVENTS:
        p = probs[event.key]
        if uninsured is None:
            uninsured = p * cost_of[event.cost_role]
            uninsured += price
        else:
            uninsured += p * cost_of[event.cost_role]
        if event.cost_role == "goods_lost":
            covered = p if covered is None else covered + p
    assert uninsured is not None  # the outcome spec lists at least one event
    if costs.delay_cost_per_day_usd:
        uninsured += _f(costs.delay_cost_per_day_usd) * cands.transit_days
    expected_payout = (np.zeros_like(price) if covered is None else covered) * insured_amount
    expected_payout *= _f(costs.claim_paid_probability)
    premium = cands.premium_usd  # NaN where not insurable: the comparison is then False
    insure = premium < _f(costs.risk_aversion) * expected_payout
    insured = premium - expected_payout
    insured += uninsured
    expected = np.where(insure, insured, uninsured)

    ineligible = ~cands.eligible
    unscored = np.isnan(expected)
    usable = ~(ineligible | unscored)
    passes = [] if constraints is None else _constraint_passes(cands, constraints, carriers)
    allowed = usable
    for _, ok in passes:
        allowed = allowed & ok
    if k == 0:
        none = np.full(n, -1, dtype=np.int64)
        recommended, cheapest = none, none.copy()
        saving, no_rec = np.full(n, np.nan), np.ones(n, dtype=np.int8)
    else:
        offsets = np.arange(0, n * k, k)
        masked = np.where(allowed, expected, _INF)
        recommended = masked.argmin(axis=1)
        best = masked.take(recommended + offsets)
        has_rec = best < _INF
        masked = np.where(usable, price, _INF)
        cheapest = masked.argmin(axis=1)
        at_cheapest = cheapest + offsets
        has_cheap = usable.take(at_cheapest)
        saving = expected.take(at_cheapest)
        saving -= best
        if np.count_nonzero(has_rec) == n:
            no_rec = np.zeros(n, dtype=np.int8)
        else:
            eligible_any = cands.eligible.any(axis=1)
            no_rec = np.select([has_rec, ~eligible_any, ~has_cheap], [0, 2, 3], 4).astype(np.int8)
            recommended[~has_rec] = -1
            saving[~has_rec] = np.nan
        if np.count_nonzero(has_cheap) != n:
            cheapest[~has_cheap] = -1
            saving[~has_cheap] = np.nan
    return Decision(
        insure=insure,
        expected_cost=expected,
        expected_cost_uninsured=uninsured,
        expected_cost_insured=insured,
        allowed=allowed,
        recommended=recommended,
        cheapest=cheapest,
        saving_vs_cheapest_usd=saving,
        no_recommendation=no_rec,
        ineligible=ineligible,
        unscored=unscored,
        constraint_passes=passes,
    )


_f = np.float64
_ONE = np.float64(1.0)
_INF = np.float64(np.inf)


def _constraint_passes(
    cands: CandidateTable, c: Constraints, carriers: np.ndarray | None
) -> list[tuple[int, np.ndarray]]:
    """(BLOCK_* bit, (n, K) bool: candidate meets it) for each constraint the seller set."""
    passes: list[tuple[int, np.ndarray]] = []
    if c.require_tracking != "none":
        level = TRACKING_LEVELS[c.require_tracking]
        passes.append((BLOCK_TRACKING, cands.tracking_level >= level))
    if c.max_transit_days is not None:  # NaN (unknown channel) fails
        passes.append((BLOCK_TRANSIT, cands.transit_days <= _f(c.max_transit_days)))
    if c.max_price_usd is not None:
        passes.append((BLOCK_PRICE, cands.price_usd <= _f(c.max_price_usd)))
    if c.allowed_carriers is not None:
        if carriers is None:
            raise ValueError("allowed_carriers needs the candidates' carriers (carriers=...)")
        names = np.asarray(carriers, dtype=object)
        accepted = set(c.allowed_carriers)
        ok = np.fromiter((x in accepted for x in names.flat), bool, names.size)
        passes.append((BLOCK_CARRIER, ok.reshape(names.shape)))
    return passes
