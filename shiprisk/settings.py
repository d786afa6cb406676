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
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REGISTERED_MODEL_NAME = "shiprisk-risk"
CHAMPION = "champion"
CHALLENGER = "challenger"
BATCH_CHUNK_ROWS = 10_000
"""Rows per batch-scoring chunk: small enough that progress moves every second or two."""


class OutcomeSpecError(ValueError):
    """The outcome spec file (``SHIPRISK_OUTCOMES_FILE``) cannot be used; says why."""


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
    max_drop_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="train refuses a history with a larger share of invalid rows",
    )
    max_history_age_days: int = Field(
        default=365, ge=1, description="warn when the newest outcome is older than this"
    )
    default_rows: int = Field(default=300_000, ge=1000, description="main job dataset size")
    default_seed: int = 7
    host: str = Field(default="127.0.0.1", description="address `shiprisk serve` binds")
    port: int = Field(default=3000, ge=1, le=65535)
    workers: int = Field(default=2, ge=1, le=64, description="BentoML worker processes")
    max_body_bytes: int = Field(default=262_144, ge=1024, description="larger bodies get 413")
    max_batch: int = Field(default=100, ge=1, le=10_000, description="shipments per /score_batch")
    access_log: bool = Field(
        default=False,
        description="write one access-log line per request (BentoML's access log; costs "
        "about 0.6 ms of CPU per request); /metrics counts requests either way",
    )
    base_model: str = Field(
        default="auto",
        description="the base model a small history recalibrates (docs/history.md, 'Three "
        "paths'): auto = the bundled base (trained once on the default simulated world, "
        "cached under home), off = never recalibrate, or a saved model's directory",
    )
    compiled_trees: bool = Field(
        default=True,
        description="score with the boosters compiled to native code (lleaves) where they "
        "reproduce LightGBM's scores; false = LightGBM only",
    )
    max_in_flight: int = Field(
        default=32,
        ge=1,
        le=4096,
        description="requests one worker handles at once; beyond it a fast 503 + Retry-After",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="no answer started by then: 504"
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="a connection that has not sent a request's full headers by then is closed",
    )
    metrics_require_key: bool = Field(
        default=False,
        description="ask for the API key on /metrics too (it holds no request values either way)",
    )
    unknown_fields: Literal["reject", "ignore"] = Field(
        default="reject",
        description="a request key the contract does not know: 'reject' answers 400 naming "
        "its parent; 'ignore' drops it before validation (never logged, never echoed)",
    )
    support_min: int = Field(
        default=500,
        ge=0,
        description="a channel's answer rests on fewer training shipments than this in its "
        "cell (channel x declared-value band x destination risk tier): flagged uncertain",
    )
    support_min_events: int = Field(
        default=50,
        ge=0,
        description="...or fewer training events of any outcome (losses, rejections) in that "
        "cell: flagged uncertain; 50 is the bar at which the counterfactual calibration is "
        "measured within +-15 % (BENCHMARKS.md)",
    )
    api_key: SecretStr | None = Field(default=None, description="require this key if set")
    api_key_file: Path | None = Field(default=None, description="file holding the API key")
    catalog_dir: Path | None = Field(
        default=None,
        description="a seller's own catalog directory (channels.json, destinations.csv, "
        "optional currencies.csv; format: docs/catalog.md); unset = the bundled catalog",
    )

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

    def resolved_api_key(self) -> str | None:
        """The API key from SHIPRISK_API_KEY or the file SHIPRISK_API_KEY_FILE names."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        if self.api_key_file is not None:
            key = self.api_key_file.read_text().strip()
            return key or None
        return None

    def ensure_dirs(self) -> None:
        """Create the working directories (called by commands, never at import)."""
        for path in (self.data_dir, self.mlflow_dir, self.artifacts_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
