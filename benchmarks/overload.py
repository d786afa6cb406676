"""Bounded overload run of ``POST /score``: far more clients than the workers admit.

``--concurrency`` closed-loop clients (default 256) send valid shipments for ``--duration``
seconds (default 30) with no back-off, so every worker stays at its
``SHIPRISK_MAX_IN_FLIGHT`` and the rest is shed. Reports the statuses, the latency of the
accepted (200) requests and of the refused (503) ones separately as the client saw them, the
server's own p99 (from its ``/metrics`` histogram: the client's queueing excluded), and
whether the server answers normally right after. Writes ``benchmarks/results/overload.json``.

    python benchmarks/overload.py                        # start `shiprisk serve`, 256 x 30 s
    python benchmarks/overload.py --url http://127.0.0.1:3000 --api-key KEY

The CI version (tests/serving/test_overload.py) runs ~10 s and checks statuses only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from load_test import free_port, request_pool, start_server, stop_server, wait_ready

RESULTS = Path(__file__).resolve().parent / "results" / "overload.json"
AFTER_REQUESTS = 20


async def overload(
    url: str, api_key: str, pool: list[bytes], seconds: float, concurrency: int
) -> dict[str, Any]:
    """Closed loop, no back-off; (status, seconds) of every completed call."""
    calls: list[tuple[str, float]] = []
    headers = {"x-api-key": api_key, "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    deadline = time.perf_counter() + seconds

    async def client(k: int, http: httpx.AsyncClient) -> None:
        i = k
        while time.perf_counter() < deadline:
            body = pool[i % len(pool)]
            i += concurrency
            start = time.perf_counter()
            try:
                status = str((await http.post("/score", content=body, headers=headers)).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            calls.append((status, time.perf_counter() - start))

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(k, http) for k in range(concurrency)))
    return {"calls": calls, "elapsed": time.perf_counter() - began}


def percentiles(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p99": None, "max": None}
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50": round(float(np.percentile(ms, 50)), 1),
        "p99": round(float(np.percentile(ms, 99)), 1),
        "max": round(float(ms.max()), 1),
    }


def after(url: str, api_key: str, body: bytes) -> dict[str, Any]:
    """Sequential requests right after the overload: statuses and latency."""
    statuses, took = [], []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(AFTER_REQUESTS):
            start = time.perf_counter()
            response = http.post(
                "/score",
                content=body,
                headers={"x-api-key": api_key, "content-type": "application/json"},
            )
            took.append(time.perf_counter() - start)
            statuses.append(response.status_code)
    return {"statuses": sorted(set(statuses)), "latency_ms": percentiles(took)}


def server_buckets(url: str, status: str = "200") -> dict[float, float]:
    """Cumulative ``/score`` latency buckets for ``status`` from the server's own ``/metrics``
    (all workers): time inside the server, without the client's own queueing."""
    time.sleep(1.1)  # /metrics is rebuilt at most once a second
    text = httpx.get(f"{url}/metrics", timeout=30).text
    pattern = re.compile(
        r'request_duration_seconds_bucket\{endpoint="/score",http_response_code="'
        + status
        + r'",le="([^"]+)"\} ([0-9.e+]+)'
    )
    return {float(le): float(n) for le, n in pattern.findall(text)}


def server_p99_bound_ms(before: dict[float, float], end: dict[float, float]) -> float | None:
    """The smallest bucket bound under which 99 % of the run's requests finished."""
    counts = {le: end[le] - before.get(le, 0.0) for le in sorted(end)}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return None
    return next(le * 1000.0 for le, n in counts.items() if n >= 0.99 * total)


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    calls = result["calls"]
    statuses: dict[str, int] = {}
    for status, _ in calls:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "requests": len(calls),
        "statuses": dict(sorted(statuses.items())),
        "accepted_rps": round(statuses.get("200", 0) / result["elapsed"], 1),
        "accepted_latency_ms": percentiles([s for code, s in calls if code == "200"]),
        "shed_latency_ms": percentiles([s for code, s in calls if code in ("429", "503")]),
        "elapsed_s": round(result["elapsed"], 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="target this server instead of starting one")
    parser.add_argument("--api-key", default=os.environ.get("SHIPRISK_API_KEY"))
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--workers", type=int, help="server workers (default: the setting)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from shiprisk.settings import get_settings

    settings = get_settings()
    pool = request_pool(settings.default_dataset, 500, seed=7)
    proc = None
    if args.url:
        url, api_key = args.url.rstrip("/"), args.api_key or ""
    else:
        api_key = args.api_key or secrets.token_urlsafe(24)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tempfile.gettempdir()) / f"shiprisk-overload-{port}.log"
        proc = start_server(port, args.workers, api_key, log)
    try:
        wait_ready(url, proc)
        before = {code: server_buckets(url, code) for code in ("200", "503")}
        measured = asyncio.run(overload(url, api_key, pool, args.duration, args.concurrency))
        end = {code: server_buckets(url, code) for code in ("200", "503")}
        right_after = after(url, api_key, pool[0])
    finally:
        if proc is not None:
            stop_server(proc)
    report = {
        "endpoint": "POST /score",
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "max_in_flight_per_worker": settings.max_in_flight,
        **summarise(measured),
        "server_side_p99_bound_ms": {
            code: server_p99_bound_ms(before[code], end[code]) for code in before
        },
        "right_after": right_after,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
