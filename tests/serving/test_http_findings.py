"""The attack pass's HTTP findings (issue "Reliability and security II", 5-7), each replayed
against the session's ``bentoml serve`` (API key on, SHIPRISK_HEADER_TIMEOUT_S=5).

5. Request data reached answers, the log and the metrics: a form body came back in ``field``,
   an unknown JSON key (a name and address) was echoed and logged, and client paths became
   Prometheus labels on the open ``/metrics`` and in the multiprocess directory.
6. Keyless 404s to distinct paths grew the metrics directory without bound until ``/metrics``
   timed out.
7. A multipart body with a bad boundary was a 500; 404, 405 and 415 bodies were not
   ``{error, fields}``; connections that never finish their headers stayed open.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from shiprisk.data.contract import example_request
from shiprisk.serving.http_stack import SYSTEM_ROUTES

pytestmark = pytest.mark.slow

DISTINCT_PATHS = 3000
METRICS_DIR_LIMIT = 1_000_000
"""Bytes: the metrics directory of a fresh session server is ~100 kB whatever is requested."""
HEADER_TIMEOUT = 5.0
"""SHIPRISK_HEADER_TIMEOUT_S of the session server (tests/conftest.py)."""


@pytest.fixture(scope="module")
def anon(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def assert_error_body(response: httpx.Response, *, named: bool) -> list[dict[str, str]]:
    assert response.headers["content-type"] == "application/json", response.text[:200]
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error", "fields"} and body["error"], body
    for item in body["fields"]:
        assert set(item) == {"field", "reason"} and item["field"] and item["reason"], item
    assert bool(body["fields"]) == named, body
    return body["fields"]


def metrics_dir(session_home: Path) -> Path:
    return session_home / "bentoml" / "prometheus_multiproc_dir"


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def dir_holds(path: Path, marker: str) -> bool:
    needle = marker.encode()
    return any(needle in p.read_bytes() for p in path.rglob("*") if p.is_file())


def endpoint_labels(metrics_text: str) -> set[str]:
    return set(re.findall(r'endpoint="([^"]*)"', metrics_text))


def settled_log(server) -> str:
    """The server log, read after the worker had a moment to write what it logs."""
    time.sleep(0.5)
    return server.log_path.read_text(errors="replace")


# -- 5: no request value in answers, log lines or metric labels ---------------------------------


def test_form_body_is_415_and_never_echoed(api, server) -> None:
    probe = uuid.uuid4().hex
    response = api.post("/score", data={"order_id": f"SO-{probe}", f"buyer_{probe}": "Jane Roe"})
    assert response.status_code == 415, response.text[:300]
    assert [f["field"] for f in assert_error_body(response, named=True)] == ["body"]
    assert probe not in response.text
    assert probe not in settled_log(server)


@pytest.mark.parametrize("path", ["/score", "/score_batch"])
def test_unknown_json_key_is_neither_echoed_nor_logged(api, server, path: str) -> None:
    probe = uuid.uuid4().hex
    shipment = {**example_request(), f"Jane Roe, 1 Main St {probe}": f"apt {probe[::-1]}"}
    response = api.post(path, json=shipment if path == "/score" else {"shipments": [shipment]})
    assert response.status_code == 400
    fields = assert_error_body(response, named=True)
    assert ("body" if path == "/score" else "shipments.0") in {f["field"] for f in fields}
    assert probe not in response.text and probe[::-1] not in response.text
    log = settled_log(server)
    assert probe not in log and probe[::-1] not in log


def test_client_paths_never_become_metric_labels(anon, session_home: Path) -> None:
    secret = f"SECRET-ORDER-{uuid.uuid4().hex[:8]}"
    response = anon.get(f"/{secret}/98765.43")
    assert response.status_code == 404
    assert secret not in response.text
    time.sleep(1.1)  # /metrics is cached for a second
    text = anon.get("/metrics").text
    assert secret not in text
    assert not dir_holds(metrics_dir(session_home), secret)


# -- 6: distinct 404 paths cannot grow the metrics or slow /metrics down -----------------------


def test_many_distinct_404s_leave_metrics_bounded_and_fast(anon, server, session_home) -> None:
    before = dir_bytes(metrics_dir(session_home))
    deadline = time.monotonic() + 180

    def probe(start: int) -> set[int]:
        statuses = set()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(start, DISTINCT_PATHS, 8):
                if time.monotonic() > deadline:
                    break
                statuses.add(client.get(f"/probe-{i}/{uuid.uuid4().hex}").status_code)
        return statuses

    with ThreadPoolExecutor(8) as pool:
        statuses = set().union(*pool.map(probe, range(8)))
    assert statuses == {404}, statuses

    grown = dir_bytes(metrics_dir(session_home)) - before
    assert dir_bytes(metrics_dir(session_home)) < METRICS_DIR_LIMIT, grown
    time.sleep(1.1)
    start = time.monotonic()
    response = anon.get("/metrics", timeout=30)
    took = time.monotonic() - start
    assert response.status_code == 200 and took < 2.0, took
    labels = endpoint_labels(response.text)
    fixed = SYSTEM_ROUTES | {"/score", "/score_batch"}
    assert labels <= fixed | {"other"} and "other" in labels, sorted(labels)[:20]
    assert not [label for label in labels if "probe-" in label]


# -- 7: every error is {error, fields}, no 500 for malformed bodies, header timeout -----------


MULTIPART_BAD = [
    ("multipart/form-data; boundary=xyz", b"garbage without any boundary"),
    ("multipart/form-data", b"--\r\n"),
    ("multipart/form-data; boundary=", b"----\r\n\r\n"),
    ("multipart/form-data; boundary=abc", b'--abc\r\nContent-Disposition: form-data; name="x"'),
]


@pytest.mark.parametrize("path", ["/score", "/score_batch"])
@pytest.mark.parametrize(("content_type", "body"), MULTIPART_BAD)
def test_bad_multipart_is_415_not_500(api, path: str, content_type: str, body: bytes) -> None:
    response = api.post(path, content=body, headers={"content-type": content_type})
    assert response.status_code == 415, response.text[:300]
    assert_error_body(response, named=True)


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "named"),
    [
        ("GET", "/no/such/path", {}, None, 404, False),
        ("POST", "/no/such/path", {}, b"{}", 404, False),
        ("GET", "/score", {}, None, 405, False),
        ("PUT", "/score_batch", {}, b"{}", 405, False),
        ("POST", "/score", {"content-type": "text/plain"}, b"{}", 415, True),
        ("POST", "/score", {"content-type": "application/xml"}, b"<a/>", 415, True),
        ("POST", "/score", {"content-type": "application/x-www-form-urlencoded"}, b"a=1", 415,
         True),
        ("POST", "/score", {"content-type": "application/json"}, b"", 400, True),
        ("POST", "/score", {}, b"", 400, True),
        ("POST", "/score_batch", {"content-type": "application/json"}, b"{", 400, True),
    ],
)  # fmt: skip
def test_every_error_has_the_documented_body(
    api, method: str, path: str, headers: dict, body: bytes | None, status: int, named: bool
) -> None:
    response = api.request(method, path, headers=headers, content=body)
    assert response.status_code == status, response.text[:300]
    assert_error_body(response, named=named)


def test_unparseable_http_gets_the_documented_400(server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        raw = sock.recv(4096)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), raw[:200]
    assert set(json.loads(body)) == {"error", "fields"}


def test_connections_that_never_finish_their_headers_are_closed(server, anon) -> None:
    """Slowloris: 50 connections send a request line and part of a header, then stall."""
    socks = []
    try:
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            socks.append(sock)
        assert anon.get("/livez").status_code == 200  # still answering meanwhile
        deadline = time.monotonic() + HEADER_TIMEOUT + 6
        answers = []
        for sock in socks:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                answers.append(sock.recv(4096))
            except TimeoutError:
                answers.append(None)
        open_after = sum(a is None for a in answers)
        assert open_after == 0, f"{open_after} of 50 slow-header connections still open"
        assert all(a == b"" or a.startswith(b"HTTP/1.1 408") for a in answers), answers[:3]
    finally:
        for sock in socks:
            sock.close()
