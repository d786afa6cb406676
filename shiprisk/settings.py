"""Where generated files live and which stores to talk to (settings-as-paths).

Everything the project generates (datasets, the MLflow store, the BentoML store, batch
outputs) lives under one git-ignored working directory, ``SHIPRISK_HOME`` (default
``./.shiprisk``). Each path can be overridden by an environment variable; nothing is read
or created at import time: call :func:`get_settings`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REGISTERED_MODEL_NAME = "shiprisk-risk"
CHAMPION = "champion"
CHALLENGER = "challenger"


class Settings(BaseSettings):
    """Paths and store locations; every field reads ``SHIPRISK_<FIELD>`` from the env."""

    model_config = SettingsConfigDict(env_prefix="SHIPRISK_", extra="ignore")

    home: Path = Field(default=Path(".shiprisk"), description="working directory root")
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; MLFLOW_TRACKING_URI wins, else SQLite under home",
    )
    registry_model_name: str = REGISTERED_MODEL_NAME
    maturity_days: int = Field(
        default=60, ge=0, description="shipments younger than this have no known outcome yet"
    )
    default_rows: int = Field(default=200_000, ge=1000, description="main job dataset size")
    default_seed: int = 7

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def default_dataset(self) -> Path:
        return self.data_dir / "shipments.parquet"

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def artifacts_dir(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def bentoml_home(self) -> Path:
        return Path(os.environ.get("BENTOML_HOME", self.home / "bentoml"))

    @property
    def resolved_tracking_uri(self) -> str:
        """The MLflow URI: ``MLFLOW_TRACKING_URI`` if set, else a local SQLite store."""
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"

    def ensure_dirs(self) -> None:
        """Create the working directories (called by commands, never at import)."""
        for path in (self.data_dir, self.mlflow_dir, self.artifacts_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
