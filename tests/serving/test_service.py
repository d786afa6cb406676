"""Checkout scoring over HTTP against the real BentoML server (one per session)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shiprisk.data.contract import SHIPMENT_FIELDS, example_request
from shiprisk.models import registry
from shiprisk.settings import CHAMPION


def _request(**changes) -> dict:
    return {**example_request(), **changes}


def test_score_matches_the_loaded_model(api, champion_model) -> None:
    body = _request(destination_country="MX", payment_method="cod", declared_value=80.0)
    answer = api.post("/score", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    ids = [c["channel_id"] for c in data["channels"]]
    assert ids and all(c["eligible"] for c in data["channels"])
    record = {f: body[f] for f in SHIPMENT_FIELDS}
    p_loss, p_reject = champion_model.predict_records(
        [{**record, "channel_id": c} for c in ids]
    ).values()
    np.testing.assert_allclose([c["p_loss"] for c in data["channels"]], p_loss, atol=1e-12)
    np.testing.assert_allclose([c["p_reject"] for c in data["channels"]], p_reject, atol=1e-12)
    rec = data["recommendation"]
    costs = {c["channel_id"]: c["expected_cost_usd"] for c in data["channels"] if c["allowed"]}
    assert costs[rec["channel_id"]] == min(costs.values())  # shown to the cent: ties possible
    assert data["reasons"] and {r["outcome"] for r in data["reasons"]} <= {"loss", "reject"}
    assert data["model"]["version"] == str(registry.get_version(CHAMPION).version)


def test_score_batch_answers_each_shipment_like_score(api) -> None:
    shipments = [
        _request(order_id=f"B-{i}", destination_country=c) for i, c in enumerate(["US", "IN", "DE"])
    ]
    answer = api.post("/score_batch", json={"shipments": shipments})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["order_id"] for r in results] == ["B-0", "B-1", "B-2"]
    single = api.post("/score", json=shipments[1]).json()
    assert results[1]["channels"] == single["channels"]
    assert results[1]["recommendation"] == single["recommendation"]


def test_a_constraint_removes_the_cheapest_channel(api) -> None:
    free = api.post("/score", json=_request()).json()
    cheapest = free["recommendation"]["cheapest_channel_id"]
    untracked = [c for c in free["channels"] if c["tracking"] == "none"]
    assert untracked, "the example shipment should have an untracked option"
    bound = api.post("/score", json=_request(constraints={"require_tracking": "full"})).json()
    rec = bound["recommendation"]["channel_id"]
    by_id = {c["channel_id"]: c for c in bound["channels"]}
    assert by_id[rec]["tracking"] == "full"
    assert not by_id[untracked[0]["channel_id"]]["allowed"]
    assert by_id[untracked[0]["channel_id"]]["blocked_reasons"]
    if free["recommendation"]["channel_id"] == cheapest:
        assert rec != cheapest


def test_listed_candidates_with_quotes_and_an_ineligible_channel(api) -> None:
    body = _request(
        goods_category="batteries",
        candidates=[
            {"channel_id": "epacket"},  # refuses batteries
            {"channel_id": "dhl_express", "quoted_price_usd": 5.0},
            {"channel_id": "dedicated_line"},
        ],
    )
    data = api.post("/score", json=body).json()
    by_id = {c["channel_id"]: c for c in data["channels"]}
    assert list(by_id) == ["epacket", "dhl_express", "dedicated_line"]
    assert not by_id["epacket"]["eligible"]
    assert any("batteries" in r for r in by_id["epacket"]["ineligible_reasons"])
    assert by_id["dhl_express"]["price_usd"] == 5.0
    assert data["recommendation"]["channel_id"] != "epacket"


def test_unknown_country_and_channel_are_scored_with_warnings(api) -> None:
    body = _request(
        destination_country="ZZ",
        candidates=[{"channel_id": "dhl_express"}, {"channel_id": "teleport_line"}],
    )
    answer = api.post("/score", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    text = " ".join(data["warnings"])
    assert "ZZ" in text and "teleport_line" in text
    by_id = {c["channel_id"]: c for c in data["channels"]}
    assert not by_id["teleport_line"]["eligible"]
    assert 0 <= by_id["teleport_line"]["p_loss"] <= 1
    if data["recommendation"]:
        assert data["recommendation"]["channel_id"] != "teleport_line"


BAD_INPUTS = [
    (
        "missing field",
        {k: v for k, v in example_request().items() if k != "declared_value"},
        "declared_value",
    ),
    ("wrong type", _request(item_count="many"), "item_count"),
    ("unknown currency", _request(currency="XYZ"), "currency"),
    ("negative value", _request(declared_value=-5), "declared_value"),
    ("negative weight", _request(weight_kg=-0.1), "weight_kg"),
    ("absurd weight", _request(weight_kg=10_000), "weight_kg"),
    ("unknown enum", _request(payment_method="bitcoin"), "payment_method"),
    ("bad country code", _request(destination_country="usa"), "destination_country"),
    ("future date", _request(created_at="2999-01-01T00:00:00Z"), "created_at"),
    (
        "cross-field rule",
        _request(buyer_prior_orders=1, buyer_prior_refusals=3),
        "buyer_prior_refusals",
    ),
    # An unknown key is request data: named by its parent ("body"), never by itself.
    ("unknown field", _request(buyer_name="Jane"), "body"),
    (
        "bad candidate",
        _request(candidates=[{"channel_id": "ems", "quoted_price_usd": -1}]),
        "candidates.0.quoted_price_usd",
    ),
    ("bad cost override", _request(costs={"goods_cost_ratio": 3}), "costs.goods_cost_ratio"),
    ("overlong id", _request(order_id="x" * 500), "order_id"),
]


@pytest.mark.parametrize(("kind", "body", "field"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_a_400_naming_the_field(api, kind: str, body: dict, field: str) -> None:
    answer = api.post("/score", json=body)
    assert answer.status_code == 400, answer.text
    data = answer.json()
    assert data["error"]
    fields = {f["field"]: f["reason"] for f in data["fields"]}
    assert field in fields, data
    assert fields[field]


def test_malformed_json_is_a_400(api) -> None:
    answer = api.post(
        "/score", content=b'{"order_id": ', headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["fields"][0]["field"] == "body"


def test_too_many_shipments_is_a_413(api) -> None:
    answer = api.post("/score_batch", json={"shipments": [_request()] * 21})
    assert answer.status_code == 413
    assert answer.json()["fields"][0]["field"] == "shipments"


def test_oversized_body_is_a_413(api) -> None:
    blob = json.dumps(_request(order_id="x")).encode() + b" " * 70_000
    answer = api.post("/score", content=blob, headers={"content-type": "application/json"})
    assert answer.status_code == 413
