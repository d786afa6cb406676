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
TRAIN_ROWS = 40_000


def pytest_configure(config: pytest.Config) -> None:
    os.environ["SHIPRISK_HOME"] = str(SESSION_HOME / "home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{SESSION_HOME / 'mlflow.db'}"
    os.environ["BENTOML_HOME"] = str(SESSION_HOME / "bentoml")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    os.environ["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"
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
