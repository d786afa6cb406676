"""The issue-16 cost terms, each against a hand computation (docs/policy.md, "Cost terms")."""

from __future__ import annotations

import numpy as np
import pytest

from shiprisk.data.catalogs import CHANNEL_TYPE_DEFAULTS, Catalog, load_catalog
from shiprisk.decisions.candidates import CandidateTable
from shiprisk.decisions.costs import SellerCosts
from shiprisk.decisions.policy import decide, lateness

P_LOSS, P_REJECT = 0.05, 0.1
# Risk-neutral, no insurance in play (premium NaN), everything else at the issue-16 defaults.
NEUTRAL = SellerCosts(risk_tolerance_usd=None)


def cell(**overrides) -> CandidateTable:
    """A hand-made 1 x 1 table: V = S = 200, price 10, liability 40 (paid with prob. 0.5),
    half of the refused parcels come back, DDP, fully tracked, transit 10-14 days."""
    values = dict(
        channel_index=0,
        eligible=True,
        price_usd=10.0,
        premium_usd=np.nan,
        liability_usd=40.0,
        max_cover_usd=0.0,
        insurable=False,
        transit_days=12.0,
        tracking_level=2,
        return_cost_ratio=0.6,
        transit_days_min=10.0,
        transit_days_max=14.0,
        liability_paid=0.5,
        returned_share=0.5,
        bills_refused_duties=False,
    )
    per_shipment = dict(
        value_usd=200.0, weight_kg=1.0, is_ddu=False, sale_usd=200.0, duties_absorbed=False
    )
    for key in list(overrides):
        if key in per_shipment:
            per_shipment[key] = overrides.pop(key)
    values.update(overrides)
    return CandidateTable(
        **{k: np.array([[v]]) for k, v in values.items()},
        **{k: np.array([v]) for k, v in per_shipment.items()},
    )


def run(table: CandidateTable, costs: SellerCosts = NEUTRAL):
    probs = {"loss": np.array([[P_LOSS]]), "reject": np.array([[P_REJECT]])}
    return decide(table, probs, costs)


# Hand computation, refund policy, g = 0.4, u = 0.3, duties 15 %, defect 5 USD:
#   lost      = S + defect - l x Lc           = 200 + 5 - 0.5 x 40        = 185
#   returned  = (1 - g + u g) S + r P + duty  = 144 + 6 + 30              = 180
#   abandoned = S + duty                      = 200 + 30                  = 230
#   refused   = 0.5 x 180 + 0.5 x 230                                     = 205
#   expected cost = 10 + 0.05 x 185 + 0.1 x 205                           = 39.75
#   expected profit = (1 - g) S + m P - cost = 120 + 10 - 39.75           = 90.25
# (m = 1: the order's price covers the cheapest channel's postage, here the one channel's 10)
DDP_COST = 39.75
REVENUE = 120.0 + 10.0


def test_ddp_refusal_loses_the_duties_and_abandoned_parcels_the_goods():
    d = run(cell())
    assert d.expected_cost[0, 0] == pytest.approx(DDP_COST)
    assert d.expected_profit[0, 0] == pytest.approx(REVENUE - DDP_COST)
    assert d.utility[0, 0] == pytest.approx(REVENUE - DDP_COST)  # risk-neutral: CE = mean
    assert d.ship[0] and d.best_utility[0] == pytest.approx(90.25)


def test_ddu_refusal_costs_duties_only_where_the_carrier_bills_them():
    # DDU on a postal channel: the duties are the buyer's; 0.1 x 0.5 x 30 x 2 = 3 USD less.
    assert run(cell(is_ddu=True)).expected_cost[0, 0] == pytest.approx(DDP_COST - 3.0)
    # DDU on a courier that bills refused duties to the shipper: as DDP.
    billed = run(cell(is_ddu=True, bills_refused_duties=True))
    assert billed.expected_cost[0, 0] == pytest.approx(DDP_COST)


