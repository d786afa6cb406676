"""What `shiprisk train` and `shiprisk promote` print in a fresh home, as a user's terminal
gets it (subprocesses, real MLflow SQLite store): step progress, the metrics table with a
legend, one labelled summary each, and no Python warning or traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHIPRISK = str(Path(sys.executable).with_name("shiprisk"))


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [SHIPRISK, *args], env=env, capture_output=True, text=True, timeout=3600, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def test_train_and_promote_are_quiet_and_end_with_a_summary(sim_file, tmp_path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_LOGGING_LEVEL", "PYTHONWARNINGS")
    }
    env["SHIPRISK_HOME"] = str(tmp_path / "home")  # a fresh store, as after a clone
    trained = _run(["train", "--data", str(sim_file)], env)
    promoted = _run(["promote"], env)
    for output in (trained, promoted):
        assert "Warning" not in output and "WARNING" not in output, output
        assert "Traceback" not in output, output
        assert "INFO" not in output, output  # no third-party log chatter either
    assert "[6/6] logging and registering the model: done in" in trained
    assert "legend:" in trained and "  gain_expected " in trained
    summary = trained[trained.index("training summary") :].splitlines()
    assert summary[1].startswith("  data:") and any("MLflow:   run train-" in x for x in summary)
    assert "registry: version 1 is the challenger" in trained
    assert '{"model"' not in trained  # no unlabelled JSON line
    lines = promoted.strip().splitlines()
    assert lines[0].startswith("promotion gate")
    assert any(x.startswith("  loss: passed: challenger log loss") for x in lines)
    assert any(x.startswith("  reject: passed: challenger log loss") for x in lines)
    assert lines[-1] == "result: version 1 is champion"
