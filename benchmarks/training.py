"""Training cost: wall time and peak memory of ``shiprisk.training.train.train`` at 100k / 1M rows.

Each size runs in a fresh subprocess (so its peak RSS is its own): load + validate the
history, time split, both LightGBM heads with early stopping and Platt calibration, the
logistic baseline (capped at 100k training rows by the config), evaluation, plots, the
frozen evaluation set and the MLflow pyfunc model, logged to a separate SQLite store under
the bench home (``register=False``: the bench champion is untouched). No targets; reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import common

SIZES = {"100k": (100_000, "train_100k"), "1M": (1_000_000, "batch")}
"""rows and the FRESH_SEEDS key of the draw (the 1M draw is the batch benchmark's history)."""


def _time_stages() -> dict[str, float]:
    """Wrap train()'s steps (in this child process only) to time each; filled as they run."""
    import functools

    import shiprisk.training.train as T
    from shiprisk.models.risk_model import RiskModel

    stages: dict[str, float] = {}

    def timed(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    for name in (
        "load_training_frame",
        "fit_baseline",
        "evaluate_frame",
        "_log_plots",
        "_log_frozen_eval",
        "_log_params",
        "_log_metrics",
    ):
        setattr(T, name, timed(name, getattr(T, name)))
    T.registry.log_risk_model = timed("log_risk_model", T.registry.log_risk_model)
    fit = RiskModel.fit.__func__
    RiskModel.fit = classmethod(timed("RiskModel.fit (both heads + calibration)", fit))
    return stages


def child(path: str) -> None:
    """Run train() once and print a JSON line with its own timings."""
    common.configure_env()
    t0 = time.perf_counter()
    from shiprisk.training.train import train

    imports = time.perf_counter() - t0
    stages = _time_stages()
    tracking = f"sqlite:///{(common.HOME / 'train_bench' / 'mlflow.db').resolve()}"
    (common.HOME / "train_bench").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = train(Path(path), tracking_uri=tracking, register=False)
    seconds = time.perf_counter() - t0
    usage = common.maxrss_mib()
    gains = {o: m.get("gain_captured") for o, m in result.metrics["model"].items()}
    print(
        "RESULT "
        + json.dumps(
            {
                "train_s": seconds,
                "import_s": imports,
                "splits": result.splits,
                "gain_captured": gains,
                "stages_s": stages,
                **usage,
            }
        ),
        flush=True,
    )


def main() -> None:
    common.configure_env()
    report = common.Report("training", "Training wall time and peak memory")
    runs = {}
    for label, (rows, seed_key) in SIZES.items():
        path = common.ensure_dataset(rows, common.FRESH_SEEDS[seed_key])
        common.log(f"training on {rows:,} rows ({path.name}) in a subprocess")
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(path)],
            env=common.child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        with common.RssSampler(0.2, root=proc.pid) as rss:
            out, _ = proc.communicate()
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"training on {rows:,} rows failed (rc {proc.returncode})")
        line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
        result = json.loads(line.removeprefix("RESULT "))
        result.update(rows=rows, process_wall_s=wall, peak_tree_rss_mib=rss.peak_bytes / 2**20)
        runs[label] = result
    report.details["runs"] = runs
    print("\ntrain() (LightGBM heads + calibration + baseline + evaluation + MLflow logging):")
    for label, r in runs.items():
        report.figure(
            f"{label}.train_s", f"{label} rows: train() wall time", r["train_s"], "s", fmt="{:,.1f}"
        )
        report.figure(
            f"{label}.peak_rss_mib",
            f"{label} rows: peak RSS",
            r["peak_tree_rss_mib"],
            "MiB",
            fmt="{:,.0f}",
        )
        for stage, sec in sorted(r.get("stages_s", {}).items(), key=lambda kv: -kv[1]):
            report.figure(
                f"{label}.stage.{stage}", f"{label} rows:   {stage}", sec, "s", fmt="{:,.1f}"
            )
        for outcome, gain in r["gain_captured"].items():
            report.figure(
                f"{label}.gain_{outcome}",
                f"{label} rows: test-slice gain, {outcome}",
                gain,
                fmt="{:.3f}",
            )
    report.notes.append(
        "Wall time excludes drawing the data and interpreter start-up "
        "(imports are timed separately in the JSON)."
    )
    report.write()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(sys.argv[2])
    else:
        main()
