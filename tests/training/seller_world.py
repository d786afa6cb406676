"""A seller's own world for tests: a simulated history moved onto the example US seller
catalog (examples/catalog: 4 channels the bundled catalog lacks, destinations beyond its 53).

Channels are remapped by tracking level (none -> USPS untracked, partial -> USPS tracked,
full express -> DHL, other full -> UPS); a few bundled countries become countries the bundled
catalog lacks (NO -> IS, IT -> GR, PL -> CZ, TR -> RO, ZA -> KE), the rest outside the
seller's table are dropped. Losses on DHL are redrawn at ``DHL_LOSS`` so that one channel's
outcomes clearly differ from its twin's (UPS: same type, tracking and liability).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shiprisk.data.catalogs import load_catalog, reference_dir

SELLER_CATALOG = Path(__file__).parents[2] / "examples" / "catalog"
DHL, UPS = "dhl_express_worldwide", "ups_worldwide_saver"
DHL_LOSS = 0.15
RENAMED = {"NO": "IS", "IT": "GR", "PL": "CZ", "TR": "RO", "ZA": "KE"}


def seller_history(rows: int, seed: int, *, losses: bool = True, rejections: bool = True):
    """A history on the seller's channels; ``losses``/``rejections`` False turn that
    outcome into 'delivered' (a marketplace export without losses, a claims export
    without refusals)."""
    from shiprisk.data.simulator import simulate

    frame = simulate(rows, seed=seed).drop(columns=["true_p_loss", "true_p_reject"])
    bundled = load_catalog(reference_dir())
    seller = load_catalog(SELLER_CATALOG)
    by_id = {c.id: c for c in bundled.channels}

    def target(channel_id: str) -> str:
        ch = by_id[channel_id]
        if ch.tracking == "none":
            return "usps_fcmi_flat"
        if ch.tracking == "partial":
            return "usps_fcpis"
        return DHL if ch.channel_type == "express" else UPS

    frame["channel_id"] = frame["channel_id"].map(target)
    frame["destination_country"] = frame["destination_country"].replace(RENAMED)
    frame = frame[frame["destination_country"].isin(seller.countries)].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    on_dhl = (frame["channel_id"] == DHL).to_numpy()
    lost = on_dhl & (rng.random(len(frame)) < DHL_LOSS)
    frame.loc[lost, "outcome"] = "lost"
    frame.loc[on_dhl & ~lost & (frame["outcome"] == "lost"), "outcome"] = "delivered"
    if not losses:
        frame.loc[frame["outcome"] == "lost", "outcome"] = "delivered"
    if not rejections:
        frame.loc[frame["outcome"] == "rejected", "outcome"] = "delivered"
    return frame


def write_history(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def isolated_env(home: Path) -> dict[str, str]:
    """A store of its own (home, MLflow, BentoML): the session champion stays untouched."""
    return {
        "SHIPRISK_HOME": str(home / "home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "BENTOML_HOME": str(home / "bentoml"),
        "SHIPRISK_WORKERS": "1",
    }


def run_cli(args: list[str], env: dict[str, str]):
    """`shiprisk <args>` in a subprocess, as a seller runs it."""
    import os
    import subprocess
    import sys

    shiprisk = str(Path(sys.executable).with_name("shiprisk"))
    full = {k: v for k, v in os.environ.items() if k != "SHIPRISK_CATALOG_DIR"} | env
    return subprocess.run([shiprisk, *args], env=full, capture_output=True, text=True)


def python_in(env: dict[str, str], code: str) -> str:
    """Run ``code`` in a subprocess with ``env``; its last stdout line."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ) | env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


IMPORT_CHAMPION = (
    "from shiprisk.serving.model_store import import_version; print(import_version().tag)"
)
