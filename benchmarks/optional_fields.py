"""Optional fields (issue 14, acceptance 2): what a missing field costs, against the truth.

Three exports of the same simulated world train three models, as ``shiprisk train`` does
(time split, optional fields masked at random in the training and calibration slices,
``configs/train.yaml``):

* full: every contract field;
* typical: no weight, sides, packaging, address quality or buyer history (what a typical
  order export lacks);
* minimal: the core only (destination, channel, value + currency, date; ids and outcome).

Each scores fresh rows of the same world (another seed) that carry the fields its export has.
For each outcome: the share of the reachable gain, (LL_prior - LL_model) / (LL_prior -
LL_Bayes), LL_prior the training base rate's and LL_Bayes the simulator's true probabilities'
(with every field), with a 95 % bootstrap interval (rows resampled). Then the full model
scores the fresh rows with each optional field (group) missing: its calibration, ECE / base
rate (equal-mass bins), target <= 0.1 for each.
"""

from __future__ import annotations

import common
import numpy as np

from shiprisk.data.contract import TYPICAL_EXPORT_MISSING

TRAIN_ROWS = 300_000  # the main job's size (settings.default_rows)
TRAIN_SEED = 7
FRESH_ROWS = 200_000
FRESH_SEED = 90_008
BOOTSTRAP = 300
ECE_TARGET = 0.10
TYPICAL_DROPPED = TYPICAL_EXPORT_MISSING


def exports() -> dict[str, tuple[str, ...]]:
    """Export name -> the fields it lacks."""
    from shiprisk.data.contract import OPTIONAL_FIELDS

    return {"full": (), "typical": TYPICAL_DROPPED, "minimal": tuple(OPTIONAL_FIELDS)}


def row_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def gain_interval(y, p, p_true, prior, seed: int = 0) -> tuple[float, float, float]:
    """Share of reachable gain and its 95 % bootstrap interval (rows resampled)."""
    model, bayes = row_losses(y, p), row_losses(y, p_true)
    base = row_losses(y, np.full_like(p, prior))
    rng = np.random.default_rng(seed)
    shares = np.empty(BOOTSTRAP)
    for b in range(BOOTSTRAP):  # one resample at a time: (B, n) indices would be 0.5 GB
        i = rng.integers(0, len(y), size=len(y))
        shares[b] = (base[i].mean() - model[i].mean()) / (base[i].mean() - bayes[i].mean())
    point = (base.mean() - model.mean()) / (base.mean() - bayes.mean())
    low, high = np.percentile(shares, [2.5, 97.5])
    return float(point), float(low), float(high)


def main() -> None:
    common.configure_env()
    from shiprisk.data.outcomes import EVENT_KEYS
    from shiprisk.features.masking import mask_groups, used_fields
    from shiprisk.models.risk_model import OUTCOME_LABEL
    from shiprisk.training.config import load_config
    from shiprisk.training.evaluate import outcome_labels, outcome_metrics, outcome_truth
    from shiprisk.training.train import fit_risk_model, time_split

    report = common.Report("optional_fields", "Optional fields: gain and calibration")
    config = load_config()
    world = common.load_frame(TRAIN_ROWS, TRAIN_SEED)
    fresh = common.load_frame(FRESH_ROWS, FRESH_SEED)
    labels, truth = outcome_labels(fresh), outcome_truth(fresh)
    details: dict = {"train_rows": TRAIN_ROWS, "fresh_rows": FRESH_ROWS, "exports": {}}
    full_model = None
    for name, dropped in exports().items():
        frame = world.drop(columns=list(dropped))
        splits = time_split(frame, config)
        priors = {
            o: float((splits.train["outcome"] == OUTCOME_LABEL[o]).mean()) for o in EVENT_KEYS
        }
        common.log(f"training the {name} export's model ({len(dropped)} fields absent)")
        model = fit_risk_model(splits, config)
        probs = model.predict_frame(fresh.drop(columns=list(dropped)))
        details["exports"][name] = {"absent": list(dropped), "fields": model.featurizer.fields_}
        for o in EVENT_KEYS:
            point, low, high = gain_interval(
                labels[o], probs[f"p_{o}"].to_numpy(), truth[o], priors[o]
            )
            details["exports"][name][o] = {"gain": point, "low": low, "high": high}
            report.figure(f"{name}.{o}.gain", f"{name} export, p_{o}: share of reachable gain",
                          point, fmt="{:.3f}")  # fmt: skip
            report.figure(f"{name}.{o}.gain_low", "  95 % interval, low", low, fmt="{:.3f}")
            report.figure(f"{name}.{o}.gain_high", "  95 % interval, high", high, fmt="{:.3f}")
        if name == "full":
            full_model, full_priors = model, priors
    assert full_model is not None
    calibration = {}
    for group in [(), *mask_groups(used_fields(world))]:
        rows = fresh.drop(columns=list(group))
        probs = full_model.predict_frame(rows)
        key = "+".join(group) or "none"
        calibration[key] = {}
        for o in EVENT_KEYS:
            m = outcome_metrics(labels[o], probs[f"p_{o}"].to_numpy(), prior=full_priors[o],
                                p_true=truth[o])  # fmt: skip
            calibration[key][o] = {k: m[k] for k in ("ece_over_base_rate", "gain_captured")}
            report.figure(f"missing.{key}.{o}.ece", f"full model, {key} missing: p_{o} ECE/base",
                          m["ece_over_base_rate"], target=ECE_TARGET, fmt="{:.3f}")  # fmt: skip
    details["calibration_full_model"] = calibration
    report.details.update(details)
    report.write()


if __name__ == "__main__":
    main()
