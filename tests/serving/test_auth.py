"""The live server's guard rails: API key, body and batch limits, error shapes, the OpenAPI
document, the model version in every answer, and no request values in its log.

All against the session's ``bentoml serve`` (API key on, SHIPRISK_MAX_BATCH=20,
SHIPRISK_MAX_BODY_BYTES=65536).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shiprisk.data.contract import SPECS, example_request
from shiprisk.serving.metrics import CACHE_SECONDS
from shiprisk.serving.middleware import OPENAPI_VERSION
from shiprisk.settings import CHAMPION

pytestmark = pytest.mark.slow

SCORING = ("/score", "/score_batch")
MAX_BATCH = 20
MAX_BODY = 65_536


def body_for(path: str, n: int = 1) -> dict[str, Any]:
    """A valid request for ``path`` (``n`` shipments for the batch endpoint)."""
    if path == "/score":
        return example_request()
    return {"shipments": [{**example_request(), "order_id": f"SO-{i}"} for i in range(n)]}


@pytest.fixture(scope="module")
def anon(server) -> Iterator[httpx.Client]:
    """A client that sends no key."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def assert_error_body(response: httpx.Response, *, named: bool = True) -> list[dict[str, str]]:
    body = response.json()
    assert set(body) == {"error", "fields"} and body["error"], body
    for item in body["fields"]:
        assert set(item) == {"field", "reason"} and item["field"] and item["reason"], item
    if named:
        assert body["fields"], body
    return body["fields"]


# -- API key --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCORING)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": ""},
        {"x-api-key": "wrong"},
        {"authorization": "Bearer wrong"},
        {"authorization": "Basic d3Jvbmc6d3Jvbmc="},
        {"x-api-key-typo": "any"},
    ],
    ids=["none", "empty", "wrong", "wrong-bearer", "basic", "other-header"],
)
def test_scoring_without_the_right_key_is_401(anon, path: str, headers: dict[str, str]) -> None:
    response = anon.post(path, json=body_for(path), headers=headers)
    assert response.status_code == 401
    assert assert_error_body(response, named=False) == []  # no body field is to blame


def test_near_misses_of_the_key_are_refused(anon, api) -> None:
    key = api.headers["x-api-key"]
    for wrong in (key[:-1], key + "x", key.upper(), key.swapcase()[::-1]):
        response = anon.post("/score", json=body_for("/score"), headers={"x-api-key": wrong})
        assert response.status_code == 401, wrong


@pytest.mark.parametrize("path", SCORING)
def test_key_accepted_as_header_or_bearer_token(anon, api, path: str) -> None:
    key = api.headers["x-api-key"]
    for headers in ({"x-api-key": key}, {"authorization": f"Bearer {key}"}):
        response = anon.post(path, json=body_for(path), headers=headers)
        assert response.status_code == 200, (headers.keys(), response.text[:300])


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/metrics", "/docs.json"])
def test_health_metrics_and_docs_are_open(anon, path: str) -> None:
    assert anon.get(path).status_code == 200  # /metrics: SHIPRISK_METRICS_REQUIRE_KEY is off


# -- sizes and limits ---------------------------------------------------------------------------


def _oversized() -> bytes:
    """More bytes than the limit, and not even JSON: only a size check can answer first."""
    return b"{" + b"x" * MAX_BODY


