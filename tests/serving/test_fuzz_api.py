"""Schemathesis against the live server's own ``/docs.json``: no input makes it fail.

For each scoring endpoint, a fixed, derandomized run of schema-valid (positive) and
schema-violating (negative) requests goes to the session's ``bentoml serve`` with the API key
configured as schemathesis auth (sent on every request). Every response passes all of
schemathesis' built-in checks (no 5xx, documented status codes, content types and response
schemas, valid data accepted, invalid data rejected, auth not ignored) plus two of ours:

* every 4xx body is ``{error, fields: [{field, reason}]}``; 400, 413 and 415 name at least
  one field (a 401 carries an empty ``fields`` list: a missing key is no field of the body);
* the server agrees with the contract in-process: a JSON-object body is answered 200 exactly
  when ``ScoreRequest`` / ``BatchRequest`` accept it, and a 400 names the same fields
  (contract names only: an unknown key is named by its parent).

A second run per endpoint sends what the document does not describe (form-encoded and
multipart bodies, other content types, unknown JSON keys) with a marker planted in every key,
value, path, query string and header: no 5xx, and the marker never comes back in an answer,
the server log or ``/metrics``.

Two generation knobs keep positive requests meaningful (see docs/reliability.md): ``date-time``
values are drawn from the contract's window (2000 to now) and buyer refusals are capped at
buyer orders - the two contract rules JSON Schema cannot state. Then at least 30 % of the
generated /score calls must be scored (200): the scoring path is fuzzed, not only validation.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from numbers import Real
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from schemathesis import GenerationMode
from schemathesis.specs.openapi.formats import STRING_FORMATS

from shiprisk.data.contract import EARLIEST_CREATED_AT, example_request
from shiprisk.serving.errors import contract_names, describe_refusal
from shiprisk.serving.schemas import BatchRequest, ScoreRequest

pytestmark = pytest.mark.slow

EXAMPLES = {GenerationMode.POSITIVE: 200, GenerationMode.NEGATIVE: 50}
"""Per endpoint and mode: 250 requests per endpoint in all (200 positive: with most shipment
fields optional, fewer bodies carry each optional part)."""
OPTIONAL_PARTS = ("channel_id", "candidates", "constraints", "costs")
MIN_SCORED_SHARE = 0.30
MODELS: dict[str, type[BaseModel]] = {"/score": ScoreRequest, "/score_batch": BatchRequest}
KNOWN = contract_names(MODELS.values())
"""The names a 400 may use (unknown keys are named by their parent, never by themselves)."""
NAMES_A_FIELD = {400, 413, 415}
OK_STATUSES = {"/score": {200}, "/score_batch": {200, 413}}
"""A valid body is scored; a valid batch may still be over the server's configured limit."""
GENERATION = {"with-security-parameters": False}
"""Send the configured key on every request, so negative cases break the body, not the key
(missing and wrong keys are tested in test_auth.py; the ``ignored_auth`` check stays on)."""
CHECKS = {
    # A schema-valid batch may exceed SHIPRISK_MAX_BATCH or SHIPRISK_MAX_BODY_BYTES: limits
    # of this deployment, declared as 413 in the document but not expressible in the schema.
    "positive_data_acceptance": {"expected-statuses": ["2xx", "413"]},
}


def _created_at() -> st.SearchStrategy[str]:
    """RFC 3339 times inside the contract's window, in UTC and in other offsets."""
    start = EARLIEST_CREATED_AT.replace(tzinfo=None) + timedelta(days=1)  # any offset stays in
    end = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    zones = st.sampled_from(
        [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=5, minutes=30))]
    )
    return st.datetimes(start, end, timezones=zones).map(
        lambda d: d.isoformat().replace("+00:00", "Z")
    )


@pytest.fixture(scope="module")
def api_schema(server, api):
    """The served document, loaded with our config; ``date-time`` restored afterwards."""
    previous = STRING_FORMATS.get("date-time")
    schemathesis.openapi.format("date-time", _created_at())
    try:
        key = api.headers["x-api-key"]  # the session server's key, as the `api` client sends it
        auth = {"openapi": {"ApiKey": {"api_key": key}}}
        config = schemathesis.Config.from_dict(
            {"auth": auth, "checks": CHECKS, "generation": GENERATION}
        )
        yield schemathesis.openapi.from_url(f"{server.url}/docs.json", config=config)
    finally:
        if previous is not None:
            schemathesis.openapi.format("date-time", previous)


