"""Model quality on fresh held-out draws: share of reachable gain, log loss vs Bayes, ECE.

The champion (trained like the main job: settings.default_rows rows, seed 7) and the
logistic baseline (fitted exactly as ``train.fit_baseline`` fits it: same features, same
training slice, same C grid) score
200 000 fresh rows of the default world (another seed) and of the shifted world. The
simulator knows each row's true probabilities, so for each outcome:

* gain captured = (LL_prior - LL_model) / (LL_prior - LL_Bayes), LL_prior = log loss of the
  TRAINING base rate (the best a featureless model could know);
* log-loss ratio to Bayes = LL_model / LL_Bayes;
* ECE / base rate (equal-mass bins).

Targets (default world): gain >= 0.90 and ECE / base rate <= 0.1 for both outcomes.
The shifted world is reported without a target.
"""

from __future__ import annotations

import common

ROWS = 200_000
GAIN_TARGET = 0.90
ECE_TARGET = 0.10


def fit_baselines(model, seed: int = 0) -> dict:
    """LogisticBaseline per outcome, fitted exactly as train.fit_baseline does."""
    from shiprisk.models.risk_model import OUTCOME_LABEL, OUTCOMES
    from shiprisk.training.baseline import LogisticBaseline
    from shiprisk.training.config import load_config
    from shiprisk.training.train import load_training_frame, time_split

    config = load_config()
    frame, _ = load_training_frame(common.training_dataset())
    splits = time_split(frame, config)
    train = splits.train
    if len(train) > config.baseline.max_rows:
        train = train.sample(config.baseline.max_rows, random_state=seed)
    featurizer = model.featurizer
    X, X_val = featurizer.transform(train), featurizer.transform(splits.calibration)
    out = {}
    for outcome in OUTCOMES:
        label = OUTCOME_LABEL[outcome]
        out[outcome] = LogisticBaseline(Cs=tuple(config.baseline.Cs)).fit(
            X,
            (train["outcome"] == label).to_numpy().astype(int),
            featurizer.categorical_features_,
            X_val,
            (splits.calibration["outcome"] == label).to_numpy().astype(int),
        )
    return {"baselines": out, "test_from": splits.test["created_at"].min()}


def by_channel(frame, p_loss, p_reject, b_loss) -> dict:
    """Mean predicted / mean true probability per historical channel (the loss-head bias)."""
    import pandas as pd

    df = pd.DataFrame(
        {
            "channel": frame["channel_id"].astype(str).to_numpy(),
            "p_loss": p_loss,
            "baseline_p_loss": b_loss,
            "true_p_loss": frame["true_p_loss"].to_numpy(),
            "p_reject": p_reject,
            "true_p_reject": frame["true_p_reject"].to_numpy(),
        }
    )
    g = df.groupby("channel").mean()
    out = pd.DataFrame(
        {
            "rows": df.groupby("channel").size(),
            "true_p_loss": g["true_p_loss"],
            "model/true p_loss": g["p_loss"] / g["true_p_loss"],
            "baseline/true p_loss": g["baseline_p_loss"] / g["true_p_loss"],
            "model/true p_reject": g["p_reject"] / g["true_p_reject"],
        }
    ).sort_values("true_p_loss", ascending=False)
    return {"table": out.round(4).to_string(), "records": out.reset_index().to_dict("records")}


