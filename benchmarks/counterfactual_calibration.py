"""Calibration on counterfactual channels (issue 17, acceptance 1).

Trains the risk model exactly as ``shiprisk train`` does (same config, same time split) on a
simulated history of the main job's size drawn with a seed no test or other benchmark uses,
then scores FRESH shipments (another unused seed) on every eligible channel through the one
scoring path and compares, per channel x declared-value band, the mean predicted with the
mean TRUE probability (the simulator's physics prices every channel). Each cell carries the
training slice's event counts. Target: every cell with >= 50 training events of an outcome
has a ratio within [0.85, 1.15] for that outcome.

    uv run --frozen python benchmarks/counterfactual_calibration.py [--rows N] [--label after]
        [--config FILE]  # another training config, e.g. the parent's, for a before/after

Writes ``benchmarks/results/counterfactual_calibration_<label>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import time

import common

TRAIN_SEED = 90_101
FRESH_SEED = 90_102
FRESH_ROWS = 60_000
MIN_EVENTS = 50
LOW, HIGH = 0.85, 1.15
COLUMNS = (
    *("pairs", "shipments", "loss_events", "pred_loss", "true_loss", "ratio_loss"),
    *("reject_events", "pred_reject", "true_reject", "ratio_reject"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="training draw (main job's size)")
    parser.add_argument("--fresh", type=int, default=FRESH_ROWS)
    parser.add_argument("--label", default="current")
    parser.add_argument(
        "--threads", type=int, default=0, help="LightGBM threads (0: all cores; 1 on a busy box)"
    )
    parser.add_argument(
        "--config", default=None, help="training config (default: configs/train.yaml)"
    )
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), default=None)
    args = parser.parse_args()
    if args.compare:
        print(compare(*args.compare))
        return
    common.configure_env()
    from shiprisk.data.simulator import simulate
    from shiprisk.settings import get_settings
    from shiprisk.training.config import load_config
    from shiprisk.training.counterfactual import calibration_table, out_of_band
    from shiprisk.training.train import fit_risk_model, load_training_frame, time_split

    rows = args.rows or get_settings().default_rows
    started = time.time()
    common.log(f"simulating {rows} training rows (seed {TRAIN_SEED})")
    frame, _ = load_training_frame(simulate(rows, TRAIN_SEED))
    config = load_config(args.config)
    splits = time_split(frame, config)
    common.log("training")
    threads = {"num_threads": args.threads} if args.threads else {}
    lightgbm = {o: {**p, **threads} for o, p in config.lightgbm.items()}
    # The product's training path (masked slices, as `shiprisk train`): the table describes
    # the model the service scores with.
    model = fit_risk_model(splits, config.model_copy(update={"lightgbm": lightgbm}))
    model.save(common.RESULTS / f"counterfactual_model_{args.label}")
    common.log(f"scoring {args.fresh} fresh shipments (seed {FRESH_SEED}) on every channel")
    fresh = simulate(args.fresh, FRESH_SEED)
    overall = global_quality(model, splits.train, fresh)
    print(json.dumps(overall, indent=1))
    table = calibration_table(model, splits.train, fresh)
    bad = out_of_band(table, MIN_EVENTS, LOW, HIGH)
    shown = table[list(COLUMNS)].round(4)
    text = shown.to_string()
    print(text)
    print(f"\ncells with >= {MIN_EVENTS} events outside [{LOW}, {HIGH}]: {len(bad)}")
    for line in bad:
        print("  " + line)
    machine = common.machine_info()
    summary = {
        "label": args.label,
        "train_rows": rows,
        "train_slice_rows": len(splits.train),
        "train_seed": TRAIN_SEED,
        "fresh_rows": args.fresh,
        "fresh_seed": FRESH_SEED,
        "min_events": MIN_EVENTS,
        "band": [LOW, HIGH],
        "out_of_band": bad,
        "historical_channel": overall,
        "seconds": round(time.time() - started, 1),
        "machine": machine,
        "table": shown.reset_index().to_dict("records"),
    }
    out = common.RESULTS / f"counterfactual_calibration_{args.label}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1, default=str))
    md = shown.reset_index().to_markdown(index=False) if _has_tabulate() else text
    out.with_suffix(".md").write_text(md + "\n")
    common.log(f"done in {summary['seconds']} s; wrote {out}.json")


def global_quality(model, train, fresh) -> dict:
    """On the fresh shipments' own (historical) channel: log loss / Bayes log loss and the
    share of reachable gain, as ``benchmarks/model_quality.py`` reports them."""
    from shiprisk.models.risk_model import OUTCOME_LABEL, OUTCOMES
    from shiprisk.training.evaluate import evaluate_frame

    priors = {o: float((train["outcome"] == OUTCOME_LABEL[o]).mean()) for o in OUTCOMES}
    probs = model.predict_matrix(model.featurizer.transform(fresh))
    metrics = evaluate_frame(fresh, probs, priors=priors)
    return {o: {k: round(float(v), 5) for k, v in m.items()} for o, m in metrics.items()}


def compare(before: str, after: str) -> str:
    """Markdown: both runs' ratios per cell side by side, with the training events."""
    from shiprisk.data.outcomes import EVENT_KEYS

    runs = [
        json.loads((common.RESULTS / f"counterfactual_calibration_{x}.json").read_text())
        for x in (before, after)
    ]
    cells = [{(r["segment"], r["channel"], r["band"]): r for r in run["table"]} for run in runs]
    lines = [
        "| segment | channel | value band (USD) | fresh pairs | loss events | p_loss ratio "
        f"{before} | {after} | reject events | p_reject ratio {before} | {after} |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, b in cells[0].items():
        a = cells[1][key]
        marks = []
        for o in EVENT_KEYS:
            enough = a[f"{o}_events"] >= MIN_EVENTS
            for r in (b, a):
                ratio = r[f"ratio_{o}"]
                text = f"{ratio:.3f}"
                if enough and not LOW <= ratio <= HIGH:
                    text = f"**{text}**"
                marks.append(text)
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {a['pairs']:,} | {a['loss_events']} | "
            f"{marks[0]} | {marks[1]} | {a['reject_events']} | {marks[2]} | {marks[3]} |"
        )
    return "\n".join(lines)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
