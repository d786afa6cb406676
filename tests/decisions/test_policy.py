"""Decision policy and seller actions: hand-computed costs, break-even, constraints, batch."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shiprisk.data.catalogs import load_catalog
from shiprisk.data.contract import GOODS_CATEGORIES, example_request
from shiprisk.decisions.actions import ACTION_CODES, applicable, changed_order
from shiprisk.decisions.candidates import (
    DUTIES_ABSORBED,
    CandidateTable,
    build_candidates,
    candidate_carriers,
    candidates_for_shipment,
    ineligibility_reasons,
    shipment_arrays,
)
from shiprisk.decisions.costs import TODAYS_COST_MODEL, Constraints, SellerCosts, resolve_costs
from shiprisk.decisions.policy import (
    BLOCK_CARRIER,
    BLOCK_INELIGIBLE,
    NO_RECOMMENDATION_REASONS,
    blocked_reasons,
    decide,
)

CATALOG = load_catalog()
IDS = CATALOG.channel_ids


def record(**overrides) -> dict:
    """A clean, low-risk shipment (verified address, box, prepaid, DDP) with overrides."""
    base = example_request()
    base.update(
        goods_category="apparel",
        declared_value=200.0,
        currency="USD",
        weight_kg=0.5,
        length_cm=20.0,
        width_cm=15.0,
        height_cm=5.0,
        packaging="box",
        fragile=False,
        valuable_wording=False,
        destination_country="US",
        address_quality="verified",
        payment_method="prepaid",
        duties_terms="DDP",
        recipient_tax_id_present=False,
    )
    base.update(overrides)
    return base


def table(records: list[dict], costs: SellerCosts | None = None) -> CandidateTable:
    arrays = shipment_arrays(CATALOG, records)
    return build_candidates(CATALOG, **arrays, costs=costs or SellerCosts())


def one_channel(**overrides) -> CandidateTable:
    """A hand-made 1 x 1 table (no catalog) for arithmetic checks."""
    values = dict(
        channel_index=0,
        eligible=True,
        price_usd=10.0,
        premium_usd=2.0,
        liability_usd=40.0,
        max_cover_usd=1000.0,
        insurable=True,
        transit_days=12.0,
        tracking_level=2,
        return_cost_ratio=0.6,
        transit_days_min=10.0,
        transit_days_max=14.0,
    )
    values.update(overrides)
    per_shipment = {"value_usd": values.pop("value_usd", 200.0), "weight_kg": 1.0}
    return CandidateTable(
        **{k: np.array([[v]]) for k, v in values.items()},
        **{k: np.array([v]) for k, v in per_shipment.items()},
    )


LEGACY = SellerCosts(**TODAYS_COST_MODEL)
"""The cost model before issue 16 (risk-neutral, no duties or claims): hand arithmetic."""
HAND_COSTS = SellerCosts(
    **TODAYS_COST_MODEL | {"liability_paid_probability": 0.8},
    goods_cost_ratio=0.4,
    unrecoverable_share=0.3,
    claim_paid_probability=0.9,
    delay_cost_per_day_usd=0.1,
    risk_aversion=1.0,
)


# -- expected cost arithmetic ----------------------------------------------------------------


def test_expected_cost_refund_matches_hand_computation():
    # V=200, price 10, premium 2, liability 40, cover 1000, p_loss .05, p_reject .1.
    # loss = 200 - 0.8*40 = 168; reject = 0.6*10 + (0.6 + 0.3*0.4)*200 = 150
    # uninsured = 10 + .05*168 + .1*150 + 0.1*12 = 34.6
    # payout = 0.9*min(200-40, 1000) = 144; .05*144 = 7.2 > premium 2 -> insure
    # insured = 34.6 + 2 - 7.2 = 29.4
    d = decide(one_channel(), {"loss": np.array([[0.05]]), "reject": np.array([[0.1]])}, HAND_COSTS)
    assert d.expected_cost_uninsured[0, 0] == pytest.approx(34.6)
    assert d.expected_cost_insured[0, 0] == pytest.approx(29.4)
    assert d.insure[0, 0]
    assert d.expected_cost[0, 0] == pytest.approx(29.4)
    assert d.recommended[0] == 0 and d.cheapest[0] == 0
    assert d.saving_vs_cheapest_usd[0] == 0.0


def test_expected_cost_reship_matches_hand_computation():
    # loss = 0.4*200 + 10 - 0.8*40 = 58; reject = 0.6*10 + 0.3*0.4*200 + 10 = 40
    # uninsured = 10 + .05*58 + .1*40 + 1.2 = 18.1; insured = 18.1 + 2 - 7.2 = 12.9
    costs = HAND_COSTS.model_copy(update={"reship_policy": "reship"})
    d = decide(one_channel(), {"loss": np.array([[0.05]]), "reject": np.array([[0.1]])}, costs)
    assert d.expected_cost_uninsured[0, 0] == pytest.approx(18.1)
    assert d.expected_cost[0, 0] == pytest.approx(12.9)


def test_value_below_carrier_liability_is_never_insured():
    # V=30 < liability 40: nothing for insurance to pay; loss = 30 - 0.8*30 = 6
    d = decide(
        one_channel(value_usd=30.0, premium_usd=0.01),
        {"loss": np.array([[0.5]]), "reject": np.array([[0.0]])},
        HAND_COSTS,
    )
    assert not d.insure[0, 0]
    assert d.expected_cost[0, 0] == pytest.approx(10 + 0.5 * 6 + 0.1 * 12)


def test_build_candidates_matches_catalog_by_hand():
    # US is zone 4 with a 1-day customs hold; 0.5 kg, 20x15x5 cm (1500 cm3), USD 200.
    t = table([record()])
    e, dhl = IDS.index("epacket"), IDS.index("dhl_express")
    assert t.eligible[0, e] and t.eligible[0, dhl]
    assert t.price_usd[0, e] == pytest.approx(3.3 + 11.0 * 0.5)  # no volumetric billing
    assert t.price_usd[0, dhl] == pytest.approx(33.0 + 14.0 * 0.5)  # 0.3 kg volumetric < 0.5
    assert t.premium_usd[0, e] == pytest.approx(0.015 * 200)  # rate above the 1 USD minimum
    assert t.premium_usd[0, dhl] == pytest.approx(3.45)  # 0.0115*200 = 2.3 < 3.45 minimum
    assert t.liability_usd[0, e] == 30.0 and t.max_cover_usd[0, e] == 1000.0
    assert t.transit_days[0, e] == pytest.approx((7 + 15) / 2 + 1)
    assert (t.transit_days_min[0, e], t.transit_days_max[0, e]) == (8, 16)
    assert t.tracking_level[0, IDS.index("cnpost_untracked")] == 0
    assert t.tracking_level[0, e] == 1 and t.tracking_level[0, dhl] == 2
    assert not t.insurable[0, IDS.index("cnpost_untracked")]
    assert np.isnan(t.premium_usd[0, IDS.index("cnpost_untracked")])


# -- insurance ---------------------------------------------------------------------------


def break_even_value(rate, minimum, liability, a):
    """V* solving premium(V) = a (V - liability), premium(V) = max(rate V, minimum)."""
    on_minimum = liability + minimum / a
    if rate * on_minimum <= minimum:
        return on_minimum
    return a * liability / (a - rate)


@pytest.mark.parametrize(
    ("channel", "p_loss", "risk_aversion", "regime"),
    [
        ("dhl_express", 0.05, 1.0, "minimum"),  # V* = 100 + 3.45/0.045 = 176.7
        ("dhl_express", 0.015, 1.0, "rate"),  # V* = 0.0135*100/(0.0135-0.0115) = 675
        ("epacket", 0.01, 2.0, "rate"),  # a = 0.018: V* = 0.018*30/0.003 = 180
    ],
)
def test_insure_flips_exactly_at_break_even_value(channel, p_loss, risk_aversion, regime):
    costs = SellerCosts(**TODAYS_COST_MODEL, risk_aversion=risk_aversion)
    ch = CATALOG.channels[IDS.index(channel)]
    ins = ch.insurance
    a = risk_aversion * p_loss * costs.claim_paid_probability
    v_star = break_even_value(ins.premium_rate, ins.premium_min_usd, ch.liability_usd, a)
    assert (ins.premium_rate * v_star > ins.premium_min_usd) == (regime == "rate")
    assert v_star - ch.liability_usd < ins.max_cover_usd  # cover limit not in play
    values = [v_star * (1 - 1e-6), v_star * (1 + 1e-6)]
    t = table([record(declared_value=v) for v in values], costs)
    k = IDS.index(channel)
    p = np.full(t.shape, p_loss)
    d = decide(t, {"loss": p, "reject": np.zeros(t.shape)}, costs)
    assert t.eligible[:, k].all()
    assert d.insure[:, k].tolist() == [False, True]
    # The insured option is cheaper in expectation exactly when risk-neutral insuring pays.
    if risk_aversion == 1.0:
        gap = d.expected_cost_insured[:, k] - d.expected_cost_uninsured[:, k]
        assert gap[0] > 0 > gap[1]


def test_premium_minimum_and_cover_limit_respected():
    k = IDS.index("epacket")  # rate 1.5 %, minimum 1 USD, cover 1000 USD, liability 30 USD
    t = table([record(declared_value=20.0), record(declared_value=1800.0)])
    assert t.premium_usd[0, k] == pytest.approx(1.0)  # 0.3 USD by rate -> minimum
    assert t.premium_usd[1, k] == pytest.approx(0.015 * 1000)  # charged on the cover only
    p_loss = np.full(t.shape, 0.2)
    d = decide(t, {"loss": p_loss, "reject": np.zeros(t.shape)}, SellerCosts())
    gap = d.expected_cost_insured[1, k] - d.expected_cost_uninsured[1, k]
    assert gap == pytest.approx(15.0 - 0.2 * 0.9 * 1000)  # payout capped at the cover
    assert d.insure[1, k]


@pytest.mark.parametrize(
    ("overrides", "costs"),
    [
        ({"destination_country": "BR"}, SellerCosts()),  # insurance_excluded destination
        ({"goods_category": "documents"}, SellerCosts()),  # default uninsurable goods
        ({"goods_category": "toys"}, SellerCosts(uninsurable_goods=("toys",))),
    ],
)
def test_excluded_destination_or_goods_get_no_insurance(overrides, costs):
    t = table([record(declared_value=900.0, **overrides)], costs)
    assert t.eligible.any()
    d = decide(t, {"loss": np.full(t.shape, 0.5), "reject": np.zeros(t.shape)}, costs)
    assert not t.insurable.any() and np.isnan(t.premium_usd).all()
    assert not d.insure.any()
    # The same shipment elsewhere / with other goods is insured at this loss rate.
    control = table([record(declared_value=900.0)], costs)
    assert decide(
        control, {"loss": np.full(control.shape, 0.5), "reject": np.zeros(control.shape)}, costs
    ).insure.any()


def test_documents_insurable_when_setting_cleared():
    t = table([record(goods_category="documents")], SellerCosts(uninsurable_goods=()))
    assert t.insurable.any()


cost_settings = st.builds(
    SellerCosts,
    goods_cost_ratio=st.floats(0, 1),
    reship_policy=st.sampled_from(["refund", "reship"]),
    unrecoverable_share=st.floats(0, 1),
    risk_aversion=st.floats(0, 10),
    delay_cost_per_day_usd=st.floats(0, 5),
    claim_paid_probability=st.floats(0, 1),
    liability_paid_probability=st.floats(0, 1),
)


@settings(derandomize=True, deadline=None, max_examples=150)
@given(
    costs=cost_settings,
    value=st.floats(1, 5000),
    weight=st.floats(0.05, 40),
    country=st.sampled_from(CATALOG.countries),
    p_loss=st.floats(0, 1),
    p_reject=st.floats(0, 1),
    extra=st.floats(0, 1),
)
def test_p_reject_never_makes_insurance_look_better(
    costs, value, weight, country, p_loss, p_reject, extra
):
    t = table([record(declared_value=value, weight_kg=weight, destination_country=country)], costs)
    low = np.full(t.shape, p_reject)
    high = np.full(t.shape, min(1.0, p_reject + extra))
    pl = np.full(t.shape, p_loss)
    d_low, d_high = (
        decide(t, {"loss": pl, "reject": low}, costs),
        decide(t, {"loss": pl, "reject": high}, costs),
    )
    assert not (d_high.insure & ~d_low.insure).any()  # never False -> True
    gap_low = d_low.expected_cost_insured - d_low.expected_cost_uninsured
    gap_high = d_high.expected_cost_insured - d_high.expected_cost_uninsured
    np.testing.assert_allclose(gap_low, gap_high, rtol=1e-9, atol=1e-9)


# -- recommendation ----------------------------------------------------------------------------


def risk_by_tracking(t: CandidateTable, untracked: float, partial: float, full: float):
    return np.choose(t.tracking_level.astype(int), [untracked, partial, full]).astype(float)


def brute_force(t, d, ok) -> int:
    """Index of the lowest expected cost among eligible candidates passing ``ok(k)``."""
    best = [(d.expected_cost[0, k], k) for k in range(t.shape[1]) if t.eligible[0, k] and ok(k)]
    return min(best)[1]


def test_constraints_remove_the_cheapest_and_recommendation_follows():
    t = table([record(declared_value=40.0, weight_kg=0.3)])
    p_loss = risk_by_tracking(t, 0.01, 0.005, 0.002)
    p_reject = np.full(t.shape, 0.01)
    costs = SellerCosts()
    carriers = candidate_carriers(CATALOG, t.channel_index)
    free = decide(t, {"loss": p_loss, "reject": p_reject}, costs)
    r0 = int(free.recommended[0])
    assert (
        r0 == int(free.cheapest[0]) == IDS.index("cnpost_untracked")
    )  # cheap parcel: cheapest wins
    cases = [
        (Constraints(require_tracking="partial"), lambda k: t.tracking_level[0, k] >= 1),
        (Constraints(require_tracking="full"), lambda k: t.tracking_level[0, k] == 2),
        (Constraints(max_transit_days=20), lambda k: t.transit_days[0, k] <= 20),
        (
            Constraints(allowed_carriers=("dhl", "ups", "yun_line")),
            lambda k: CATALOG.channels[k].carrier in ("dhl", "ups", "yun_line"),
        ),
    ]
    for constraints, ok in cases:
        d = decide(t, {"loss": p_loss, "reject": p_reject}, costs, constraints, carriers)
        r1 = int(d.recommended[0])
        assert r1 != r0 and not d.allowed[0, r0], constraints
        assert r1 == brute_force(t, d, ok), constraints
        assert d.cheapest[0] == r0  # cheapest is by price among eligible, constraints aside
        assert d.saving_vs_cheapest_usd[0] == pytest.approx(
            d.expected_cost[0, r0] - d.expected_cost[0, r1]
        )
        assert d.saving_vs_cheapest_usd[0] < 0  # the constraint costs money


def test_max_price_removes_the_recommendation():
    # Expensive parcel, risky cheap channels: an express channel is recommended ...
    t = table([record(declared_value=1500.0, weight_kg=0.5)])
    p_loss = risk_by_tracking(t, 0.2, 0.1, 0.002)
    p_reject = np.full(t.shape, 0.02)
    free = decide(t, {"loss": p_loss, "reject": p_reject}, SellerCosts())
    r0 = int(free.recommended[0])
    assert r0 != free.cheapest[0] and free.saving_vs_cheapest_usd[0] > 0
    # ... until the seller caps the price below it.
    cap = float(t.price_usd[0, r0]) - 0.01
    d = decide(
        t, {"loss": p_loss, "reject": p_reject}, SellerCosts(), Constraints(max_price_usd=cap)
    )
    r1 = int(d.recommended[0])
    assert r1 != r0 and t.price_usd[0, r1] <= cap
    assert r1 == brute_force(t, d, lambda k: t.price_usd[0, k] <= cap)


def test_ineligible_channel_is_never_recommended():
    # Batteries: the China Post channels refuse them. Give those zero risk so they would win.
    t = table([record(goods_category="batteries", declared_value=60.0)])
    refused = [
        k for k, ch in enumerate(CATALOG.channels) if "batteries" in ch.eligibility.refused_goods
    ]
    assert refused and not t.eligible[0, refused].any()
    p_loss = np.full(t.shape, 0.3)
    p_loss[0, refused] = 0.0
    t.price_usd[0, refused] = 0.01  # even at a give-away (hypothetical) price
    d = decide(t, {"loss": p_loss, "reject": np.zeros(t.shape)}, SellerCosts())
    assert d.recommended[0] not in refused and d.cheapest[0] not in refused
    assert t.eligible[0, d.recommended[0]]
    assert blocked_reasons(int(d.blocked[0, refused[0]])) == ["not eligible for this shipment"]


def test_no_allowed_candidate_gives_no_recommendation_and_a_reason():
    t = table([record(), record(weight_kg=300.0)])  # second: too heavy for every channel
    p = np.full(t.shape, 0.01)
    carriers = candidate_carriers(CATALOG, t.channel_index)
    d = decide(
        t,
        {"loss": p, "reject": p},
        SellerCosts(),
        Constraints(allowed_carriers=("nobody",)),
        carriers,
    )
    assert d.recommended.tolist() == [-1, -1]
    assert d.cheapest[0] >= 0 and d.cheapest[1] == -1
    assert np.isnan(d.saving_vs_cheapest_usd).all()
    assert d.reasons.tolist() == [
        "no eligible channel meets the seller's constraints",
        "no eligible channel for this shipment",
    ]
    assert (d.blocked[0][t.eligible[0]] == BLOCK_CARRIER).all()
    assert (d.blocked[1] & BLOCK_INELIGIBLE).all()
    # Unscored (NaN risk) and empty candidate sets do not crash either.
    d = decide(t, {"loss": np.full(t.shape, np.nan), "reject": p}, SellerCosts())
    assert d.recommended.tolist() == [-1, -1]
    assert d.reasons[0] == "no eligible channel has a risk estimate and a price"
    empty = t.take(cols=np.array([], dtype=int))
    d = decide(empty, {"loss": np.zeros((2, 0)), "reject": np.zeros((2, 0))}, SellerCosts())
    assert d.recommended.tolist() == [-1, -1] and d.reasons[0] == NO_RECOMMENDATION_REASONS[1]


def test_allowed_carriers_without_carriers_is_an_error():
    t = table([record()])
    p = np.zeros(t.shape)
    with pytest.raises(ValueError, match="carriers"):
        decide(t, {"loss": p, "reject": p}, SellerCosts(), Constraints(allowed_carriers=("dhl",)))


# -- batch == row by row ----------------------------------------------------------------------


def random_records(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    countries = [*CATALOG.countries, "XX"]  # XX: unknown to the catalog
    return [
        record(
            destination_country=str(rng.choice(countries)),
            goods_category=str(rng.choice(GOODS_CATEGORIES)),
            payment_method=str(rng.choice(["prepaid", "cod"], p=[0.8, 0.2])),
            declared_value=float(rng.lognormal(4.5, 1.2)),
            currency=str(rng.choice(["USD", "EUR", "CNY"])),
            weight_kg=float(rng.uniform(0.05, 35)),
            length_cm=float(rng.uniform(5, 90)),
            width_cm=float(rng.uniform(5, 40)),
            height_cm=float(rng.uniform(1, 40)),
        )
        for _ in range(n)
    ]


def assert_same(a, b):
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)


def test_batch_equals_row_by_row():
    records = random_records(200, seed=3)
    costs = SellerCosts(reship_policy="reship", risk_aversion=1.5, delay_cost_per_day_usd=0.2)
    constraints = Constraints(
        require_tracking="partial",
        max_transit_days=30,
        allowed_carriers=("china_post", "dhl", "yun_line", "ups"),
    )
    rng = np.random.default_rng(4)
    batch = table(records, costs)
    p_loss = rng.uniform(0, 0.2, batch.shape)
    p_reject = rng.uniform(0, 0.3, batch.shape)
    carriers = candidate_carriers(CATALOG, batch.channel_index)
    d = decide(batch, {"loss": p_loss, "reject": p_reject}, costs, constraints, carriers)
    assert (d.recommended >= 0).sum() > 100 and (d.recommended == -1).any()  # both paths used
    assert d.insure.any() and not d.insure.all()
    for i, rec in enumerate(records):
        row = table([rec], costs)
        assert_same(row, batch.take(i))
        di = decide(
            row,
            {"loss": p_loss[i : i + 1], "reject": p_reject[i : i + 1]},
            costs,
            constraints,
            carriers,
        )
        for name in (
            "insure",
            "expected_cost",
            "allowed",
            "recommended",
            "cheapest",
            "saving_vs_cheapest_usd",
            "no_recommendation",
        ):
            np.testing.assert_array_equal(getattr(di, name)[0], getattr(d, name)[i], err_msg=name)
    # The recommendation is the minimum over allowed candidates, and is always eligible.
    rows = np.flatnonzero(d.recommended >= 0)
    rec = d.recommended[rows]
    assert batch.eligible[rows, rec].all() and d.allowed[rows, rec].all()
    best = np.where(d.allowed, d.expected_cost, np.inf).min(axis=1)
    np.testing.assert_array_equal(d.expected_cost[rows, rec], best[rows])


# -- request candidates, reasons --------------------------------------------------------------


def test_listed_candidates_quotes_and_unknown_channel():
    listed = [
        {"channel_id": "epacket", "quoted_price_usd": 5.0},
        {"channel_id": "no_such_channel"},
        {"channel_id": "cnpost_untracked", "quoted_premium_usd": 0.5},
        {"channel_id": "tnt_economy"},  # does not serve the US
    ]
    costs = SellerCosts()
    t, ids = candidates_for_shipment(CATALOG, record(), costs, listed)
    assert ids == [c["channel_id"] for c in listed]
    assert t.channel_index[0].tolist() == [
        IDS.index("epacket"),
        -1,
        IDS.index("cnpost_untracked"),
        IDS.index("tnt_economy"),
    ]
    assert t.price_usd[0, 0] == 5.0
    assert t.eligible[0].tolist() == [True, False, True, False]
    # Quoted premium makes insurance possible where the channel has none (cover = value).
    assert t.insurable[0, 2] and t.premium_usd[0, 2] == 0.5 and math.isinf(t.max_cover_usd[0, 2])
    d = decide(t, {"loss": np.full(t.shape, 0.05), "reject": np.zeros(t.shape)}, costs)
    assert d.recommended[0] in (0, 2) and d.insure[0, 2]
    reasons = ineligibility_reasons(CATALOG, record(), ids)
    assert set(reasons) == {"no_such_channel", "tnt_economy"}
    assert reasons["tnt_economy"] == ["does not deliver to US"]
    default, default_ids = candidates_for_shipment(CATALOG, record(), costs)
    assert default.eligible.all() and "tnt_economy" not in default_ids and "epacket" in default_ids


def test_ineligibility_reasons_agree_with_catalog():
    records = random_records(300, seed=5)
    t = table(records)
    for i, rec in enumerate(records):
        reasons = ineligibility_reasons(CATALOG, rec, IDS)
        expected = {IDS[k] for k in np.flatnonzero(~t.eligible[i])}
        assert set(reasons) == expected, rec
        assert all(reasons.values())


# -- settings models ----------------------------------------------------------------------------


def test_settings_models_bounds_and_overrides():
    with pytest.raises(ValidationError):
        SellerCosts(goods_cost_ratio=1.5)
    with pytest.raises(ValidationError):
        SellerCosts(surprise=1)
    with pytest.raises(ValidationError):
        Constraints(require_tracking="some")
    with pytest.raises(ValidationError):
        Constraints(max_price_usd=-1)
    schema = SellerCosts.model_json_schema()["properties"]
    assert schema["claim_paid_probability"]["maximum"] == 1
    assert Constraints.model_json_schema()["additionalProperties"] is False
    base = SellerCosts(goods_cost_ratio=0.3, risk_aversion=2.0)
    merged = resolve_costs(base, SellerCosts(risk_aversion=1.2))  # only set fields override
    assert (merged.goods_cost_ratio, merged.risk_aversion) == (0.3, 1.2)
    assert resolve_costs(base, {"reship_policy": "reship"}).reship_policy == "reship"
    with pytest.raises(ValidationError):
        resolve_costs(base, {"risk_aversion": -1})


# -- seller actions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "codes"),
    [
        ({}, []),
        ({"address_quality": "unverified"}, ["verify_address"]),
        ({"address_quality": "corrected"}, ["verify_address"]),
        ({"address_quality": None}, []),  # unknown: nothing to change
        ({"packaging": "envelope"}, ["use_box"]),
        ({"packaging": "poly_mailer"}, ["use_box"]),
        ({"packaging": "reinforced_box"}, []),
        ({"valuable_wording": True}, ["remove_valuable_wording"]),
        ({"valuable_wording": float("nan")}, []),
        ({"payment_method": "cod"}, ["switch_to_prepaid"]),
        ({"duties_terms": "DDU"}, ["ship_ddp"]),
        ({"destination_country": "BR"}, ["add_tax_id"]),  # BR requires it, it is missing
        ({"destination_country": "BR", "recipient_tax_id_present": True}, []),
        ({"destination_country": "BR", "recipient_tax_id_present": None}, []),
        ({"destination_country": "XX"}, []),  # unknown country: no tax id rule known
        (
            {
                "address_quality": "unverified",
                "valuable_wording": True,
                "payment_method": "cod",
                "duties_terms": "DDU",
                "destination_country": "SA",
            },
            ["verify_address", "remove_valuable_wording", "switch_to_prepaid", "ship_ddp"],
        ),
    ],
)
def test_which_actions_apply(overrides, codes):
    """The rule table says only whether an action applies (the field is known and can be
    changed); whether it is shown is measured (tests/decisions/test_actions.py)."""
    rec = record(**overrides)
    dest = CATALOG.destination_by_country.get(rec["destination_country"])
    assert [c.code for c in applicable(rec, dest)] == codes
    for change in applicable(rec, dest):
        changed = changed_order(rec, change.field, change.value)
        assert changed[change.field] == change.value and changed != rec
        assert change not in applicable(changed, dest)
    assert len(set(ACTION_CODES)) == len(ACTION_CODES)


def test_ship_ddp_changes_who_pays_the_duties():
    """Only a DDU order shipped DDP has the seller absorb the duties (the buyer's price did
    not include them); an order already sold DDP does not."""
    ddu = record(duties_terms="DDU", destination_country="IN")
    assert changed_order(ddu, "duties_terms", "DDP")[DUTIES_ABSORBED] is True
    assert DUTIES_ABSORBED not in changed_order(record(), "duties_terms", "DDP")
    assert DUTIES_ABSORBED not in changed_order(ddu, "address_quality", "verified")


def test_cost_overrides_refuse_booleans() -> None:
    """``{"goods_cost_ratio": true}`` is a wrong type, not 1.0."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not true or false"):
        SellerCosts.model_validate_json('{"goods_cost_ratio": true}')
    with pytest.raises(ValidationError, match="not true or false"):
        Constraints.model_validate_json('{"max_price_usd": false}')
    assert SellerCosts.model_validate_json('{"goods_cost_ratio": 1}').goods_cost_ratio == 1.0