def main() -> None:
    import pandas as pd

    common.configure_env()
    from shiprisk.data.outcomes import EVENT_KEYS, EVENTS
    from shiprisk.models.risk_model import RiskModel
    from shiprisk.training.evaluate import evaluate_frame

    report = common.Report("model_quality", "Model quality on fresh held-out rows")
    champion = common.ensure_champion()
    model = RiskModel.load(champion.model_dir)
    priors = common.training_priors()
    common.log("fitting the logistic baseline as train.fit_baseline does")
    fitted = fit_baselines(model)
    baselines, test_from = fitted["baselines"], fitted["test_from"]
    report.details.update(
        champion_version=champion.version,
        training_priors=priors,
        rows_per_world=ROWS,
        test_window_from=str(test_from),
    )

    results: dict = {}
    for world in ("default", "shifted"):
        seed = common.FRESH_SEEDS["quality" if world == "default" else "shifted"]
        frame = common.load_frame(ROWS, seed, world)
        common.log(f"scoring {len(frame):,} fresh rows of the {world} world (seed {seed})")
        X = model.featurizer.transform(frame)
        p_loss, p_reject = model.predict_matrix(X).values()
        b_loss = baselines["loss"].predict_proba(X)
        b_reject = baselines["reject"].predict_proba(X)
        per_world = {
            "model": evaluate_frame(frame, {"loss": p_loss, "reject": p_reject}, priors=priors),
            "baseline": evaluate_frame(frame, {"loss": b_loss, "reject": b_reject}, priors=priors),
            "seed": seed,
            "rows": len(frame),
            "period": [str(frame["created_at"].min())[:10], str(frame["created_at"].max())[:10]],
        }
        if world == "default":
            per_world["by_channel"] = by_channel(frame, p_loss, p_reject, b_loss)
        if world == "default":  # the newest slice: rows after the training data ended
            late = (pd.to_datetime(frame["created_at"], utc=True) >= test_from).to_numpy()
            per_world["test_window"] = {
                "rows": int(late.sum()),
                "model": evaluate_frame(
                    frame[late], {"loss": p_loss[late], "reject": p_reject[late]}, priors=priors
                ),
            }
        results[world] = per_world
    report.details["metrics"] = results

    labels = {o.key: o.probability for o in EVENTS}
    for world in ("default", "shifted"):
        print(
            f"\n{world} world ({results[world]['rows']:,} fresh rows, seed "
            f"{results[world]['seed']}):"
        )
        target = world == "default"
        for who in ("model", "baseline"):
            for outcome in EVENT_KEYS:
                m = results[world][who][outcome]
                tag = f"{world}.{who}.{outcome}"
                name = f"{world}: {who} {labels[outcome]}"
                report.figure(
                    f"{tag}.gain",
                    f"{name}: gain captured",
                    m["gain_captured"],
                    target=GAIN_TARGET if target and who == "model" else None,
                    op=">=",
                    fmt="{:.3f}",
                )
                report.figure(
                    f"{tag}.ll_ratio",
                    f"{name}: log loss / Bayes log loss",
                    m["ll_ratio_to_bayes"],
                    fmt="{:.4f}",
                )
                report.figure(
                    f"{tag}.ece_rel",
                    f"{name}: ECE / base rate",
                    m["ece_over_base_rate"],
                    target=ECE_TARGET if target and who == "model" else None,
                    fmt="{:.3f}",
                )
        if world == "default":
            late = results[world]["test_window"]
            for outcome in EVENT_KEYS:
                report.figure(
                    f"default.model.{outcome}.gain_test_window",
                    f"default: model {labels[outcome]}: gain captured, rows >= test window "
                    f"({late['rows']:,})",
                    late["model"][outcome]["gain_captured"],
                    fmt="{:.3f}",
                )
                report.figure(
                    f"default.model.{outcome}.ece_rel_test_window",
                    f"default: model {labels[outcome]}: ECE / base rate, rows >= test window",
                    late["model"][outcome]["ece_over_base_rate"],
                    fmt="{:.3f}",
                )
    report.notes.append(
        "LL_prior uses the base rate of the champion's training slice "
        f"(loss {priors['loss']:.5f}, reject {priors['reject']:.5f}); the fresh rows span the "
        f"whole simulated period ({' to '.join(results['default']['period'])}), the 'test "
        "window' lines keep only rows "
        "created after the training and calibration slices (the shifted world is later still)."
    )
    if report.missed():
        trees = model.info.get("trees", model.info.get("best_iteration", {}))
        report.profiles["per-channel bias of the probabilities, default world"] = (
            f"trees per head: {trees} (early stopping: {model.info.get('best_iteration')})\n"
            + results["default"]["by_channel"]["table"]
        )
        for name, text in report.profiles.items():
            print(f"\n{name} (a target was missed):\n{text}")
    report.write()


if __name__ == "__main__":
    main()