def test_oversized_body_is_413_before_it_is_read(api) -> None:
    for path in SCORING:
        response = api.post(
            path, content=_oversized(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413, response.text[:200]  # a parsed body would be 400
        assert [f["field"] for f in assert_error_body(response)] == ["body"]


def test_oversized_chunked_body_is_413(api) -> None:
    def chunks() -> Iterator[bytes]:
        data = _oversized()
        for start in range(0, len(data), 8192):
            yield data[start : start + 8192]

    request = api.build_request(
        "POST", "/score", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in request.headers  # really chunked
    assert request.headers["transfer-encoding"] == "chunked"
    response = api.send(request)
    assert response.status_code == 413
    assert_error_body(response)


def test_small_chunked_body_is_scored(api) -> None:
    raw = json.dumps(body_for("/score")).encode()
    response = api.post(
        "/score",
        content=iter([raw[:100], raw[100:]]),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text[:300]


def test_oversized_body_without_key_is_401_first(anon) -> None:
    response = anon.post("/score", content=_oversized())
    assert response.status_code == 401


def test_batch_over_the_limit_is_413_and_at_the_limit_is_scored(api) -> None:
    response = api.post("/score_batch", json=body_for("/score_batch", MAX_BATCH + 1))
    assert response.status_code == 413
    assert [f["field"] for f in assert_error_body(response)] == ["shipments"]

    response = api.post("/score_batch", json=body_for("/score_batch", MAX_BATCH))
    assert response.status_code == 200
    ids = [r["order_id"] for r in response.json()["results"]]
    assert ids == [f"SO-{i}" for i in range(MAX_BATCH)]  # one answer per shipment, in order


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("order_id", "A" * (SPECS["order_id"].max_length + 1)),
        ("order_id", "x" * 5000),
        ("channel_id", "a" * (SPECS["channel_id"].max_length + 1)),
        ("destination_country", "USA"),
        ("candidates", [{"channel_id": "b" * 41}]),
    ],
    ids=["order_id-65", "order_id-5000", "channel_id-41", "country-3", "candidate-41"],
)
def test_overlong_strings_are_400_naming_the_field(api, field: str, value: Any) -> None:
    response = api.post("/score", json={**example_request(), field: value})
    assert response.status_code == 400
    named = {f["field"] for f in assert_error_body(response)}
    assert any(n == field or n.startswith(f"{field}.") for n in named), named


def test_malformed_and_empty_bodies_are_400(api) -> None:
    for raw in (b"", b"{", b"[1, 2]", b"null", '{"order_id": "\u00e9'.encode()):
        response = api.post("/score", content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 400, raw
        assert_error_body(response)


# -- the OpenAPI document --------------------------------------------------------------------


def test_openapi_declares_the_error_answers(anon) -> None:
    doc = anon.get("/docs.json").json()
    assert doc["openapi"] == OPENAPI_VERSION
    schemas = doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "x-api-key"
    for path in SCORING:
        operation = doc["paths"][path]["post"]
        assert operation["requestBody"]["required"] is True
        assert operation["security"] == [{"ApiKey": []}]
        for code in ("400", "401", "413", "415", "503", "504"):
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}
    error_body = schemas["ErrorBody"]
    assert set(error_body["properties"]) == {"error", "fields"}
    ref = error_body["properties"]["fields"]["items"]["$ref"]
    assert ref.removeprefix("#/components/schemas/") in schemas  # resolvable from the root
    answer = doc["paths"]["/score"]["post"]["responses"]["200"]["content"]["application/json"]
    assert {"type": "null"} in answer["schema"]["properties"]["recommendation"]["anyOf"]


# -- the model version -------------------------------------------------------------------------


def test_every_answer_names_the_registry_champion(api, served_tag: str) -> None:
    from shiprisk.models import registry

    champion = registry.get_version(CHAMPION)
    single = api.post("/score", json=body_for("/score")).json()
    batch = api.post("/score_batch", json=body_for("/score_batch", 3)).json()
    refs = [single["model"], batch["model"], *(r["model"] for r in batch["results"])]
    for ref in refs:
        assert ref["version"] == str(champion.version)
        assert served_tag.endswith(ref["digest"][:12])  # the tag pins version and digest
    assert served_tag.startswith(f"shiprisk-risk:v{champion.version}-")


# -- the log ------------------------------------------------------------------------------------


def test_refused_values_never_reach_the_server_log(api, server) -> None:
    """A client that sends personal data anyway, as a value and as a key: the 400 names the
    field from the contract, and the log quotes neither (the contract gate answers before
    BentoML, which used to log each validation error with its location)."""
    probe = uuid.uuid4().hex
    field, value = f"buyer_name_{probe}", f"Jane Roe {probe[::-1]}"
    for path in SCORING:
        body = {**example_request(), field: value, "weight_kg": f"heavy {probe[::-1]}"}
        payload = body if path == "/score" else {"shipments": [body]}
        response = api.post(path, json=payload)
        assert response.status_code == 400
        assert probe not in response.text and probe[::-1] not in response.text
        assert any(f["field"].endswith("weight_kg") for f in assert_error_body(response))
    time.sleep(0.5)  # let the worker write whatever it logs
    log = server.log_path.read_text(errors="replace")
    assert "shiprisk serving" in log  # the worker's log really is this file
    assert probe not in log and probe[::-1] not in log


def test_requests_are_counted_in_metrics_without_access_log_lines(api, anon, server) -> None:
    """The access log is off by default (SHIPRISK_ACCESS_LOG); /metrics still counts /score."""

    def scored() -> float:
        text = anon.get("/metrics").text
        lines = [
            line
            for line in text.splitlines()
            if line.startswith("bentoml_service_request_total{")
            and 'endpoint="/score"' in line
            and 'http_response_code="200"' in line
        ]
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    time.sleep(CACHE_SECONDS + 0.1)  # a fresh /metrics, not one cached before earlier tests
    before = scored()
    for _ in range(3):
        assert api.post("/score", json=example_request()).status_code == 200
    counted = 0.0
    for _ in range(40):  # each worker exports its own counters: wait until all three land
        counted = scored() - before
        if counted >= 3:
            break
        time.sleep(0.25)
    assert counted == 3
    log = server.log_path.read_text(errors="replace")
    assert "path=/score" not in log
