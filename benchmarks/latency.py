"""HTTP latency of /score against `mlflow models serve` of the same registered version.

Both servers run as subprocesses on free loopback ports with 2 workers each and serve the
bench home's champion: ours through ``shiprisk serve`` (BentoML), MLflow's through
``mlflow models serve -m models:/shiprisk-risk@champion --env-manager local``. Both get the
same held-out shipments: ours one ``ScoreRequest`` per shipment (every eligible channel is
scored, the policy decides, the response carries reasons and actions); MLflow's pyfunc scores
(shipment, channel) rows, so its body is the shipment expanded to one ``dataframe_records``
row per eligible channel (same channels) - it returns probabilities only.

Clients: httpx keep-alive clients, one per thread; 2000 requests at concurrency 1, 4000 at
concurrency 8, after a warm-up. Targets (ours): p50 <= 2.5 ms and p99 <= 6 ms at
concurrency 1; at concurrency 8, >= 3x MLflow's requests per second.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common

SHIPMENTS = 200
N_C1 = 2000
N_C8 = 4000
WARMUP = 200
WORKERS = 2
P50_TARGET_MS = 2.5
P99_TARGET_MS = 6.0
RPS_RATIO_TARGET = 3.0
READY_DEADLINE_S = 300.0


class Server:
    """A server subprocess in its own session (killed as a group), logging to a file."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], port: int, ready_path: str
    ) -> None:
        self.name, self.port, self.ready_path = name, port, ready_path
        logs = common.RESULTS / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"latency_{name}.log"
        self._log = self.log_path.open("wb")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=common.HOME,
        )
        self.ready_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, deadline_s: float = READY_DEADLINE_S) -> float:
        import httpx

        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(self.url + self.ready_path, timeout=2.0).status_code == 200:
                    self.ready_s = time.perf_counter() - self.started
                    return self.ready_s
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {deadline_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def load(
    url: str,
    bodies: list[bytes] | None,
    n: int,
    concurrency: int,
    check: Callable[[Any], None] | None = None,
    cpu_root: int | None = None,
) -> dict[str, Any]:
    """``n`` POSTs (GETs if ``bodies`` is None) over ``concurrency`` keep-alive clients.

    With ``cpu_root``, also the server tree's CPU time per request (user + system, /proc).
    """
    import httpx

    per_thread = [n // concurrency + (1 if i < n % concurrency else 0) for i in range(concurrency)]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    barrier = threading.Barrier(concurrency + 1)
    headers = {"content-type": "application/json"}

    def worker(i: int) -> None:
        with httpx.Client(timeout=30.0, headers=headers) as client:

            def call(j: int) -> httpx.Response:
                if bodies is None:
                    return client.get(url)
                return client.post(url, content=bodies[(i * 7919 + j) % len(bodies)])

            call(0)  # open the connection
            barrier.wait()
            out = latencies[i]
            clock = time.perf_counter
            for j in range(per_thread[i]):
                t0 = clock()
                r = call(j)
                out.append(clock() - t0)
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
                elif check is not None and j % 97 == 0:
                    try:
                        check(r.json())
                    except (AssertionError, ValueError) as exc:
                        errors.append(f"bad answer: {exc}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    cpu0 = common.tree_cpu_seconds(cpu_root) if cpu_root else 0.0
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = common.tree_cpu_seconds(cpu_root) - cpu0 if cpu_root else float("nan")
    flat = [x for lat in latencies for x in lat]
    out = common.percentiles(flat)
    out.update(
        concurrency=concurrency,
        requests=len(flat),
        wall_s=wall,
        rps=len(flat) / wall,
        errors=len(errors),
        first_errors=errors[:3],
        server_cpu_ms_per_request=cpu * 1e3 / max(len(flat), 1),
    )
    return out


GENERIC_FRAMES = (
    "Thread._bootstrap",
    "Thread._bootstrap_inner",
    "WorkerThread.run",
    "_run_module_as_main",
    "_run_code",
    "<module>",
    "Command.",
    "Context.invoke",
    "main ",
    "Server.run",
    "asyncio_run",
    "Runner.run",
    "BaseEventLoop.",
)


def py_spy_profile(pid: int, seconds: int, during: Callable[[], Any]) -> str:
    """py-spy (raw stacks, 200 Hz) of one worker while ``during`` loads it; top frames."""
    import shutil
    from collections import Counter

    out = common.RESULTS / "logs" / f"py_spy_{pid}.txt"
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).is_file():
        return "py-spy is not installed: no profile (see the in-process benchmark's stages)"
    proc = subprocess.Popen(
        [
            spy,
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    during()
    proc.wait(timeout=seconds + 60)
    if not out.is_file():
        return "py-spy produced no profile"
    inclusive: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        seen = set()
        for frame in stack.split(";"):
            name, _, where = frame.partition(" (")
            key = f"{name} ({where.split('/')[-1].split(':')[0]}" + ")" if where else name
            if key not in seen:
                seen.add(key)
                inclusive[key] += n
    rows = [
        f"{n / total:6.1%}  {key}"
        for key, n in inclusive.most_common(80)
        if not key.startswith(GENERIC_FRAMES)
    ][:28]
    return "\n".join(
        [
            f"py-spy, one worker, {total} samples over {seconds} s (wall clock, both threads; "
            "% of samples whose stack contains the frame):",
            *rows,
        ]
    )


def mlflow_bodies(bodies: list[dict[str, Any]]) -> tuple[list[bytes], list[int]]:
    """Each shipment expanded to one pyfunc row per eligible channel (as ours scores it)."""
    from shiprisk.data.catalogs import load_catalog
    from shiprisk.data.contract import SHIPMENT_FIELDS
    from shiprisk.decisions.candidates import candidates_for_shipment
    from shiprisk.decisions.costs import SellerCosts
    from shiprisk.serving.schemas import ScoreRequest

    catalog, costs = load_catalog(), SellerCosts()
    out, counts = [], []
    for body in bodies:
        req = ScoreRequest.model_validate(body)
        record = {f: getattr(req, f) for f in SHIPMENT_FIELDS}
        _, ids = candidates_for_shipment(catalog, record, costs)
        rows = [{**body, "channel_id": cid} for cid in ids]
        out.append(json.dumps({"dataframe_records": rows}).encode())
        counts.append(len(ids))
    return out, counts


def main() -> None:
    import numpy as np

    common.configure_env()
    report = common.Report("latency", "HTTP /score latency vs mlflow models serve")
    champion = common.ensure_champion()
    bodies = common.shipment_requests(SHIPMENTS)
    ours_bodies = [json.dumps(b).encode() for b in bodies]
    mlf_bodies, counts = mlflow_bodies(bodies)
    bin_dir = Path(sys.executable).parent
    tracking = f"sqlite:///{(common.HOME / 'mlflow' / 'mlflow.db').resolve()}"

    ours_port, mlf_port = common.free_port(), common.free_port()
    common.log(f"starting shiprisk serve on :{ours_port} and mlflow models serve on :{mlf_port}")
    servers = {
        "ours": Server(
            "shiprisk_serve",
            [
                str(bin_dir / "shiprisk"),
                "serve",
                "--port",
                str(ours_port),
                "--workers",
                str(WORKERS),
            ],
            common.child_env(OMP_NUM_THREADS="1"),
            ours_port,
            "/readyz",
        ),
        "mlflow": Server(
            "mlflow_models_serve",
            [
                str(bin_dir / "mlflow"),
                "models",
                "serve",
                "-m",
                "models:/shiprisk-risk@champion",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(mlf_port),
                "--workers",
                str(WORKERS),
            ],
            common.child_env(MLFLOW_TRACKING_URI=tracking, OMP_NUM_THREADS="1"),
            mlf_port,
            "/ping",
        ),
    }
    results: dict[str, Any] = {}
    try:
        for name, server in servers.items():
            common.log(f"{name} ready after {server.wait_ready():.1f} s")

        def check_ours(payload: Any) -> None:
            if not payload.get("channels") or payload.get("recommendation") is None:
                raise AssertionError(f"unexpected /score answer: {str(payload)[:200]}")

        def check_mlflow(payload: Any) -> None:
            preds = payload.get("predictions")
            if not preds or "p_loss" not in preds[0]:
                raise AssertionError(f"unexpected /invocations answer: {str(payload)[:200]}")

        targets = {
            "ours": (servers["ours"].url + "/score", ours_bodies, check_ours),
            "mlflow": (servers["mlflow"].url + "/invocations", mlf_bodies, check_mlflow),
        }
        for url, payloads, check in targets.values():
            load(url, payloads, WARMUP, 1, check)
            load(url, payloads, WARMUP, 8, check)
        for concurrency, n in ((1, N_C1), (8, N_C8)):
            for name, (url, payloads, check) in targets.items():
                common.log(f"{name}: {n} requests at concurrency {concurrency}")
                results[f"{name}_c{concurrency}"] = load(
                    url, payloads, n, concurrency, check, cpu_root=servers[name].proc.pid
                )
        # the HTTP + framework floor: a health check through the same server
        floors = {"ours": "/livez", "mlflow": "/ping"}
        for name, path in floors.items():
            results[f"{name}_floor"] = load(servers[name].url + path, None, 500, 1)
        o1 = results["ours_c1"]
        missed = o1["p50_ms"] > P50_TARGET_MS or o1["p99_ms"] > P99_TARGET_MS
        if missed or results["ours_c8"]["rps"] < RPS_RATIO_TARGET * results["mlflow_c8"]["rps"]:
            common.log("a target was missed: py-spy on one of our workers under c=1 load")
            cmds = common.tree_cmdlines(servers["ours"].proc.pid)
            workers = [pid for pid, cmd in cmds.items() if "_bentoml_impl.worker" in cmd]
            if workers:
                # c=1 rides one keep-alive connection, so one worker takes all of it: profile
                # the one whose CPU time grows under a short c=1 burst (an idle worker gives
                # an empty profile).
                url, payloads, check = targets["ours"]
                before = {pid: common.tree_cpu_seconds(pid) for pid in workers}
                load(url, payloads, 300, 1, check)
                busiest = max(workers, key=lambda pid: common.tree_cpu_seconds(pid) - before[pid])
                report.profiles["ours /score, c=1"] = py_spy_profile(
                    busiest, 12, lambda: load(url, payloads, 700, 1, check)
                )
    finally:
        for server in servers.values():
            server.stop()

    report.details.update(
        champion_version=champion.version,
        shipments=len(bodies),
        mean_channels=float(np.mean(counts)),
        workers=WORKERS,
        startup_s={k: s.ready_s for k, s in servers.items()},
        results=results,
        body_bytes={
            "ours_mean": float(np.mean([len(b) for b in ours_bodies])),
            "mlflow_mean": float(np.mean([len(b) for b in mlf_bodies])),
        },
    )
    o1, m1, o8, m8 = (results[k] for k in ("ours_c1", "mlflow_c1", "ours_c8", "mlflow_c8"))
    print(
        f"\n/score of one shipment x {np.mean(counts):.1f} eligible channels, "
        f"{WORKERS} workers each, loopback:"
    )
    met_p50 = report.figure(
        "ours_c1_p50_ms", "ours c=1 p50", o1["p50_ms"], "ms", target=P50_TARGET_MS, fmt="{:.2f}"
    )
    met_p99 = report.figure(
        "ours_c1_p99_ms", "ours c=1 p99", o1["p99_ms"], "ms", target=P99_TARGET_MS, fmt="{:.2f}"
    )
    report.figure("ours_c1_rps", "ours c=1 requests/s", o1["rps"], "req/s", fmt="{:,.0f}")
    report.figure(
        "mlflow_c1_p50_ms", "mlflow models serve c=1 p50", m1["p50_ms"], "ms", fmt="{:.2f}"
    )
    report.figure(
        "mlflow_c1_p99_ms", "mlflow models serve c=1 p99", m1["p99_ms"], "ms", fmt="{:.2f}"
    )
    report.figure(
        "mlflow_c1_rps", "mlflow models serve c=1 requests/s", m1["rps"], "req/s", fmt="{:,.0f}"
    )
    report.figure("ours_c8_p50_ms", "ours c=8 p50", o8["p50_ms"], "ms", fmt="{:.2f}")
    report.figure("ours_c8_p99_ms", "ours c=8 p99", o8["p99_ms"], "ms", fmt="{:.2f}")
    report.figure("ours_c8_rps", "ours c=8 requests/s", o8["rps"], "req/s", fmt="{:,.0f}")
    report.figure(
        "mlflow_c8_p50_ms", "mlflow models serve c=8 p50", m8["p50_ms"], "ms", fmt="{:.2f}"
    )
    report.figure(
        "mlflow_c8_p99_ms", "mlflow models serve c=8 p99", m8["p99_ms"], "ms", fmt="{:.2f}"
    )
    report.figure(
        "mlflow_c8_rps", "mlflow models serve c=8 requests/s", m8["rps"], "req/s", fmt="{:,.0f}"
    )
    met_ratio = report.figure(
        "rps_ratio_c8",
        "ours / mlflow requests/s at c=8",
        o8["rps"] / m8["rps"],
        "x",
        target=RPS_RATIO_TARGET,
        op=">=",
        fmt="{:.2f}",
    )
    report.figure(
        "rps_ratio_c1", "ours / mlflow requests/s at c=1", o1["rps"] / m1["rps"], "x", fmt="{:.2f}"
    )
    report.figure(
        "ours_c1_cpu_ms",
        "ours server CPU per request (c=1)",
        o1["server_cpu_ms_per_request"],
        "ms",
        fmt="{:.2f}",
    )
    report.figure(
        "mlflow_c1_cpu_ms",
        "mlflow models serve CPU per request (c=1)",
        m1["server_cpu_ms_per_request"],
        "ms",
        fmt="{:.2f}",
    )
    report.figure(
        "ours_c8_cpu_ms",
        "ours server CPU per request (c=8)",
        o8["server_cpu_ms_per_request"],
        "ms",
        fmt="{:.2f}",
    )
    report.figure(
        "mlflow_c8_cpu_ms",
        "mlflow models serve CPU per request (c=8)",
        m8["server_cpu_ms_per_request"],
        "ms",
        fmt="{:.2f}",
    )
    report.figure(
        "ours_floor_p50_ms",
        "floor: ours GET /livez c=1 p50",
        results["ours_floor"]["p50_ms"],
        "ms",
        fmt="{:.2f}",
    )
    report.figure(
        "mlflow_floor_p50_ms",
        "floor: mlflow GET /ping c=1 p50",
        results["mlflow_floor"]["p50_ms"],
        "ms",
        fmt="{:.2f}",
    )
    errors = sum(r["errors"] for r in results.values())
    report.figure("errors", "non-200 answers (all runs)", errors, fmt="{:,.0f}", target=0)
    if met_p50 is False or met_p99 is False or met_ratio is False:
        report.notes.append(
            "A target was missed: see the in-process benchmark for the scoring share of the "
            "request time (the rest is HTTP, JSON and BentoML's per-request machinery)."
        )
    for name, text in report.profiles.items():
        print(f"\nprofile of {name} (a target was missed):\n{text}")
    report.write()


if __name__ == "__main__":
    main()
