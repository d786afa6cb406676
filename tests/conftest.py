"""Session-wide test setup: every store lives in one temp dir, data and model built once.

Tests never touch a developer's ``.shiprisk``: SHIPRISK_HOME, the MLflow tracking URI and
BENTOML_HOME point into a session temp dir before any test module is imported. One SQLite
MLflow store serves the whole session (SQLite registries lock under parallel writers).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

SESSION_HOME = Path(tempfile.mkdtemp(prefix="shiprisk-tests-"))
TRAIN_ROWS = 50_000


def pytest_configure(config: pytest.Config) -> None:
    os.environ["SHIPRISK_HOME"] = str(SESSION_HOME / "home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{SESSION_HOME / 'mlflow.db'}"
    os.environ["BENTOML_HOME"] = str(SESSION_HOME / "bentoml")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
    # No bundled base model (300,000 rows, minutes) behind every small test history: tests
    # that recalibrate bring the session champion as their base (test_recalibrate.py).
    os.environ["SHIPRISK_BASE_MODEL"] = "off"
    from shiprisk.settings import get_settings

    get_settings.cache_clear()


@pytest.fixture(scope="session")
def session_home() -> Path:
    return SESSION_HOME


@pytest.fixture(scope="session")
def sim_frame():
    """A small simulated history (default world), drawn once per session."""
    from shiprisk.data.simulator import simulate

    return simulate(TRAIN_ROWS, seed=11)


@pytest.fixture(scope="session")
def sim_file(sim_frame, session_home: Path) -> Path:
    path = session_home / "data" / "sim.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    sim_frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def trained(sim_file: Path):
    """Train once per session against the session's SQLite MLflow store and promote it."""
    from shiprisk.training.promote import promote
    from shiprisk.training.train import train

    result = train(sim_file)
    decision = promote()
    assert decision.accepted, decision.reasons
    return result


@pytest.fixture(scope="session")
def champion_model(trained, session_home: Path):
    """The champion's RiskModel, downloaded from the registry."""
    from shiprisk.models import registry
    from shiprisk.models.risk_model import RiskModel
    from shiprisk.settings import CHAMPION

    version = registry.get_version(CHAMPION)
    path = registry.download_risk_model(version, session_home / "champion_model")
    return RiskModel.load(path)


@pytest.fixture(scope="session")
def decision_model():
    """A model trained on 150 000 rows (no MLflow): decisions need more history than the
    50 000-row session model sees (tests/training/test_decision_eval.py)."""
    from shiprisk.data.simulator import simulate
    from shiprisk.models.risk_model import RiskModel
    from shiprisk.training.config import load_config
    from shiprisk.training.train import time_split

    config = load_config()
    splits = time_split(simulate(150_000, seed=5), config)
    return RiskModel.fit(splits.train, splits.calibration, config.lightgbm)


@pytest.fixture(scope="session")
def scorer(champion_model):
    """The in-process request path over the session champion."""
    from shiprisk.data.catalogs import load_catalog
    from shiprisk.decisions.costs import SellerCosts
    from shiprisk.serving.schemas import ModelRef
    from shiprisk.serving.scorer import Scorer

    ref = ModelRef(name="shiprisk-risk", version="test", digest="test")
    return Scorer(champion_model, ref, load_catalog(), SellerCosts())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """A `bentoml serve` subprocess on a free loopback port, stopped at session end."""

    def __init__(
        self,
        tag: str | None,
        env: dict[str, str],
        log_path: Path,
        target: str = "shiprisk.serving.service:ShipRisk",
    ) -> None:
        import subprocess
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tag = tag
        self.log_path = log_path
        bentoml = str(Path(sys.executable).with_name("bentoml"))
        full_env = dict(os.environ, **env, BENTOML_DO_NOT_TRACK="true")
        if tag:
            full_env["SHIPRISK_MODEL_TAG"] = tag
        else:  # a bento serves the tag baked into it
            full_env.pop("SHIPRISK_MODEL_TAG", None)
        full_env.setdefault("OMP_NUM_THREADS", "1")
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                bentoml,
                "serve",
                target,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 240.0) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server not ready in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except Exception:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


TEST_API_KEY = "test-key-not-a-secret"


@pytest.fixture(scope="session")
def served_tag(trained) -> str:
    """The champion imported into the session's BentoML store (pinned tag)."""
    from shiprisk.serving.model_store import import_version

    return import_version().tag


def start_server(
    tag: str | None,
    env: dict[str, str],
    log_path: Path,
    attempts: int = 3,
    target: str = "shiprisk.serving.service:ShipRisk",
):
    """Start and wait for a server; retry when circus loses the race for a free port.

    BentoML's arbiter picks its ZMQ control ports by probing for free ones and binds them a
    moment later; on a busy machine another process can take one in between."""
    for attempt in range(attempts):
        srv = RunningServer(tag, env, log_path, target)
        try:
            srv.wait_ready()
            return srv
        except RuntimeError as exc:
            srv.stop()
            if "Address already in use" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def server(served_tag: str, session_home: Path):
    """The real BentoML server, started once per session, with API-key auth on."""
    env = {
        "SHIPRISK_API_KEY": TEST_API_KEY,
        "SHIPRISK_WORKERS": "1",
        "SHIPRISK_MAX_BATCH": "20",
        "SHIPRISK_MAX_BODY_BYTES": "65536",
        "SHIPRISK_HEADER_TIMEOUT_S": "5",
    }
    srv = start_server(served_tag, env, session_home / "server.log")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def api(server):
    """An httpx client for the session server, with the API key."""
    import httpx

    with httpx.Client(
        base_url=server.url, headers={"x-api-key": TEST_API_KEY}, timeout=60
    ) as client:
        yield client
