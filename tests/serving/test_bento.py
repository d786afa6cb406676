"""`bentoml build` packages the service with the pinned champion, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_bentoml_build_packages_service_and_model(served_tag: str) -> None:
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    env = dict(os.environ, SHIPRISK_MODEL_TAG=served_tag, BENTOML_DO_NOT_TRACK="true")
    done = subprocess.run(
        [bentoml, "build", str(REPO), "--output", "tag"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    tag = done.stdout.strip().splitlines()[-1].split("__tag__:")[-1].strip()
    name, version = tag.split(":")
    bento_dir = Path(os.environ["BENTOML_HOME"]) / "bentos" / name / version
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    models = [m["tag"] for s in info["services"] for m in s.get("models", [])]
    assert served_tag in models
    assert (bento_dir / "src" / "serving" / "service.py").is_file()
    assert (bento_dir / "src" / "data" / "reference" / "channels.json").is_file()
    assert not (bento_dir / "src" / "training").exists()  # serving never needs training
    requirements = (bento_dir / "env" / "python" / "requirements.txt").read_text()
    assert "lightgbm==" in requirements and "mlflow" not in requirements
