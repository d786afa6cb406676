"""Property tests of the scoring path: any valid request scores sanely; anything else is refused.

Valid requests are drawn from the contract's own table (``SPECS``: bounds, enums, patterns)
and the API's optional parts (channel, candidates with quotes, constraints, cost overrides),
then scored in-process by the session champion through :class:`Scorer`. Invalid requests
are a valid one with a single value broken; ``ScoreRequest`` validation must refuse them and
name the broken field, so nothing invalid is ever scored silently.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shiprisk.data import contract
from shiprisk.data.catalogs import load_catalog
from shiprisk.data.contract import GOODS_CATEGORIES, SHIPMENT_FIELDS, SPECS
from shiprisk.data.validation import describe_validation_error
from shiprisk.decisions.costs import Constraints, SellerCosts
from shiprisk.serving.schemas import ScoreRequest
from shiprisk.serving.scorer import Scorer

CATALOG = load_catalog()
NOW = datetime.now(UTC)
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

FEW = settings(SETTINGS, max_examples=12)
"""Per parametrized field: every field gets its own broken values."""


# -- valid requests -----------------------------------------------------------------------------


TYPICAL: dict[str, st.SearchStrategy[Any]] = {
    "weight_kg": st.floats(0.02, 30),
    "length_cm": st.floats(1, 120),
    "width_cm": st.floats(1, 80),
    "height_cm": st.floats(0.5, 60),
    "declared_value": st.floats(0.5, 3000),
    "item_count": st.integers(1, 20),
}
"""Parcels a seller really ships: most channels accept them, so policies get compared. The
rest of the requests use the contract's full ranges (mostly refused by every channel)."""


def _value(name: str, typical: bool = False) -> st.SearchStrategy[Any]:
    """Any value the contract accepts for one shipment field."""
    spec = SPECS[name]
    if typical and name in TYPICAL:
        return TYPICAL[name]
    if spec.kind == "enum":
        return st.sampled_from(spec.values)
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "int":
        return st.integers(int(spec.ge if spec.ge is not None else spec.gt + 1), int(spec.le))
    if spec.kind == "float":
        low = spec.ge if spec.ge is not None else spec.gt
        return st.floats(low, spec.le, exclude_min=spec.gt is not None, allow_nan=False)
    if spec.kind == "datetime":
        return st.datetimes(
            datetime(2000, 1, 1, 0, 0, 1), NOW.replace(tzinfo=None), timezones=st.just(UTC)
        )
    if name == "destination_country":  # mostly catalog countries, sometimes an unknown code
        return st.one_of(
            st.sampled_from(CATALOG.countries), st.from_regex(spec.pattern, fullmatch=True)
        )
    return st.from_regex(spec.pattern, fullmatch=True)


def _channel() -> st.SearchStrategy[str]:
    """Mostly catalog channels, sometimes an id the catalog does not know."""
    known = st.sampled_from(CATALOG.channel_ids)
    return st.one_of(known, known, st.from_regex(contract.CHANNEL_PATTERN, fullmatch=True))


