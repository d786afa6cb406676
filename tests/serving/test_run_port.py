"""`shiprisk run` with its port taken fails at once, before any data is simulated or any model
trained, with one line naming SHIPRISK_PORT."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def test_a_busy_port_fails_before_any_work(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(
            os.environ,
            SHIPRISK_HOME=str(tmp_path / "home"),
            MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
            SHIPRISK_PORT=str(port),
        )
        shiprisk = str(Path(sys.executable).with_name("shiprisk"))
        done = subprocess.run(
            [shiprisk, "run"], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SHIPRISK_PORT" in lines[0] and str(port) in lines[0], lines
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "home" / "data").exists()  # nothing simulated
    assert not (tmp_path / "mlflow.db").exists()  # no store touched, nothing trained
