"""``shiprisk promote`` / ``shiprisk rollback``: the quality gate in front of ``champion``.

The challenger replaces the champion only if, on the challenger's frozen evaluation set (the
one of its data source and mapping, ``data_key``; see ``training.train.fix_frozen_eval``), its
log loss is at most ``max_log_loss_ratio`` x the champion's for every outcome. The first
champion must at least beat the constant base-rate prediction. The gate applies per trained
head: an outcome the challenger scores from a prior (training/heads.py) is not gated, nor is
one without any event in the frozen set (a small history's), but at least one must be. A
challenger that needs a feature this code does not compute is refused here, with the
missing features named; a champion in that state cannot be served any more, so the
challenger is then held to the base-rate prior instead. Every decision is written to the
version's tags (``gate``, ``gate_reason``) and printed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from shiprisk.models import registry
from shiprisk.models.risk_model import (
    OUTCOMES,
    IncompatibleModelError,
    ModelIntegrityError,
    RiskModel,
)
from shiprisk.settings import CHALLENGER, CHAMPION
from shiprisk.training.config import load_config
from shiprisk.training.evaluate import binary_log_loss, outcome_labels
from shiprisk.training.train import DATA_KEY_TAG, frozen_eval_uri


@dataclass
class PromotionDecision:
    accepted: bool
    challenger: str | None
    champion_before: str | None
    reasons: list[str] = field(default_factory=list)
    log_loss: dict[str, dict[str, float]] = field(default_factory=dict)
    frozen_set: str | None = None
    """URI of the frozen evaluation set both models were scored on."""
    evaluated_on: str = ""
    """One line naming that set (its data key, rows and URI); printed by ``promote``."""
    passed: dict[str, bool] = field(default_factory=dict)
    """The gate per outcome (empty when the gate did not run)."""


def _load_version(version) -> RiskModel:
    return RiskModel.load(registry.fetch_verified(version, refresh=True))


def _log_losses(model: RiskModel, frame: pd.DataFrame) -> dict[str, float]:
    predicted = model.predict_frame(frame)
    labels = outcome_labels(frame)
    return {o: binary_log_loss(labels[o], predicted[f"p_{o}"].to_numpy()) for o in OUTCOMES}


def _prior_log_losses(frame: pd.DataFrame) -> dict[str, float]:
    labels = outcome_labels(frame)
    return {o: binary_log_loss(y, np.full(len(y), y.mean())) for o, y in labels.items()}


def frozen_key(version) -> str | None:
    """The data key a version trained on (None: trained before keyed sets existed)."""
    return (version.tags or {}).get(DATA_KEY_TAG) or None


def load_frozen_eval(
    workdir: Path, key: str | None = None, fallback: str | None = None
) -> tuple[pd.DataFrame, str, str | None]:
    """The frozen set of a data key, its URI and the key used.

    A version registered outside ``train`` has no key: it is scored on the legacy set, or
    else on ``fallback``'s (the champion's) set."""
    uri = frozen_eval_uri(key)
    if uri is None and key is None and fallback:
        key, uri = fallback, frozen_eval_uri(fallback)
    if uri is None:
        raise RuntimeError(
            f"no frozen evaluation set for data key {key}: train a model on that data first"
        )
    local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(workdir))
    return pd.read_parquet(local), uri, key


def decide(max_ratio: float | None = None) -> PromotionDecision:
    """Compare challenger and champion on the frozen set (no registry change).

    ``max_ratio`` defaults to ``promotion.max_log_loss_ratio`` of the training config.
    """
    if max_ratio is None:
        max_ratio = load_config().promotion.max_log_loss_ratio
    challenger = registry.get_version(CHALLENGER)
    champion = registry.get_version(CHAMPION)
    decision = PromotionDecision(
        False,
        str(challenger.version) if challenger else None,
        str(champion.version) if champion else None,
    )
    if challenger is None:
        decision.reasons.append("refused: no model version has the 'challenger' alias")
        return decision
    if champion is not None and str(champion.version) == str(challenger.version):
        decision.reasons.append(f"refused: version {challenger.version} is already champion")
        return decision
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        fallback = frozen_key(champion) if champion is not None else None
        frame, uri, key = load_frozen_eval(workdir, frozen_key(challenger), fallback)
        try:
            chal_model = _load_version(challenger)
        except IncompatibleModelError as exc:
            decision.reasons.append(f"refused: challenger is incompatible with this code ({exc})")
            return decision
        except ModelIntegrityError as exc:
            decision.reasons.append(f"refused: challenger failed verification ({exc})")
            return decision
        decision.frozen_set = uri
        whose = "the challenger's" if key == frozen_key(challenger) else "the champion's"
        decision.evaluated_on = (
            f"scored on {whose} frozen evaluation set {key or '(legacy, unkeyed)'}: "
            f"{len(frame):,} rows, {uri}"
        )
        chal = _log_losses(chal_model, frame)
        decision.log_loss["challenger"] = chal
        champ_model = None
        if champion is not None:
            try:
                champ_model = _load_version(champion)
            except IncompatibleModelError as exc:
                decision.reasons.append(
                    f"champion v{champion.version} cannot run on this code ({exc}): "
                    "the challenger is held to the base-rate prior"
                )
        if champ_model is None:
            reference, label, ratio = _prior_log_losses(frame), "base-rate prior", 1.0
        else:
            reference = _log_losses(champ_model, frame)
            label, ratio = f"champion v{champion.version}", max_ratio
        decision.log_loss["reference"] = reference
        events = {o: int(y.sum()) for o, y in outcome_labels(frame).items()}
    ok = True
    for outcome in OUTCOMES:
        if outcome not in chal_model.outcomes:  # the gate applies per trained head
            decision.reasons.append(
                f"{outcome}: not gated: the challenger has no head for it (too few events); "
                "it is scored from the prior"
            )
            continue
        if not events.get(outcome):  # a small history's frozen set may hold none
            decision.reasons.append(
                f"{outcome}: not gated: the frozen evaluation set ({len(frame):,} rows) holds no "
                "such event to judge it on"
            )
            continue
        limit = reference[outcome] * ratio
        passed = chal[outcome] <= limit if champ_model else chal[outcome] < limit
        ok &= passed
        decision.passed[outcome] = bool(passed)
        decision.reasons.append(
            f"{outcome}: challenger log loss {chal[outcome]:.5f} "
            f"{'<=' if passed else '>'} {limit:.5f} ({ratio:g} x {label} {reference[outcome]:.5f})"
        )
    if not decision.passed:
        ok = False
        decision.reasons.append("refused: no outcome could be judged on the frozen set")
    decision.accepted = bool(ok)
    return decision


def promote(max_ratio: float | None = None) -> PromotionDecision:
    """Run the gate and, if it passes, move ``champion`` to the challenger."""
    decision = decide(max_ratio)
    if decision.challenger is not None:
        tags = {
            "gate": "passed" if decision.accepted else "failed",
            "gate_reason": "; ".join(filter(None, [decision.evaluated_on, *decision.reasons]))[
                :4000
            ],
        }
        for key, value in tags.items():
            registry.client().set_model_version_tag(
                registry.model_name(), decision.challenger, key, value
            )
    if decision.accepted:
        registry.make_champion(decision.challenger)
    if decision.challenger is not None:
        _log_promotion_run(decision)
    return decision


def _log_promotion_run(decision: PromotionDecision) -> None:
    """One MLflow run per gate decision, ``promote-v<version>``: the log losses compared
    (``<outcome>/log_loss_challenger`` next to ``<outcome>/log_loss_reference``) and the
    verdict as its description."""
    from shiprisk.training.evaluate import metric_key
    from shiprisk.training.train import EXPERIMENT, NOTE_TAG

    registry.ensure_experiment(EXPERIMENT)
    verdict = "accepted" if decision.accepted else "refused"
    with mlflow.start_run(run_name=f"promote-v{decision.challenger}"):
        mlflow.set_tags(
            {
                NOTE_TAG: f"Promotion gate for version {decision.challenger} (champion before: "
                f"{decision.champion_before or 'none'}): {verdict}.\n\n"
                + "\n".join(f"- {r}" for r in decision.reasons),
                "gate": "passed" if decision.accepted else "failed",
                "challenger_version": str(decision.challenger),
            }
        )
        for role, losses in decision.log_loss.items():
            mlflow.log_metrics(
                {metric_key(o, "log_loss", role): float(v) for o, v in losses.items()}
            )
