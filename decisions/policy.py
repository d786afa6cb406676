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
    expected_profit: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    """(n, K) margin on the sale minus ``expected_cost`` (USD): what shipping earns on average."""
    utility_uninsured: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    """(n, K) certainty-equivalent profit (USD) of shipping uninsured (docs/policy.md)."""
    utility_insured: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)
    """(n, K) same, insured (NaN where insurance is not available)."""
    ship: np.ndarray = field(default_factory=lambda: np.empty(0, bool), repr=False)
    """(n,) bool: shipping the recommendation is worth more than declining the order (which
    costs ``cancel_cost_usd``); False where there is no recommendation."""
    best_utility: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    """(n,) the recommendation's certainty-equivalent profit (NaN = none). Below 0 = "do not
    ship as is": every option loses money (docs/policy.md)."""

    @property
    def utility(self) -> np.ndarray:
        """(n, K) certainty-equivalent profit of each candidate with its insure choice."""
        return np.where(self.insure, self.utility_insured, self.utility_uninsured)

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
    """(n, K) expected cost to the seller if the event happens, by cost role
    (``data.outcomes``), relative to a delivered parcel (docs/policy.md, "Cost terms").

    ``goods_lost``: refund (or reship) plus a marketplace defect, minus the carrier's
    expected liability payout; ``returned``: the returned / abandoned mix of a refusal, duties
    included. ``value`` and ``liability`` (n, K), when the caller has them, save recomputing.
    """
    t = _terms(cands, costs, value, liability)
    paid = t["liability_paid"] * t["liability"]
    share = t["returned_share"]
    return {
        "goods_lost": t["lost"] - paid,
        "returned": share * t["returned"] + (_ONE - share) * t["abandoned"],
    }


