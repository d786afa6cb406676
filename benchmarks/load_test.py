"""Bounded load test of ``POST /score``: fixed duration and concurrency, stops by itself.

Starts ``shiprisk serve`` on a free loopback port (the champion of the store that
SHIPRISK_HOME / MLFLOW_TRACKING_URI / BENTOML_HOME point to) or targets ``--url``. After a
warm-up, ``--concurrency`` clients send valid shipments (drawn from the simulated dataset when
there is one) for ``--duration`` seconds. Prints one JSON report and writes it to
``benchmarks/results/load.json``: requests, errors, p50/p90/p99 latency, requests per second,
and the server's RSS (whole process tree, from /proc) after warm-up and at the end.

    python benchmarks/load_test.py                      # start a server, 60 s, 16 clients
    python benchmarks/load_test.py --url http://127.0.0.1:3000 --server-pid 1234

The clients run on the same machine as the server, so they take CPU from it: the figures are
a floor for a dedicated server, not a capacity plan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "load.json"
READY_TIMEOUT_S = 300.0
POOL_SIZE = 500


# -- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workers: int | None, api_key: str, log: Path) -> subprocess.Popen:
    """``shiprisk serve`` in its own process group (it execs ``bentoml serve``: same pid)."""
    shiprisk = str(Path(sys.executable).with_name("shiprisk"))
    args = [shiprisk, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        args += ["--workers", str(workers)]
    env = dict(os.environ, SHIPRISK_API_KEY=api_key, BENTOML_DO_NOT_TRACK="true")
    with log.open("wb") as out:
        return subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc/<pid>/stat (no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def rss_mb(root: int) -> dict[str, Any]:
    """Resident memory of the server's process tree (VmRSS of each process, MiB)."""
    per_process = {}
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kb = next((int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:"), 0)
        per_process[pid] = round(kb / 1024, 1)
    return {"total": round(sum(per_process.values()), 1), "processes": per_process}


# -- the requests -------------------------------------------------------------------------------


def request_pool(data: Path | None, size: int, seed: int) -> list[bytes]:
    """Valid /score bodies: rows of the dataset if there is one, else the contract example."""
    from shiprisk.data.contract import SHIPMENT_FIELDS, example_request

    if data is not None and data.exists():
        import pandas as pd

        frame = pd.read_parquet(data, columns=list(SHIPMENT_FIELDS))
        frame = frame.sample(min(size, len(frame)), random_state=seed)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True).dt.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        rows = json.loads(frame.to_json(orient="records"))
        return [json.dumps(r).encode() for r in rows]
    rng = random.Random(seed)
    out = []
    for i in range(size):
        body = example_request()
        body["order_id"] = f"LOAD-{i}"
        body["weight_kg"] = round(rng.uniform(0.05, 5.0), 3)
        body["declared_value"] = round(rng.uniform(2, 500), 2)
        out.append(json.dumps(body).encode())
    return out


async def run_load(
    url: str, api_key: str, pool: list[bytes], seconds: float, concurrency: int, seed: int
) -> dict[str, Any]:
    """``concurrency`` clients in a closed loop for ``seconds``; latencies of completed calls."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    headers = {"x-api-key": api_key, "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    deadline = time.perf_counter() + seconds

    async def client(k: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed + k)
        while time.perf_counter() < deadline:
            body = pool[rng.randrange(len(pool))]
            start = time.perf_counter()
            try:
                response = await http.post("/score", content=body, headers=headers)
                key = str(response.status_code)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            latencies.append(time.perf_counter() - start)
            statuses[key] = statuses.get(key, 0) + 1

    began = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(k, http) for k in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {"latencies": latencies, "statuses": statuses, "elapsed": elapsed}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    lat = np.asarray(result["latencies"]) * 1000.0
    n = len(lat)
    errors = n - result["statuses"].get("200", 0)
    pct = (lambda q: round(float(np.percentile(lat, q)), 2)) if n else (lambda q: None)
    return {
        "requests": n,
        "errors": errors,
        "error_rate": round(errors / n, 5) if n else None,
        "statuses": dict(sorted(result["statuses"].items())),
        "rps": round(n / result["elapsed"], 1),
        "latency_ms": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": round(float(lat.max()), 2) if n else None,
            "mean": round(float(lat.mean()), 2) if n else None,
        },
        "elapsed_s": round(result["elapsed"], 2),
    }


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="target this server instead of starting one")
    parser.add_argument("--api-key", default=os.environ.get("SHIPRISK_API_KEY"))
    parser.add_argument("--server-pid", type=int, help="pid of --url's server (for RSS)")
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=10.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, help="server workers (default: the setting)")
    parser.add_argument("--data", type=Path, help="Parquet of shipments for request bodies")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from shiprisk.settings import get_settings

    settings = get_settings()
    data = args.data or settings.default_dataset
    pool = request_pool(data, POOL_SIZE, args.seed)
    proc, log = None, None
    if args.url:
        url, api_key, pid = args.url.rstrip("/"), args.api_key or "", args.server_pid
    else:
        api_key = args.api_key or secrets.token_urlsafe(24)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tempfile.gettempdir()) / f"shiprisk-load-{port}.log"
        proc = start_server(port, args.workers, api_key, log)
        pid = proc.pid
    try:
        started = time.perf_counter()
        wait_ready(url, proc)
        ready_s = time.perf_counter() - started
        asyncio.run(run_load(url, api_key, pool, args.warmup, args.concurrency, args.seed))
        rss_warm = rss_mb(pid) if pid else None
        measured = asyncio.run(
            run_load(url, api_key, pool, args.duration, args.concurrency, args.seed + 1000)
        )
        rss_end = rss_mb(pid) if pid else None
    finally:
        if proc is not None:
            stop_server(proc)
    report = {
        "endpoint": "POST /score",
        "url": url,
        "started_server": proc is not None,
        "server_log": str(log) if log else None,
        "server_ready_s": round(ready_s, 1),
        "workers": args.workers or (settings.workers if proc is not None else None),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "concurrency": args.concurrency,
        "request_bodies": f"{len(pool)} shipments from {data}"
        if data.exists()
        else f"{len(pool)} variations of the contract example",
        **summarise(measured),
        "server_rss_mb": {
            "after_warmup": rss_warm["total"] if rss_warm else None,
            "end": rss_end["total"] if rss_end else None,
            "processes_at_end": rss_end["processes"] if rss_end else None,
        },
        "host": {"cpus": os.cpu_count(), "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "note": "client and server share the host",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
