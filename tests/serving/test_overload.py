"""Overload (finding 7, acceptance 3): 256 concurrent clients on the session server's single
worker for ~10 s get only 200 or a fast 503 (never a timeout, a 5xx of another kind or a
dropped connection), some are shed (before, all 256 queued and nothing was refused), and
the server answers normally right after.

The 30 s run with latency figures is ``benchmarks/overload.py`` (BENCHMARKS.md); this one
checks statuses only, so a slow CI machine cannot make it flaky.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from shiprisk.data.contract import example_request

pytestmark = pytest.mark.slow

CONCURRENCY = 256
SECONDS = 10.0
SHED = {429, 503}


async def hammer(url: str, key: str, concurrency: int, seconds: float) -> Counter[str]:
    """``concurrency`` closed-loop clients POST /score until ``seconds`` have passed."""
    outcomes: Counter[str] = Counter()
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    body = example_request()
    async with httpx.AsyncClient(
        base_url=url, headers={"x-api-key": key}, timeout=30, limits=limits
    ) as client:

        async def one_client() -> None:
            while time.monotonic() < stop:
                try:
                    response = await client.post("/score", json=body)
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__] += 1
                    continue
                outcomes[str(response.status_code)] += 1
                if response.status_code in SHED:
                    assert response.headers.get("retry-after"), response.headers
                    assert set(response.json()) == {"error", "fields"}
                    await asyncio.sleep(0.05)  # a polite client backs off a little

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return outcomes


def test_overload_gets_only_200_or_503_and_the_server_recovers(server, api) -> None:
    outcomes = asyncio.run(hammer(server.url, api.headers["x-api-key"], CONCURRENCY, SECONDS))
    print(f"overload {CONCURRENCY} x {SECONDS:.0f}s: {dict(outcomes)}")
    answers = {k: v for k, v in outcomes.items() if k.isdigit()}
    assert set(answers) <= {"200", *map(str, SHED)}, outcomes
    # A connection-level error is not an answer: the test client (256 tasks on the same two
    # cores) can be starved past the server's header deadline, and the server then closes
    # that connection by design (408). Rare, and bounded here so a real drop still fails.
    dropped = sum(v for k, v in outcomes.items() if not k.isdigit())
    assert dropped <= 0.002 * sum(outcomes.values()), outcomes
    assert outcomes["200"] > 0, outcomes
    assert sum(outcomes[str(code)] for code in SHED) > 0, "nothing shed: requests only queued"
    for _ in range(5):  # right after: answered normally
        start = time.monotonic()
        response = api.post("/score", json=example_request())
        assert response.status_code == 200 and time.monotonic() - start < 2.0