def _shipments(body: Any) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get("shipments"), list):
        return body["shipments"]
    return [body]


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _cap_refusals(case: Any) -> Any:
    """Positive cases obey the one cross-field rule: refusals <= orders."""
    for s in _shipments(case.body):
        if not isinstance(s, dict):
            continue
        orders, refusals = s.get("buyer_prior_orders"), s.get("buyer_prior_refusals")
        if _number(orders) and _number(refusals):
            s["buyer_prior_refusals"] = min(refusals, orders)
    return case


# -- our checks, run by schemathesis next to its own ---------------------------------------------


def error_body_names_fields(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx is ``{error, fields: [{field, reason}]}``; 400, 413 and 415 name a field (the
    body is to blame), other statuses may not (a missing key is no field of the body)."""
    status = response.status_code
    assert status < 500, f"server error {status}: {response.text[:300]}"
    if status < 400:
        return
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error", "fields"}, body
    assert isinstance(body["error"], str) and body["error"], body
    fields = body["fields"]
    assert isinstance(fields, list), body
    for item in fields:
        assert set(item) == {"field", "reason"}, item
        assert isinstance(item["field"], str) and item["field"], item
        assert isinstance(item["reason"], str) and item["reason"], item
    if status in NAMES_A_FIELD:
        assert fields, f"{status} names no field: {body}"


def agrees_with_contract(ctx: Any, response: Any, case: Any) -> None:
    """For JSON-object bodies: 200 iff the contract accepts it; a 400 names the same fields."""
    status = response.status_code
    if status == 401 or not isinstance(case.body, dict) or case.media_type != "application/json":
        return
    path = case.operation.path
    try:
        MODELS[path].model_validate_json(json.dumps(case.body))
        expected: set[str] = set()
    except ValidationError as exc:
        expected = {e["field"] for e in describe_refusal(exc, KNOWN)}
    if expected:
        named = {f["field"] for f in response.json().get("fields", [])}
        assert status == 400 and named == expected, (status, named, expected)
    elif status not in OK_STATUSES[path]:
        raise AssertionError(f"contract accepts the body but the server answered {status}")


# -- the runs -----------------------------------------------------------------------------------


def fuzz(
    schema: Any, base_url: str, path: str, mode: GenerationMode, scored_parts: Counter[str]
) -> Counter[int]:
    """Run one derandomized schemathesis pass; return how often each status was answered.
    ``scored_parts`` counts the optional top-level parts of bodies answered 200."""
    strategy = schema[path]["POST"].as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:
        strategy = strategy.map(_cap_refusals)
    statuses: list[int] = []
    checks: list[Callable[..., Any]] = [error_body_names_fields, agrees_with_contract]

    @settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=60)
        statuses.append(response.status_code)
        if response.status_code == 200 and isinstance(case.body, dict):
            scored_parts.update(k for k in OPTIONAL_PARTS if case.body.get(k) is not None)
        case.validate_response(response, additional_checks=checks)

    run()
    return Counter(statuses)


@pytest.mark.parametrize("path", sorted(MODELS))
def test_fuzzed_requests_never_fail_and_valid_ones_are_scored(
    api_schema: Any, server: Any, path: str
) -> None:
    parts: Counter[str] = Counter()
    positive = fuzz(api_schema, server.url, path, GenerationMode.POSITIVE, parts)
    negative = fuzz(api_schema, server.url, path, GenerationMode.NEGATIVE, parts)
    total = positive + negative
    calls = sum(total.values())
    print(f"{path}: positive {dict(positive)} negative {dict(negative)} parts {dict(parts)}")

    assert calls >= sum(EXAMPLES.values()) * 0.9
    assert not [s for s in total if s >= 500]
    assert negative[400] > 0  # the negative run reached validation, not only auth
    scored_share = total[200] / calls
    assert scored_share >= MIN_SCORED_SHARE, f"only {scored_share:.0%} of {path} calls scored"
    assert positive[200] >= 0.8 * sum(positive.values())
    if path == "/score":  # the scored requests used every optional part of the request
        assert all(parts[p] for p in OPTIONAL_PARTS), parts


# -- bodies the document does not describe: form, multipart, other types, planted markers ------

MARK = f"mk{uuid.uuid4().hex[:12]}"
"""Planted in keys, values, paths, query strings and headers; must never come back out."""
OTHER_EXAMPLES = 60
"""Per endpoint: requests with bodies that are not the documented JSON."""
WRONG_TYPES = (
    "text/plain",
    "application/xml",
    "application/octet-stream",
    "application/jsonx",
    "text/json",
    "image/png",
    "multipart/mixed",
)


MARKED = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", max_size=8).map(
    lambda tail: MARK + tail
)


@st.composite
def marked_request(draw: Any, endpoint: str) -> dict[str, Any]:
    """One request with markers everywhere a client controls: the body (form-encoded,
    multipart with good or broken boundaries, JSON with marked keys and values, raw bytes
    under a wrong type), the path, the query string and a header; with or without the key."""
    pairs = draw(st.lists(st.tuples(MARKED, MARKED), min_size=1, max_size=4))
    kind = draw(st.sampled_from(["form", "multipart", "multipart-bad", "json", "wrong-type"]))
    headers = {"user-agent": f"fuzz {MARK}", "x-note": draw(MARKED)}
    if kind == "form":
        headers["content-type"] = "application/x-www-form-urlencoded"
        content = urlencode(pairs).encode()
    elif kind.startswith("multipart"):
        boundary = draw(st.sampled_from(["b0undary", "", "x" * 80, MARK]))
        sent = boundary if kind == "multipart" else draw(st.sampled_from(["other", "", "--"]))
        headers["content-type"] = f"multipart/form-data; boundary={sent}"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in pairs
        ]
        content = ("".join(parts) + f"--{boundary}--\r\n").encode()
    elif kind == "json":
        headers["content-type"] = "application/json"
        shipment = {**example_request(), **dict(pairs), "order_id": pairs[0][1][:64]}
        body = shipment if endpoint == "/score" else {"shipments": [shipment], pairs[0][0]: 1}
        content = json.dumps(body).encode()
    else:
        headers["content-type"] = draw(st.sampled_from(WRONG_TYPES))
        content = draw(st.sampled_from([json.dumps(dict(pairs)).encode(), MARK.encode(), b""]))
    path = draw(st.sampled_from([endpoint, f"{endpoint}/{MARK}", f"/{MARK}/98765.43"]))
    if draw(st.booleans()):
        path += f"?q={MARK}"
    return {"path": path, "headers": headers, "content": content, "keyed": draw(st.booleans())}


@pytest.mark.parametrize("endpoint", sorted(MODELS))
def test_other_bodies_never_fail_and_nothing_planted_comes_back(
    server: Any, api: Any, endpoint: str
) -> None:
    statuses: Counter[int] = Counter()

    @settings(max_examples=OTHER_EXAMPLES, derandomize=True, deadline=None, database=None)
    @given(request=marked_request(endpoint))
    def run(request: dict[str, Any]) -> None:
        headers = dict(request["headers"])
        if request["keyed"]:
            headers["x-api-key"] = api.headers["x-api-key"]
        response = httpx.post(
            f"{server.url}{request['path']}",
            content=request["content"],
            headers=headers,
            timeout=60,
        )
        statuses[response.status_code] += 1
        error_body_names_fields(None, response, None)
        assert response.status_code != 200, request  # none of these bodies is a valid request
        assert MARK not in response.text and MARK not in str(response.headers), response.text
        if request["keyed"] and request["path"] == endpoint:
            ctype = headers["content-type"]
            assert response.status_code == (400 if ctype == "application/json" else 415), ctype

    run()
    print(f"{endpoint} other bodies: {dict(statuses)}")
    assert sum(statuses.values()) >= OTHER_EXAMPLES * 0.9
    assert not [s for s in statuses if s >= 500]
    assert statuses[415] and statuses[404] and statuses[401], statuses
    time.sleep(1.1)  # /metrics is rebuilt at most once a second
    assert MARK not in httpx.get(f"{server.url}/metrics", timeout=60).text
    time.sleep(0.5)  # let the worker flush its log
    assert MARK not in server.log_path.read_text(errors="replace")