def test_duties_absorbed_are_paid_on_every_parcel_that_clears_customs():
    # An order sold DDU and shipped DDP (the ship_ddp action): the seller pays the 30 USD of
    # duties on each delivered parcel, 0.85 x 30 = 25.50 USD more; a refused parcel's are in
    # the refusal cost already (DDP), a lost parcel's are not charged.
    absorbed = run(cell(duties_absorbed=True))
    assert absorbed.expected_cost[0, 0] == pytest.approx(DDP_COST + 0.85 * 30.0)
    # Untracked: the delivered parcels that draw a 'not received' claim paid them too.
    plain = run(cell(tracking_level=0)).expected_cost[0, 0]
    both = run(cell(tracking_level=0, duties_absorbed=True)).expected_cost[0, 0]
    assert both == pytest.approx(plain + 0.85 * 30.0)
    # Risk-averse: the certainty equivalent falls too, by less than the duties (they are paid
    # on the good branches, so the spread of outcomes narrows).
    averse = SellerCosts(risk_tolerance_usd=500.0)
    shift = run(cell(duties_absorbed=True), averse).utility - run(cell(), averse).utility
    assert -30.0 < shift[0, 0] < -0.85 * 30.0 + 5.0


def test_every_refused_parcel_returned_vs_abandoned():
    # returned_share 1: refused = 180; 0: refused = 230 (the goods are gone).
    assert run(cell(returned_share=1.0)).expected_cost[0, 0] == pytest.approx(10 + 9.25 + 18.0)
    assert run(cell(returned_share=0.0)).expected_cost[0, 0] == pytest.approx(10 + 9.25 + 23.0)


def test_untracked_parcels_draw_not_received_claims():
    # Delivered 0.85 x claim rate 0.02 x (S + defect = 205) = 3.485 USD more.
    d = run(cell(tracking_level=0))
    assert d.expected_cost[0, 0] == pytest.approx(DDP_COST + 0.85 * 0.02 * 205)


def test_carrier_payout_probability_is_per_channel_unless_the_seller_sets_it():
    # l = 0.9 on this channel: 0.05 x (0.9 - 0.5) x 40 = 0.8 USD less.
    assert run(cell(liability_paid=0.9)).expected_cost[0, 0] == pytest.approx(DDP_COST - 0.8)
    seller = NEUTRAL.model_copy(update={"liability_paid_probability": 0.0})
    assert run(cell(), seller).expected_cost[0, 0] == pytest.approx(DDP_COST + 1.0)


def test_sale_value_is_refunded_while_liability_pays_on_the_declared_value():
    # S = 300, V = 200: lost 305 - 20 = 285; returned 0.72 x 300 + 6 + 30 = 252; abandoned
    # 330; refused 291. Cost 10 + 14.25 + 29.1 = 53.35; profit 0.6 x 300 + 10 - 53.35.
    d = run(cell(sale_usd=300.0))
    assert d.expected_cost[0, 0] == pytest.approx(53.35)
    assert d.expected_profit[0, 0] == pytest.approx(136.65)


def test_lateness_against_a_promise():
    # Transit uniform on 10..14 days, promise 12: days 13 and 14 are late (P = 2/5) by 1 and
    # 2 days (0.6 expected days beyond). Delivered 0.85 x 0.4 x defect 5 = 1.7; delay 2 USD a
    # day x 0.6 = 1.2.
    costs = NEUTRAL.model_copy(update={"promised_days": 12, "delay_cost_per_day_usd": 2.0})
    p_late, days = lateness(cell(), costs)
    assert (p_late[0, 0], days[0, 0]) == pytest.approx((0.4, 0.6))
    assert run(cell(), costs).expected_cost[0, 0] == pytest.approx(DDP_COST + 1.7 + 1.2)
    # No promise: nothing is late and the delay cost counts every (mean) transit day.
    plain = NEUTRAL.model_copy(update={"delay_cost_per_day_usd": 2.0})
    assert run(cell(), plain).expected_cost[0, 0] == pytest.approx(DDP_COST + 2.0 * 12.0)


def test_certainty_equivalent_is_the_cara_value_of_the_branches():
    # Branches (probability, profit) written out by hand; CE = -R log E[exp(-profit / R)].
    r = 100.0
    base = REVENUE - 10.0
    branches = [
        (0.85, base),
        (0.05 * 0.5, base - (205.0 - 40.0)),  # lost, the carrier pays its 40
        (0.05 * 0.5, base - 205.0),  # lost, the carrier pays nothing
        (0.1 * 0.5, base - 180.0),  # refused, returned
        (0.1 * 0.5, base - 230.0),  # refused, abandoned
    ]
    expected = -r * np.log(sum(p * np.exp(-x / r) for p, x in branches))
    d = run(cell(), SellerCosts(risk_tolerance_usd=r))
    assert d.utility[0, 0] == pytest.approx(expected)
    assert d.utility[0, 0] < d.expected_profit[0, 0]  # risk costs the seller something
    assert d.expected_profit[0, 0] == pytest.approx(REVENUE - DDP_COST)  # the mean is unchanged


