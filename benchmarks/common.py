"""Shared setup for the benchmark scripts: private store, data, champion, machine, timing, JSON.

Every script calls :func:`configure_env` first. It points ``SHIPRISK_HOME`` (and with it the
MLflow SQLite store, the BentoML store and the model cache) at ``benchmarks/results/home``,
which is git-ignored, so a benchmark never reads or writes the user's ``.shiprisk``. The
training set (the main job's: ``settings.default_rows`` rows, ``settings.default_seed``) and
the trained + promoted champion are built there once and reused by every script (the first
script to need them pays for them).

Each script reports figures through :class:`Report`: it prints every figure next to its
target with MET/MISSED and writes ``benchmarks/results/<name>.json``, from which
``run_all.py`` rebuilds the figures section of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
HOME = RESULTS / "home"
DATA = HOME / "data"
FRESH_SEEDS = {
    "quality": 90_001,
    "shifted": 90_002,
    "decisions": 90_003,
    "latency": 90_004,
    "batch": 90_005,
    "train_1m": 90_006,
    "train_100k": 90_007,
}
"""Seeds of every held-out draw: never the training seed."""
SCRUBBED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "BENTOML_HOME",
    "SHIPRISK_API_KEY",
    "SHIPRISK_API_KEY_FILE",
    "SHIPRISK_TRACKING_URI",
    "SHIPRISK_MODEL_TAG",
    "SHIPRISK_WORKERS",
    "SHIPRISK_PORT",
    "SHIPRISK_HOST",
)


# -- environment -----------------------------------------------------------------------------


def configure_env() -> dict[str, str]:
    """Point every store at the private bench home; call before anything reads settings."""
    for name in SCRUBBED_ENV:
        os.environ.pop(name, None)
    HOME.mkdir(parents=True, exist_ok=True)
    os.environ["SHIPRISK_HOME"] = str(HOME)
    os.environ["BENTOML_HOME"] = str(HOME / "bentoml")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["MLFLOW_LOG_UV_FILES"] = "false"
    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    # Subprocesses (servers) compile sources once into a cache outside the repo.
    os.environ["PYTHONPYCACHEPREFIX"] = str(RESULTS / "pycache")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    sys.pycache_prefix = os.environ["PYTHONPYCACHEPREFIX"]
    from shiprisk.settings import get_settings

    get_settings.cache_clear()
    return {"SHIPRISK_HOME": str(HOME)}


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a benchmark subprocess: the bench home, the venv's bin on PATH."""
    env = dict(os.environ)
    for name in SCRUBBED_ENV:
        env.pop(name, None)
    env.update(
        SHIPRISK_HOME=str(HOME),
        BENTOML_HOME=str(HOME / "bentoml"),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_LOG_UV_FILES="false",
        BENTOML_DO_NOT_TRACK="true",
        PYTHONPYCACHEPREFIX=str(RESULTS / "pycache"),
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- data and the champion -------------------------------------------------------------------


DATA_INPUTS = (
    "data/simulator.py",
    "data/physics.py",
    "data/outcomes.py",
    "data/world.py",
    "data/catalogs.py",
    "data/contract.py",
    "data/reference",
)
"""What a simulated draw depends on: change any of these and the data are drawn again."""
MODEL_INPUTS = (
    *DATA_INPUTS,
    "data/loaders.py",
    "data/validation.py",
    "data/coercion.py",
    "features",
    "models",
    "training",
    "configs/train.yaml",
    "shiprisk/settings.py",
)
"""What the champion depends on: change any of these and the bench store is rebuilt."""
CHAMPION_FILE = HOME / "champion.json"
STORE_PARTS = ("mlflow", "bentoml", "models", "train_bench", "serving_model_tag")


def fingerprint(inputs: Iterable[str]) -> str:
    """SHA-256 over the contents of the given repo files / directories (sorted, recursive)."""
    import hashlib

    h = hashlib.sha256()
    for rel in inputs:
        root = REPO / rel
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(REPO)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def code_fingerprints() -> dict[str, str]:
    """Short fingerprints of the data code and of the champion's code (to spot mixed runs)."""
    rows, seed = training_spec()
    return {
        "data": fingerprint(DATA_INPUTS)[:12],
        "model": fingerprint(MODEL_INPUTS)[:12],
        "training_rows_seed": f"{rows}:{seed}",
    }


def data_dir() -> Path:
    """Draws made by the current simulator code (older draws are deleted)."""
    d = DATA / f"sim-{fingerprint(DATA_INPUTS)[:12]}"
    if not d.is_dir():
        import shutil

        for old in DATA.glob("sim-*"):
            shutil.rmtree(old, ignore_errors=True)
        d.mkdir(parents=True, exist_ok=True)
    return d


def ensure_dataset(rows: int, seed: int, world: str = "default", name: str | None = None) -> Path:
    """A simulated history Parquet under the bench home, drawn once and reused."""
    from shiprisk.data.simulator import generate_to_parquet

    path = data_dir() / (name or f"{world}_{rows}_s{seed}.parquet")
    if not path.is_file():
        log(f"simulating {rows:,} rows ({world} world, seed {seed}) -> {path.name}")
        generate_to_parquet(rows=rows, seed=seed, output=path, world=world)
    return path


def load_frame(rows: int, seed: int, world: str = "default") -> Any:
    import pandas as pd

    return pd.read_parquet(ensure_dataset(rows, seed, world))


def training_spec() -> tuple[int, int]:
    """(rows, seed) of the champion's training draw: the main job's defaults."""
    from shiprisk.settings import get_settings

    settings = get_settings()
    return settings.default_rows, settings.default_seed


def training_dataset() -> Path:
    rows, seed = training_spec()
    return ensure_dataset(rows, seed, name=f"shipments_{rows}_s{seed}.parquet")


@dataclass
class Champion:
    version: str
    model_dir: Path
    trained_now: bool
    train_seconds: float | None = None


def ensure_champion() -> Champion:
    """The bench home's champion, trained by the CURRENT code like the main job's, promoted.

    The champion records a fingerprint of the code and config it was trained with; when that
    differs (the model, features, training or simulator changed) the bench store is wiped
    and a new champion is trained, so no figure is ever measured on a stale model.
    """
    import shutil

    from shiprisk.settings import CHAMPION

    rows, seed = training_spec()
    wanted = f"{fingerprint(MODEL_INPUTS)}:{rows}:{seed}"
    recorded = json.loads(CHAMPION_FILE.read_text()) if CHAMPION_FILE.is_file() else {}
    if recorded.get("fingerprint") != wanted:
        for part in STORE_PARTS:
            path = HOME / part
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        CHAMPION_FILE.unlink(missing_ok=True)

    from shiprisk.models import registry
    from shiprisk.serving.batch import champion_model_dir

    registry.configure()
    trained_now, seconds = False, None
    if registry.get_version(CHAMPION) is None:
        from shiprisk.training.promote import promote
        from shiprisk.training.train import train

        path = training_dataset()
        log(
            f"no up-to-date champion in the bench home: training one on {training_spec()[0]:,} rows"
        )
        started = time.perf_counter()
        train(path)
        decision = promote()
        seconds = time.perf_counter() - started
        if not decision.accepted:
            raise RuntimeError(f"bench champion failed the gate: {decision.reasons}")
        trained_now = True
        CHAMPION_FILE.write_text(
            json.dumps(
                {
                    "fingerprint": wanted,
                    "version": str(registry.get_version(CHAMPION).version),
                    "train_seconds": seconds,
                    "train_rows_seed": list(training_spec()),
                    "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                indent=1,
            )
            + "\n"
        )
    version = registry.get_version(CHAMPION)
    return Champion(str(version.version), champion_model_dir(), trained_now, seconds)


def training_priors() -> dict[str, float]:
    """Base rates of the champion's TRAINING slice (same loader and time split as train())."""
    from shiprisk.models.risk_model import OUTCOME_LABEL, OUTCOMES
    from shiprisk.training.config import load_config
    from shiprisk.training.train import load_training_frame, time_split

    frame, _ = load_training_frame(training_dataset())
    splits = time_split(frame, load_config())
    return {o: float((splits.train["outcome"] == OUTCOME_LABEL[o]).mean()) for o in OUTCOMES}


def shipment_requests(rows: int = 200) -> list[dict[str, Any]]:
    """JSON-ready /score bodies: the first ``rows`` shipments of a fresh held-out draw."""
    import pandas as pd

    from shiprisk.data.contract import SHIPMENT_FIELDS

    frame = load_frame(20_000, FRESH_SEEDS["latency"]).head(rows)
    out = []
    for rec in frame[list(SHIPMENT_FIELDS)].to_dict("records"):
        body = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        body["created_at"] = pd.Timestamp(rec["created_at"]).strftime("%Y-%m-%dT%H:%M:%SZ")
        body["order_id"] = str(body["order_id"])
        out.append(body)
    return out


# -- machine ---------------------------------------------------------------------------------


def _meminfo() -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, load and library versions (what the figures depend on)."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = _meminfo()
    versions = {}
    for pkg in (
        "numpy",
        "pandas",
        "pyarrow",
        "lightgbm",
        "scikit-learn",
        "mlflow",
        "bentoml",
        "pydantic",
        "httpx",
    ):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_total_gib": round(mem.get("MemTotal", 0) / 2**30, 1),
        "memory_available_gib": round(mem.get("MemAvailable", 0) / 2**30, 1),
        "cpu_model": cpu,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


# -- timing ----------------------------------------------------------------------------------


def percentiles(samples_s: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/mean/min/max in milliseconds of a list of durations in seconds."""
    import numpy as np

    a = np.asarray(list(samples_s), dtype=float) * 1e3
    if a.size == 0:
        return {}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": int(a.size),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(a.mean()),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
    }


def profile_top(
    fn: Callable[[], Any], *, calls: int = 200, top: int = 18, sort: str = "tottime"
) -> str:
    """cProfile of ``calls`` calls of ``fn``: the top entries as text (for a missed target)."""
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(sort).print_stats(top)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    # keep the header line and the table (drop pstats' preamble about files)
    start = next((i for i, ln in enumerate(lines) if "ncalls" in ln), 0)
    return "\n".join([f"cProfile, {calls} calls, sorted by {sort}:", *lines[start:]])


class RssSampler:
    """High-water mark of the summed RSS of this process and all its descendants (/proc)."""

    def __init__(self, interval_s: float = 0.1, root: int | None = None) -> None:
        self.interval_s = interval_s
        self.root = root or os.getpid()
        self.peak_bytes = 0
        self.peak_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _children() -> dict[int, list[int]]:
        kids: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            kids.setdefault(ppid, []).append(int(entry.name))
        return kids

    def tree_pids(self) -> list[int]:
        kids, todo, out = self._children(), [self.root], []
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(kids.get(pid, []))
        return out

    def tree_rss(self) -> tuple[int, int]:
        kids = self._children()
        todo, total, count = [self.root], 0, 0
        page = os.sysconf("SC_PAGE_SIZE")
        while todo:
            pid = todo.pop()
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                count += 1
            except OSError:
                pass
            todo.extend(kids.get(pid, []))
        return total, count

    def _run(self) -> None:
        while not self._stop.is_set():
            total, count = self.tree_rss()
            if total > self.peak_bytes:
                self.peak_bytes, self.peak_procs = total, count
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds consumed so far by ``root`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in RssSampler(root=root).tree_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def tree_cmdlines(root: int) -> dict[int, str]:
    """pid -> command line of ``root`` and its descendants."""
    out = {}
    for pid in RssSampler(root=root).tree_pids():
        try:
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
    return out


def maxrss_mib() -> dict[str, float]:
    """ru_maxrss of this process and of its largest waited-for child, MiB."""
    import resource

    return {
        "self_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


# -- reporting -------------------------------------------------------------------------------


@dataclass
class Report:
    """Figures of one benchmark: printed with MET/MISSED and written as JSON."""

    name: str
    title: str
    figures: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    code: dict[str, str] = field(default_factory=lambda: code_fingerprints())

    def figure(
        self,
        key: str,
        label: str,
        value: float | None,
        unit: str = "",
        *,
        target: float | None = None,
        op: str = "<=",
        fmt: str = "{:,.3g}",
    ) -> bool | None:
        """Record one figure; ``target`` with ``op`` ('<=' or '>=') decides MET/MISSED."""
        met = None
        if target is not None and value is not None and math.isfinite(value):
            met = bool(value <= target) if op == "<=" else bool(value >= target)
        elif target is not None:
            met = False
        self.figures.append(
            {
                "key": key,
                "label": label,
                "value": value,
                "unit": unit,
                "target": target,
                "op": op,
                "met": met,
                "fmt": fmt,
            }
        )
        shown = "n/a" if value is None else fmt.format(value)
        goal = "" if target is None else f"   target {op} {fmt.format(target)} {unit}".rstrip()
        verdict = "" if met is None else ("   MET" if met else "   MISSED")
        print(f"  {label:<62} {shown:>12} {unit:<8}{goal}{verdict}", flush=True)
        return met

    def missed(self) -> list[str]:
        return [f["key"] for f in self.figures if f["met"] is False]

    def write(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        payload = {
            "name": self.name,
            "title": self.title,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "seconds": round(time.perf_counter() - self.started, 1),
            "machine": machine_info(),
            "figures": self.figures,
            "details": self.details,
            "notes": self.notes,
            "profiles": self.profiles,
            "code": self.code,
            "champion": json.loads(CHAMPION_FILE.read_text()) if CHAMPION_FILE.is_file() else {},
        }
        if code_fingerprints() != self.code:
            payload["notes"] = [
                *self.notes,
                "WARNING: the simulator or model code changed while this benchmark ran.",
            ]
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(payload, indent=1, default=_json_default) + "\n")
        log(f"wrote {path.relative_to(REPO)} ({payload['seconds']} s)")
        return path


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
