"""The HTTP guard rails in-process (no server): error shapes, field names from the contract,
load shedding and the deadline, each driven as a plain ASGI app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import ValidationError

from shiprisk.data.contract import example_request
from shiprisk.serving.errors import (
    UNKNOWN_FIELD,
    contract_names,
    describe_refusal,
    reshape,
)
from shiprisk.serving.gate import ContractGateMiddleware
from shiprisk.serving.middleware import ErrorShapeMiddleware
from shiprisk.serving.overload import DeadlineMiddleware, LoadShedMiddleware
from shiprisk.serving.schemas import BatchRequest, ScoreRequest

KNOWN = contract_names([ScoreRequest, BatchRequest])
MARK = "Jane-Roe-1-Main-St"


async def call(
    app: Any, path: str = "/score", body: bytes = b"", headers: tuple = ()
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {"type": "http", "method": "POST", "path": path, "headers": list(headers)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    data = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start.get("headers", [])), data


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def shaped(data: bytes) -> dict[str, Any]:
    body = json.loads(data)
    assert set(body) == {"error", "fields"} and isinstance(body["error"], str), body
    return body


def test_unknown_keys_are_named_by_their_parent_never_by_themselves() -> None:
    body = {
        **example_request(),
        f"buyer {MARK}": MARK,
        "costs": {MARK: 1},
        "candidates": [{"channel_id": "x", MARK: 2}],
    }
    with pytest.raises(ValidationError) as exc:
        ScoreRequest.model_validate_json(json.dumps(body))
    fields = describe_refusal(exc.value, KNOWN)
    assert MARK not in json.dumps(fields)
    assert {"field": "body", "reason": UNKNOWN_FIELD} in fields
    assert {"field": "costs", "reason": UNKNOWN_FIELD} in fields
    assert {"field": "candidates.0", "reason": UNKNOWN_FIELD} in fields
    assert len(fields) == len({(f["field"], f["reason"]) for f in fields})  # no duplicates


def test_known_fields_keep_their_full_location() -> None:
    batch = {"shipments": [example_request(), {**example_request(), "weight_kg": -1}]}
    with pytest.raises(ValidationError) as exc:
        BatchRequest.model_validate_json(json.dumps(batch))
    assert [f["field"] for f in describe_refusal(exc.value, KNOWN)] == ["shipments.1.weight_kg"]


@pytest.mark.parametrize(
    ("status", "raw", "fields"),
    [
        (404, b"Not Found", []),
        (405, b"Method Not Allowed", []),
        (415, json.dumps([{"error": f"bad {MARK}"}]).encode(), ["body"]),  # BentoML's list
        (429, b'{"error": "Too many requests"}', []),  # BentoML's max_concurrency
        (504, b'{"error": "Not able to process the request in 30 seconds"}', []),
        (500, b'{"error": "An unexpected error has occurred"}', []),
        (400, json.dumps({"error": "x", "detail": [{"loc": [MARK], "msg": "m"}]}).encode(), []),
        (400, json.dumps({"error": "x", "detail": [{"loc": ["order_id"], "msg": "m"}]}).encode(),
         ["order_id"]),
    ],
)  # fmt: skip
def test_foreign_error_bodies_are_reshaped_without_their_text(
    status: int, raw: bytes, fields: list[str]
) -> None:
    body = shaped(reshape(raw, status, KNOWN))
    assert MARK not in json.dumps(body) and "unexpected" not in body["error"]
    if fields:
        assert [f["field"] for f in body["fields"]] == fields
    elif status == 400:
        assert [f["field"] for f in body["fields"]] == ["body"]
    else:
        assert body["fields"] == []


def test_error_shape_turns_plain_text_and_exceptions_into_the_documented_body() -> None:
    async def not_found(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"9")]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b"Not Found"})

    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError(MARK)

    status, headers, data = asyncio.run(call(ErrorShapeMiddleware(not_found, KNOWN)))
    assert status == 404 and headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(data) and shaped(data)["fields"] == []
    status, _, data = asyncio.run(call(ErrorShapeMiddleware(broken, KNOWN)))
    assert status == 500 and MARK not in data.decode() and shaped(data)


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=",
        b"multipart/form-data; boundary=zz",
        b"text/plain",
        b"application/xml",
        b"application/jsonx",
    ],
)
def test_gate_refuses_non_json_bodies_with_415(content_type: bytes) -> None:
    gate = ContractGateMiddleware(ok_app, {"/score": ScoreRequest})
    headers = ((b"content-type", content_type),)
    status, _, data = asyncio.run(call(gate, body=f"a={MARK}".encode(), headers=headers))
    assert status == 415 and shaped(data)["fields"][0]["field"] == "body"


def test_gate_passes_valid_json_and_leaves_other_paths_alone() -> None:
    gate = ContractGateMiddleware(ok_app, {"/score": ScoreRequest})
    valid = json.dumps(example_request()).encode()
    for ctype in ((), ((b"content-type", b"application/json; charset=utf-8"),)):
        assert asyncio.run(call(gate, body=valid, headers=ctype))[0] == 200
    assert asyncio.run(call(gate, path="/other", body=b"x"))[0] == 200
    status, _, data = asyncio.run(call(gate, body=b'{"' + MARK.encode() + b'": 1}'))
    assert status == 400 and MARK not in data.decode()


def test_load_shedding_answers_503_with_retry_after_beyond_the_limit() -> None:
    async def scenario() -> list[tuple[int, dict[bytes, bytes], bytes]]:
        release = asyncio.Event()

        async def slow(scope: Any, receive: Any, send: Any) -> None:
            await release.wait()
            await ok_app(scope, receive, send)

        shed = LoadShedMiddleware(slow, limit=2)
        busy = [asyncio.ensure_future(call(shed)) for _ in range(2)]
        await asyncio.sleep(0)
        refused = await call(shed)
        health = await asyncio.wait_for(call(LoadShedMiddleware(ok_app, 0), "/livez"), 1)
        release.set()
        return [refused, health, *await asyncio.gather(*busy)]

    (status, headers, data), health, *accepted = asyncio.run(scenario())
    assert status == 503 and headers[b"retry-after"] == b"1" and shaped(data)["fields"] == []
    assert health[0] == 200  # probes are never shed
    assert [a[0] for a in accepted] == [200, 200]


def test_deadline_answers_504_in_the_documented_shape() -> None:
    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(30)

    status, _, data = asyncio.run(call(DeadlineMiddleware(stuck, seconds=0.05)))
    assert status == 504 and shaped(data)["fields"] == []
    assert asyncio.run(call(DeadlineMiddleware(ok_app, seconds=1)))[0] == 200