def _money(high: float) -> st.SearchStrategy[float]:
    return st.floats(0, high, allow_nan=False)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ``ScoreRequest`` body (JSON types), with random optional parts."""
    typical = draw(st.integers(0, 3)) > 0  # three in four parcels are typical
    body = {name: draw(_value(name, typical)) for name in SHIPMENT_FIELDS}
    body["buyer_prior_refusals"] = min(body["buyer_prior_refusals"], body["buyer_prior_orders"])
    body["created_at"] = body["created_at"].isoformat()
    if draw(st.booleans()):
        body["channel_id"] = draw(_channel())
    if draw(st.integers(0, 3)) == 0:
        ids = draw(st.lists(_channel(), min_size=1, max_size=6, unique=True))
        body["candidates"] = [
            {
                "channel_id": cid,
                **({"quoted_price_usd": draw(_money(500))} if draw(st.booleans()) else {}),
                **({"quoted_premium_usd": draw(_money(50))} if draw(st.booleans()) else {}),
            }
            for cid in ids
        ]
    if draw(st.booleans()):
        body["constraints"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "require_tracking": st.sampled_from(("none", "partial", "full")),
                    "max_transit_days": st.floats(1, 365),
                    "max_price_usd": st.floats(0.5, 1000),
                    "allowed_carriers": st.lists(
                        st.sampled_from(sorted({c.carrier for c in CATALOG.channels})),
                        min_size=1,
                        max_size=4,
                    ),
                },
            )
        )
    if draw(st.booleans()):
        body["costs"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "goods_cost_ratio": st.floats(0, 1),
                    "reship_policy": st.sampled_from(("refund", "reship")),
                    "unrecoverable_share": st.floats(0, 1),
                    "risk_aversion": st.floats(0, 10),
                    "delay_cost_per_day_usd": st.floats(0, 1000),
                    "claim_paid_probability": st.floats(0, 1),
                    "liability_paid_probability": st.floats(0, 1),
                    "uninsurable_goods": st.lists(st.sampled_from(GOODS_CATEGORIES), max_size=3),
                },
            )
        )
    return body


def _finite_or_none(value: float | None) -> bool:
    return value is None or math.isfinite(value)


@SETTINGS
@given(body=requests())
def test_any_valid_request_scores_within_bounds(scorer: Scorer, body: dict[str, Any]) -> None:
    request = ScoreRequest.model_validate_json(json.dumps(body))  # the API's parsing path
    response = scorer.score(request)

    assert response.order_id == body["order_id"]
    assert response.model == scorer.ref
    listed = [c["channel_id"] for c in body.get("candidates", ())]
    if listed:  # a listed channel is always reported, even when ineligible or unknown
        assert [c.channel_id for c in response.channels] == listed
    for ch in response.channels:
        for p in (ch.p_loss, ch.p_reject):
            assert math.isfinite(p) and 0.0 <= p <= 1.0, ch
        assert ch.p_loss + ch.p_reject <= 1.0, ch
        for cost in (ch.expected_cost_usd, ch.expected_cost_uninsured_usd, ch.price_usd):
            assert _finite_or_none(cost), ch
        if ch.allowed:  # a channel that can be recommended has a price and a finite cost
            assert ch.eligible and ch.channel_id in CATALOG.channel_index
            assert ch.price_usd is not None and ch.expected_cost_usd is not None
    rec = response.recommendation
    if rec is None:
        assert response.no_recommendation_reason
        assert not any(ch.allowed for ch in response.channels)
    else:
        best = next(ch for ch in response.channels if ch.channel_id == rec.channel_id)
        assert best.allowed
        assert math.isfinite(rec.expected_cost_usd) and math.isfinite(rec.price_usd)
        assert rec.p_loss + rec.p_reject <= 1.0
        # The recommendation maximises the seller's certainty-equivalent profit (issue 16).
        allowed = [ch.certainty_equivalent_usd for ch in response.channels if ch.allowed]
        assert rec.certainty_equivalent_usd == pytest.approx(max(allowed))
    json.loads(response.model_dump_json(), parse_constant=_refuse)  # no NaN/Infinity tokens


def _refuse(token: str) -> None:
    raise AssertionError(f"{token} in the JSON answer")


# -- invalid requests ---------------------------------------------------------------------------

FUTURE = NOW + contract.MAX_FUTURE + timedelta(days=1)


def _bad_values(name: str) -> st.SearchStrategy[Any]:
    """Values the contract must refuse for one shipment field (wrong type, range, enum...)."""
    spec = SPECS[name]
    null = [None] if SPECS[name].core else []  # null is "unknown" for an optional field
    wrong_type = st.sampled_from([*null, [], {}, [1, 2], {"x": 1}])
    if spec.kind == "enum":
        return st.one_of(
            wrong_type,
            st.integers(),
            st.text(max_size=12).filter(lambda s: s not in spec.values),
            st.sampled_from(spec.values).map(str.swapcase),
        )
    if spec.kind == "bool":
        return st.one_of(wrong_type, st.sampled_from(["maybe", "2", "nope", 2, -1, 0.5]))
    if spec.kind in ("int", "float"):
        low = spec.ge if spec.ge is not None else spec.gt
        below = st.floats(-1e12, low, exclude_max=spec.ge is not None, allow_nan=False)
        outs = [
            wrong_type,
            st.sampled_from(["abc", "1e", "", "ten"]),
            below,
            st.floats(spec.le, 1e300, exclude_min=True),
        ]
        if spec.kind == "float":
            outs.append(st.sampled_from([math.nan, math.inf, -math.inf]))
        else:
            outs.append(st.floats(0.1, 0.9).map(lambda f, lo=low: int(lo) + 1 + f))
        return st.one_of(*outs)
    if spec.kind == "datetime":
        return st.one_of(
            wrong_type,
            st.sampled_from(["yesterday", "2025-13-01T00:00:00Z", "", 1.5]),
            st.datetimes(FUTURE.replace(tzinfo=None), datetime(9999, 1, 1)).map(
                lambda d: d.isoformat() + "Z"
            ),
            st.datetimes(datetime(1, 1, 1), datetime(1999, 12, 31)).map(
                lambda d: d.isoformat() + "Z"
            ),
        )
    # strings: empty, overlong, outside the pattern, or not a string
    too_long = st.text(min_size=spec.max_length + 1, max_size=spec.max_length + 200)
    return st.one_of(
        wrong_type,
        st.integers(),
        st.just(""),
        too_long,
        st.text(min_size=1, max_size=spec.max_length).filter(
            lambda s: not contract_match(spec.pattern, s)
        ),
    )


def contract_match(pattern: str, value: str) -> bool:
    import re

    return re.fullmatch(pattern, value) is not None


# Nested optional parts: (path in the error, key inside the part, bad values).
NESTED_BAD: tuple[tuple[str, str, st.SearchStrategy[Any]], ...] = (
    ("channel_id", "channel_id", st.sampled_from(["", "UPPER", "a" * 41, "sp ace", 7])),
    ("candidates", "candidates", st.sampled_from([[], "epacket", [{"channel_id": "x"}] * 31])),
    (
        "candidates.0.quoted_price_usd",
        "quoted_price_usd",
        st.sampled_from([-1.0, math.nan, math.inf, 1e9, "cheap"]),
    ),
    (
        "constraints.max_transit_days",
        "max_transit_days",
        st.sampled_from([0, -3, 366, math.nan, math.inf, "week"]),
    ),
    ("constraints.require_tracking", "require_tracking", st.sampled_from(["gps", "FULL", 1])),
    ("costs.goods_cost_ratio", "goods_cost_ratio", st.sampled_from([-0.1, 1.5, math.nan, "x"])),
    ("costs.risk_aversion", "risk_aversion", st.sampled_from([-1, 11, math.inf])),
    ("costs.reship_policy", "reship_policy", st.sampled_from(["resend", None, 3])),
    ("costs.uninsurable_goods.0", "uninsurable_goods", st.just(["gold"])),
)


def _nest(body: dict[str, Any], path: str, key: str, value: Any) -> dict[str, Any]:
    body = dict(body)
    head = path.split(".")[0]
    if head == "candidates" and key != "candidates":
        body["candidates"] = [{"channel_id": "epacket", key: value}]
    elif head in ("constraints", "costs"):
        body[head] = {key: value}
    else:
        body[key] = value
    return body


def _json(body: dict[str, Any]) -> str:
    return json.dumps(body, allow_nan=True)  # NaN/Infinity tokens, as a careless client sends


def _refused_fields(body: dict[str, Any]) -> set[str]:
    """The fields ScoreRequest blames, parsing the JSON text as the API does."""
    with pytest.raises(ValidationError) as info:
        ScoreRequest.model_validate_json(_json(body))
    return {e["field"] for e in describe_validation_error(info.value)}


@pytest.mark.parametrize("name", SHIPMENT_FIELDS)
@FEW
@given(body=requests(), data=st.data())
def test_a_broken_shipment_field_is_refused_and_named(
    name: str, body: dict[str, Any], data: st.DataObject
) -> None:
    value = data.draw(_bad_values(name), label=name)
    broken = {**body, name: value}
    blamed = _refused_fields(broken)
    # a field blamed in its own right, or under a type-union branch (e.g. "created_at")
    assert any(f == name or f.startswith(f"{name}.") for f in blamed), (name, value, blamed)
    missing = {k: v for k, v in body.items() if k != name}
    if SPECS[name].core:
        assert name in _refused_fields(missing)  # required: leaving it out is refused too
    else:  # optional: leaving it out (or null) is unknown, not an error
        assert ScoreRequest.model_validate_json(_json(missing))
        assert ScoreRequest.model_validate_json(_json({**body, name: None}))


@pytest.mark.parametrize("part", NESTED_BAD, ids=[p[0] for p in NESTED_BAD])
@FEW
@given(body=requests(), data=st.data())
def test_a_broken_optional_part_is_refused_and_named(
    part: tuple[str, str, st.SearchStrategy[Any]], body: dict[str, Any], data: st.DataObject
) -> None:
    path, key, values = part
    broken = _nest(body, path, key, data.draw(values, label=path))
    blamed = _refused_fields(broken)
    head = path.split(".")[0]
    assert any(f == path or f.startswith(f"{head}") for f in blamed), (path, blamed)


@SETTINGS
@given(body=requests(), extra=st.from_regex(r"[a-z]{1,12}", fullmatch=True))
def test_unknown_fields_and_absurd_combinations_are_refused(body: dict[str, Any], extra: str):
    if extra not in ScoreRequest.model_fields:
        assert extra in _refused_fields({**body, extra: 1})
    # a buyer who refused more parcels than they ever ordered
    orders = body["buyer_prior_orders"]
    if orders < SPECS["buyer_prior_refusals"].le:
        refused = {**body, "buyer_prior_refusals": orders + 1}
        assert "buyer_prior_refusals" in _refused_fields(refused)


def test_constraints_and_costs_models_refuse_unknown_keys() -> None:
    """Typos in the optional parts are errors too, not silently ignored settings."""
    for model, key in ((Constraints, "max_days"), (SellerCosts, "goods_ratio")):
        with pytest.raises(ValidationError):
            model.model_validate({key: 1})
