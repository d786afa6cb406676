"""The versioned training configuration (``configs/train.yaml``), validated."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train.yaml"


class SplitConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    calibration: float = Field(default=0.15, gt=0, lt=0.5)
    test: float = Field(default=0.15, gt=0, lt=0.5)


class BaselineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    Cs: list[float] = [0.01, 0.1, 1.0, 10.0]
    max_rows: int = Field(default=100_000, ge=1000)


class PromotionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_log_loss_ratio: float = Field(default=1.005, ge=1.0)


class MissingConfig(BaseModel):
    """Random masking of optional fields in training (``features/masking.py``)."""

    model_config = ConfigDict(extra="forbid")
    mask_rate: float = Field(default=0.25, ge=0, lt=1)
    mask_rate_by_head: dict[str, Annotated[float, Field(ge=0, lt=1)]] = Field(default_factory=dict)
    """A head trained on rows masked at its own rate (others: ``mask_rate``)."""
    masked_copies_by_head: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=dict
    )
    """A head trained on every row as recorded plus a masked copy of this share of the rows
    (others: on masked rows only)."""
    seed: int = 0

    def rate(self, head: str) -> float:
        return self.mask_rate_by_head.get(head, self.mask_rate)

    def copies(self, head: str) -> float:
        """The share of rows added as masked copies for ``head`` (0: rows masked in place)."""
        return self.masked_copies_by_head.get(head, 0.0)

    def ways(
        self, outcomes: Sequence[str], heads: Sequence[str] | None = None
    ) -> dict[tuple[float, float], list[str]]:
        """The heads to train (default: all ``outcomes``) grouped by (mask rate, copies), the
        default way first (it fits the feature pipeline, even with no head of its own)."""
        ways: dict[tuple[float, float], list[str]] = {(self.mask_rate, 0.0): []}
        for outcome in (o for o in outcomes if heads is None or o in heads):
            ways.setdefault((self.rate(outcome), self.copies(outcome)), []).append(outcome)
        return ways


class TrainConfig(BaseModel):
    """Hyper-parameters and split shares; the file is logged with every run."""

    model_config = ConfigDict(extra="forbid")
    version: int = 1
    split: SplitConfig = SplitConfig()
    early_stopping_share: float = Field(default=0.15, gt=0, lt=0.5)
    lightgbm: dict[str, dict[str, Any]]
    baseline: BaselineConfig = BaselineConfig()
    promotion: PromotionConfig = PromotionConfig()
    missing: MissingConfig = MissingConfig()

    @field_validator("lightgbm")
    @classmethod
    def _known_features(cls, heads: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """A misspelt feature in ``monotone`` or ``exclude`` would silently constrain
        nothing (a feature the history lacks is skipped at fit time, so the fit cannot tell)."""
        from shiprisk.features.definitions import FEATURES
        from shiprisk.features.extra_features import is_extra

        for head, params in heads.items():
            for where, named in _named_features(params):
                unknown = [str(n) for n in named if str(n) not in FEATURES and not is_extra(str(n))]
                if unknown:
                    raise ValueError(
                        f"{head}.{where}: unknown feature {unknown[0]!r} (the features are "
                        "listed in features/definitions.py; seller extras are extra.<name>)"
                    )
        return heads


def _named_features(params: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """(where, feature names) of a head's ``monotone``, ``exclude`` and causes' ``exclude``."""
    found = [("monotone", list(params.get("monotone") or {})), ("exclude", params.get("exclude"))]
    for i, cause in enumerate(params.get("two_causes") or []):
        if isinstance(cause, dict):
            found.append((f"two_causes.{i}.exclude", cause.get("exclude")))
    return [(where, list(named)) for where, named in found if named]


class TrainConfigError(ValueError):
    """A training config that is not YAML or does not validate: one line naming the key."""


def load_config(path: Path | None = None) -> TrainConfig:
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"training config not found: {path}")
    try:
        return TrainConfig.model_validate(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{path} is not valid YAML ({exc.__class__.__name__})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise TrainConfigError(f"{path}: {key}: {msg}{more}") from exc


def config_path(path: Path | None) -> Path:
    return Path(path) if path else DEFAULT_CONFIG