def _terms(
    cands: CandidateTable,
    costs: SellerCosts,
    value: np.ndarray | None = None,
    liability: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The per-outcome costs (n, K) every expectation and utility is built from."""
    price = cands.price_usd
    n, k = price.shape
    if value is None:
        value = cands.value_usd.repeat(k).reshape(n, k)
    if liability is None:
        liability = np.minimum(cands.liability_usd, value)  # capped at the declared value
    sale = value if cands.sale_usd is None else cands.sale_usd.repeat(k).reshape(n, k)
    g, u = _f(costs.goods_cost_ratio), _f(costs.unrecoverable_share)
    defect = _f(costs.defect_cost_usd)
    # Duties on a refusal: DDP duties the seller prepaid are lost; couriers that bill the
    # shipper for a refused DDU parcel's duties charge them too.
    ddu = np.zeros(n, bool) if cands.is_ddu is None else cands.is_ddu
    billed = (
        np.zeros((n, k), bool) if cands.bills_refused_duties is None else cands.bills_refused_duties
    )
    duties = _f(costs.duties_rate) * value * (~ddu[:, None] | billed)
    if costs.reship_policy == "refund":  # lose the sale
        lost = sale + defect
        returned = (_ONE - g + u * g) * sale + cands.return_cost_ratio * price + duties
        abandoned = sale + duties
    else:  # send a new unit (or the returned one) again on the same channel
        lost = g * sale + price + defect
        returned = u * g * sale + (cands.return_cost_ratio + _ONE) * price + duties
        abandoned = g * sale + price + duties
    # An order sold DDU and shipped DDP (the ship_ddp action): the seller pays the duties of
    # every parcel that clears customs; a refused one's are in ``duties`` already (DDP).
    absorbed = (
        None
        if cands.duties_absorbed is None
        else _f(costs.duties_rate) * value * cands.duties_absorbed[:, None]
    )
    fallback_paid = 0.8 if costs.liability_paid_probability is None else None
    return {
        "absorbed": absorbed,
        "sale": sale,
        "value": value,
        "liability": liability,
        "lost": lost,
        "returned": returned,
        "abandoned": abandoned,
        "liability_paid": _per_channel(
            cands.liability_paid, costs.liability_paid_probability, fallback_paid, (n, k)
        ),
        "returned_share": _per_channel(
            cands.returned_share, costs.refused_returned_share, 1.0, (n, k)
        ),
    }


def _per_channel(
    table: np.ndarray | None, setting: float | None, fallback: float | None, shape: tuple
) -> np.ndarray:
    """A channel term: the seller's setting, else the table's column, else ``fallback``."""
    if setting is not None:
        return np.full(shape, _f(setting))
    if table is not None:
        return table
    return np.full(shape, _f(fallback))


def lateness(cands: CandidateTable, costs: SellerCosts) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) P(delivered after the promise) and expected days beyond it, transit uniform on
    the integer days ``[transit_days_min, transit_days_max]``. No promise: every transit day
    counts as a day of delay (the mean transit) and nothing is late."""
    if costs.promised_days is None:
        return np.zeros_like(cands.transit_days), cands.transit_days
    lo, hi, d = cands.transit_days_min, cands.transit_days_max, _f(costs.promised_days)
    first = np.maximum(lo, d + _ONE)  # first late day
    late_days = np.maximum(hi - first + _ONE, 0.0)
    count = hi - lo + _ONE
    return late_days / count, late_days * ((first + hi) / 2 - d) / count


def _certainty_cost(
    branches: list[tuple[np.ndarray, np.ndarray]], risk_tolerance: float | None
) -> np.ndarray:
    """Certainty-equivalent cost of the branch mix (p, cost): R log E[exp(cost / R)], the
    constant-absolute-risk-aversion utility's; the expectation when R is None. The branches
    are stacked and reduced in one pass: one request decides ~10 channels, where numpy's
    per-call overhead, not arithmetic, is the cost."""
    p = np.stack([b[0] for b in branches])
    c = np.stack([b[1] for b in branches])
    if risk_tolerance is None:
        return np.add.reduce(p * c, axis=0)
    r = _f(risk_tolerance)
    top = np.where(p > 0, c, -_INF).max(axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    acc = np.add.reduce(p * np.exp(np.minimum((c - top) / r, 0.0)), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return top + r * np.log(acc)


def decide(
    cands: CandidateTable,
    probs: Mapping[str, np.ndarray],
    costs: SellerCosts,
    constraints: Constraints | None = None,
    carriers: np.ndarray | None = None,
) -> Decision:
    """Expected cost and utility of each candidate, insure or not, the recommended channel
    and whether to ship at all.

    ``probs`` holds one (n, K) array per event of ``data.outcomes`` (NaN = not scored).
    Outcomes (docs/policy.md): delivered (an untracked one may still draw a lost 'not
    received' claim), each event split into its branches (carrier pays its liability or not,
    insurer pays or not; a refused parcel returned or abandoned). The seller's utility of a
    channel is the certainty equivalent of its profit under ``risk_tolerance_usd``; insurance
    is bought when it raises it (``risk_aversion`` > 1 adds the legacy extra weight on the
    expected payout). Recommended = the allowed candidate of highest utility; ``ship`` =
    that utility is >= 0 (declining the order is worth 0). ``carriers`` (broadcastable to
    (n, K), see :func:`candidate_carriers`) is needed only for ``allowed_carriers``.
    """
    price = cands.price_usd
    n, k = price.shape
    t = _terms(cands, costs)
    value, liability, sale = t["value"], t["liability"], t["sale"]
    # Insurance tops up above the carrier's liability, up to the cover limit.
    insured_amount = np.minimum(value - liability, cands.max_cover_usd)
    l_paid, ret = t["liability_paid"], t["returned_share"]
    q = _f(costs.claim_paid_probability)
    p_lost = None
    p_delivered = np.ones((n, k))
    plain: list[tuple[np.ndarray, np.ndarray]] = []  # (probability, cost) branches
    insured_br: list[tuple[np.ndarray, np.ndarray]] = []
    for event in EVENTS:
        p = probs[event.key]
        p_delivered = p_delivered - p
        if event.cost_role == "goods_lost":
            p_lost = p if p_lost is None else p_lost + p
            with_l, without_l = p * l_paid, p * (_ONE - l_paid)
            lost_l = t["lost"] - liability
            plain += [(with_l, lost_l), (without_l, t["lost"])]
            insured_br += [
                (with_l * q, lost_l - insured_amount),
                (with_l * (_ONE - q), lost_l),
                (without_l * q, t["lost"] - insured_amount),
                (without_l * (_ONE - q), t["lost"]),
            ]
        else:
            both = [(p * ret, t["returned"]), (p * (_ONE - ret), t["abandoned"])]
            plain += both
            insured_br += both
    p_delivered = np.maximum(p_delivered, 0.0)
    claim = _f(costs.untracked_claim_rate) * (cands.tracking_level == 0)
    on_delivery = np.zeros((n, k)) if t["absorbed"] is None else t["absorbed"]
    delivered = [
        (p_delivered * (_ONE - claim), on_delivery),
        (p_delivered * claim, t["lost"] + on_delivery),
    ]
    p_late, days_late = lateness(cands, costs)
    fixed = price + p_delivered * p_late * _f(costs.defect_cost_usd)
    if costs.delay_cost_per_day_usd:
        fixed = fixed + _f(costs.delay_cost_per_day_usd) * days_late
    mean = _certainty_cost(plain + delivered, None)
    uninsured = fixed + mean
    premium = cands.premium_usd  # NaN where not insurable: every comparison is then False
    expected_payout = (np.zeros((n, k)) if p_lost is None else p_lost) * insured_amount * q
    insured = uninsured + premium - expected_payout
    if costs.risk_tolerance_usd is None:
        ce_plain, ce_insured = uninsured, insured
    else:
        ce_plain = fixed + _certainty_cost(plain + delivered, costs.risk_tolerance_usd)
        ce_insured = (
            fixed + premium + _certainty_cost(insured_br + delivered, costs.risk_tolerance_usd)
        )
    insure = ce_insured < ce_plain + _f(costs.risk_aversion - 1.0) * expected_payout
    expected = np.where(insure, insured, uninsured)
    ce_cost = np.where(insure, ce_insured, ce_plain)
    ineligible = ~cands.eligible
    unscored = np.isnan(expected)
    usable = ~(ineligible | unscored)
    margin = (_ONE - _f(costs.goods_cost_ratio)) * sale + _postage_income(price, usable, costs)
    passes = [] if constraints is None else _constraint_passes(cands, constraints, carriers)
    allowed = usable
    for _, ok in passes:
        allowed = allowed & ok
    if k == 0:
        none = np.full(n, -1, dtype=np.int64)
        recommended, cheapest = none, none.copy()
        saving, no_rec = np.full(n, np.nan), np.ones(n, dtype=np.int8)
        best_utility = np.full(n, np.nan)
    else:
        offsets = np.arange(0, n * k, k)
        masked = np.where(allowed, ce_cost, _INF)
        recommended = masked.argmin(axis=1)
        has_rec = masked.take(recommended + offsets) < _INF
        best = expected.take(recommended + offsets)
        best_utility = margin.take(recommended + offsets) - ce_cost.take(recommended + offsets)
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
            best_utility[~has_rec] = np.nan
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
        expected_profit=margin - expected,
        utility_uninsured=margin - ce_plain,
        utility_insured=margin - ce_insured,
        ship=best_utility >= -_f(costs.cancel_cost_usd),
        best_utility=best_utility,
    )


def _postage_income(price: np.ndarray, usable: np.ndarray, costs: SellerCosts) -> np.ndarray:
    """(n, 1) what the buyer's payment covers of the postage: ``postage_covered_share`` of
    the cheapest usable channel's price (0 where none is usable). The same on every option,
    so the channel ranking never depends on it, only the ship / do-not-ship verdict does."""
    share = _f(costs.postage_covered_share)
    if not share or price.shape[1] == 0:
        return np.zeros((price.shape[0], 1))
    cheapest = np.where(usable, price, _INF).min(axis=1, keepdims=True)
    return share * np.where(np.isfinite(cheapest), cheapest, 0.0)


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
