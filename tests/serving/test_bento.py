"""`make bento` packages the champion with the service, offline, and `bentoml serve` of the
built tag answers the README's curl example."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from shiprisk.serving import bento
from shiprisk.serving.model_store import BAKED_TAG_FILE
from tests.conftest import start_server

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(served_tag: str) -> tuple[str, str]:
    """The bento built from the session's champion, as `make bento` does."""
    os.environ.pop("SHIPRISK_MODEL_TAG", None)
    tag, model = bento.build()
    assert not BAKED_TAG_FILE.exists()  # only while building
    return tag, model


def test_the_bento_packages_the_champion_and_what_serving_needs(built, served_tag) -> None:
    tag, model = built
    assert model == served_tag  # the session's champion, whatever was served before
    name, version = tag.split(":")
    bento_dir = Path(os.environ["BENTOML_HOME"]) / "bentos" / name / version
    info = yaml.safe_load((bento_dir / "bento.yaml").read_text())
    assert [m["tag"] for s in info["services"] for m in s.get("models", [])] == [served_tag]
    src = bento_dir / "src"
    assert (src / "serving" / "bento_model_tag").read_text().strip() == served_tag
    for needed in ("serving/service.py", "data/reference/channels.json", "docs/policy.md"):
        assert (src / needed).is_file(), needed
    assert (src / "serving" / "score_example.json").is_file()
    assert not (src / "training").exists()  # serving never needs training
    requirements = (bento_dir / "env" / "python" / "requirements.txt").read_text()
    for package in ("lightgbm==", "lleaves==", "llvmlite==", "pydantic-settings=="):
        assert package in requirements, package
    assert "mlflow" not in requirements


def _readme_curl() -> tuple[str, bytes]:
    readme = (REPO / "README.md").read_text()
    command = re.search(r"```bash\n(curl [^`]*?/score [^`]*?)\n```", readme)
    assert command, "the README has no /score curl example"
    args = shlex.split(command.group(1).replace("\\\n", " "))
    return args[args.index("-X") + 2], args[args.index("-d") + 1].encode()


def test_bentoml_serve_of_the_built_tag_answers_the_readme_curl(built, session_home) -> None:
    """Served from another BentoML store, as on another machine: exported (with its model)
    and imported there. (A second server on the session's store would also share, and wipe
    on start, the session server's Prometheus directory.)"""
    tag, model = built
    url, body = _readme_curl()
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    archive = session_home / "shiprisk.bento"
    elsewhere = dict(os.environ, BENTOML_HOME=str(session_home / "bento-elsewhere"))
    for args, env in (
        (["export", tag, str(archive)], os.environ),
        (["import", str(archive)], elsewhere),
    ):
        done = subprocess.run([bentoml, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    srv = start_server(
        None,
        {"SHIPRISK_WORKERS": "1", "BENTOML_HOME": elsewhere["BENTOML_HOME"]},
        session_home / "bento-server.log",
        target=tag,
    )
    try:
        answer = httpx.post(
            url.replace("http://127.0.0.1:3000", srv.url),
            content=body,
            headers={"content-type": "application/json"},
            timeout=60,
        )
    finally:
        srv.stop()
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["recommendation"]["channel_id"]
    assert model == f"shiprisk-risk:v{data['model']['version']}-{data['model']['digest'][:12]}"