def test_risk_aversion_buys_insurance_a_neutral_seller_would_not():
    # A 1,500 USD parcel, 1 % loss, premium 22.5 USD against an expected payout of
    # 0.01 x 0.9 x (1,500 - 40) = 13.14 USD: a risk-neutral seller does not insure; a small
    # seller (R = 300 USD) does, since a 1,500 USD hole is far more than it can absorb.
    table = cell(
        value_usd=1500.0,
        sale_usd=1500.0,
        premium_usd=22.5,
        max_cover_usd=5000.0,
        insurable=True,
    )
    probs = {"loss": np.array([[0.01]]), "reject": np.array([[0.0]])}
    assert not decide(table, probs, NEUTRAL).insure[0, 0]
    assert decide(table, probs, SellerCosts(risk_tolerance_usd=300.0)).insure[0, 0]


def test_every_option_losing_money_is_do_not_ship_but_shipping_can_still_beat_declining():
    # S = 20, the seller pays the postage (m = 0): margin 12 < the cost, so best_utility < 0;
    # shipping (-x) vs declining (-5).
    absorbs = NEUTRAL.model_copy(update={"postage_covered_share": 0.0})
    d = run(cell(value_usd=20.0, sale_usd=20.0, price_usd=14.0), absorbs)
    assert d.best_utility[0] < 0
    assert d.ship[0] == (d.best_utility[0] >= -NEUTRAL.cancel_cost_usd)
    worse = run(cell(value_usd=20.0, sale_usd=20.0, price_usd=30.0), absorbs)
    assert not worse.ship[0]
    # When the order's price covers the postage, the same parcel pays: the risk costs
    # (~3 USD) are below the margin.
    assert run(cell(value_usd=20.0, sale_usd=20.0, price_usd=14.0)).best_utility[0] > 0


def test_covered_postage_moves_every_option_alike_and_never_the_choice():
    # Two channels: 6 USD untracked-ish and 15 USD; the order's price covers m x 6 USD.
    table = CandidateTable(
        **{
            k: np.array([[a, b]])
            for k, (a, b) in dict(
                channel_index=(0, 1),
                eligible=(True, True),
                price_usd=(6.0, 15.0),
                premium_usd=(np.nan, 1.5),
                liability_usd=(0.0, 100.0),
                max_cover_usd=(0.0, 1000.0),
                insurable=(False, True),
                transit_days=(20.0, 8.0),
                tracking_level=(0, 2),
                return_cost_ratio=(0.0, 0.8),
                transit_days_min=(15.0, 6.0),
                transit_days_max=(25.0, 10.0),
                liability_paid=(0.0, 0.9),
                returned_share=(0.1, 0.9),
                bills_refused_duties=(False, True),
            ).items()
        },
        **{
            k: np.array([v])
            for k, v in dict(value_usd=150.0, weight_kg=0.5, is_ddu=True, sale_usd=150.0).items()
        },
    )
    probs = {"loss": np.array([[0.04, 0.005]]), "reject": np.array([[0.03, 0.02]])}
    runs = {m: decide(table, probs, SellerCosts(postage_covered_share=m)) for m in (0.0, 0.5, 1.0)}
    for m, d in runs.items():
        shift = d.expected_profit - runs[0.0].expected_profit
        assert shift == pytest.approx(np.full((1, 2), m * 6.0))
        assert d.utility - runs[0.0].utility == pytest.approx(np.full((1, 2), m * 6.0))
        assert d.recommended[0] == runs[0.0].recommended[0]
        assert (d.insure == runs[0.0].insure).all()
        assert (d.expected_cost == runs[0.0].expected_cost).all()


def test_catalog_columns_default_by_channel_type_and_accept_explicit_values():
    catalog = load_catalog()
    for term, by_type in CHANNEL_TYPE_DEFAULTS.items():
        column = catalog.channel_column(term)
        for j, ch in enumerate(catalog.channels):
            assert column[j] == by_type[ch.channel_type], (term, ch.id)
    first = catalog.channels[0].model_copy(update={"liability_paid_probability": 0.33})
    custom = Catalog(
        (first, *catalog.channels[1:]), catalog.destinations, catalog.currencies, catalog.as_of
    )
    assert custom.channel_column("liability_paid_probability")[0] == 0.33
