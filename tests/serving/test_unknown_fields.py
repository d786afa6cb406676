"""SHIPRISK_UNKNOWN_FIELDS: unknown request keys are refused (default) or dropped unseen.

The ignore mode is checked on the real contract gate in-process (a second BentoML server per
session costs a minute); the default is checked on the session's real server."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from pydantic import ValidationError

from shiprisk.data.contract import example_request
from shiprisk.serving.gate import ContractGateMiddleware
from shiprisk.serving.schemas import BatchRequest, ScoreRequest
from shiprisk.settings import Settings

SECRET = "Jane Buyer, 12 Hidden Street"


def _with_extras() -> dict:
    return {
        **example_request(),
        "buyer_name": SECRET,
        "candidates": [{"channel_id": "ems", "note": SECRET}, {"channel_id": "epacket"}],
        "costs": {"goods_cost_ratio": 0.5, "loyalty_tier": SECRET},
    }


def _through_gate(mode: str, path: str, body: dict) -> tuple[httpx.Response, list[bytes]]:
    """POST ``body`` through the real gate; the app behind it records what reaches it."""
    seen: list[bytes] = []

    async def app(scope, receive, send) -> None:
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    gate = ContractGateMiddleware(
        app, {"/score": ScoreRequest, "/score_batch": BatchRequest}, unknown_fields=mode
    )

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=gate)
        async with httpx.AsyncClient(transport=transport, base_url="http://gate") as client:
            return await client.post(path, json=body)

    return asyncio.run(post()), seen


def test_the_setting_reads_the_environment(monkeypatch) -> None:
    assert Settings().unknown_fields == "reject"
    monkeypatch.setenv("SHIPRISK_UNKNOWN_FIELDS", "ignore")
    assert Settings().unknown_fields == "ignore"
    monkeypatch.setenv("SHIPRISK_UNKNOWN_FIELDS", "drop")
    with pytest.raises(ValidationError, match="unknown_fields"):
        Settings()


def test_reject_names_the_parent_never_the_key() -> None:
    answer, seen = _through_gate("reject", "/score", _with_extras())
    assert answer.status_code == 400 and not seen
    fields = {f["field"] for f in answer.json()["fields"]}
    assert fields == {"body", "candidates.0", "costs"}
    assert SECRET not in answer.text and "buyer_name" not in answer.text


@pytest.mark.parametrize("path", ["/score", "/score_batch"])
def test_ignore_drops_unknown_keys_before_anything_sees_them(path: str, caplog) -> None:
    body = _with_extras()
    if path == "/score_batch":
        body = {"shipments": [body, {**body, "order_id": "SO-2"}], "batch_note": SECRET}
    caplog.set_level(logging.DEBUG)
    answer, seen = _through_gate("ignore", path, body)
    assert answer.status_code == 200, answer.text
    passed = json.loads(seen[0])
    assert SECRET not in seen[0].decode() and SECRET not in caplog.text
    shipments = passed["shipments"] if path == "/score_batch" else [passed]
    for shipment in shipments:  # the known fields arrive untouched
        assert "buyer_name" not in shipment
        assert shipment["costs"] == {"goods_cost_ratio": 0.5}
        assert shipment["candidates"] == [{"channel_id": "ems"}, {"channel_id": "epacket"}]
        assert shipment["weight_kg"] == example_request()["weight_kg"]


def test_ignore_still_refuses_bad_known_fields() -> None:
    body = {**_with_extras(), "weight_kg": -1}
    answer, seen = _through_gate("ignore", "/score", body)
    assert answer.status_code == 400 and not seen
    assert [f["field"] for f in answer.json()["fields"]] == ["weight_kg"]
    assert SECRET not in answer.text


@pytest.mark.slow
def test_the_server_rejects_unknown_fields_by_default(api, server) -> None:
    answer = api.post("/score", json=_with_extras())
    assert answer.status_code == 400
    assert {f["field"] for f in answer.json()["fields"]} == {"body", "candidates.0", "costs"}
    assert SECRET not in answer.text
    assert SECRET not in server.log_path.read_text()
