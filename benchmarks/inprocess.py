"""In-process scoring of one shipment over all its eligible channels (no HTTP).

``Scorer.score(request, with_reasons=False)``: candidates, features, both LightGBM heads
(one thread), policy and the response model. Target p50 <= 300 µs. The reasons for the
recommended channel (``Scorer.explain``: occlusion against the typical shipment, one
predict call per head) are timed separately, target p50 <= 300 µs. The stages are timed
one by one so the time can be placed: candidates_for_shipment, encode_channels,
predict_matrix, decide, the seller actions (``measured_actions``: each applicable order
change re-scored on the recommended channel, one scoring-path call), plus request
validation and response JSON (which the HTTP path adds).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import common

SHIPMENTS = 200
REPEAT = 4000
SCORE_TARGET_US = 300.0
EXPLAIN_TARGET_US = 300.0


def time_each(
    fn: Callable[[Any], Any], items: Sequence[Any], repeat: int = REPEAT, warmup: int = 200
) -> dict[str, float]:
    """Per-call µs of ``fn(item)``, cycling through ``items``."""
    import numpy as np

    for i in range(warmup):
        fn(items[i % len(items)])
    samples = np.empty(repeat)
    cpu = np.empty(repeat)
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for i in range(repeat):
        item = items[i % len(items)]
        c0 = cpu_clock()
        t0 = clock()
        fn(item)
        samples[i] = clock() - t0
        cpu[i] = cpu_clock() - c0
    us = samples / 1e3
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return {
        "cpu_p50_us": float(np.percentile(cpu / 1e3, 50)),
        "n": repeat,
        "p50_us": float(p50),
        "p90_us": float(p90),
        "p99_us": float(p99),
        "mean_us": float(us.mean()),
        "min_us": float(us.min()),
    }


def main() -> None:
    import numpy as np

    common.configure_env()
    from shiprisk.data.contract import SHIPMENT_FIELDS
    from shiprisk.decisions.action_savings import measured_actions, recommended_shipments
    from shiprisk.decisions.candidates import candidate_carriers, candidates_for_shipment
    from shiprisk.decisions.policy import decide
    from shiprisk.decisions.scoring import score
    from shiprisk.serving.explain import factor_contributions
    from shiprisk.serving.schemas import ModelRef, ScoreRequest
    from shiprisk.serving.scorer import Scorer

    report = common.Report("inprocess", "In-process scoring of one shipment (no HTTP)")
    champion = common.ensure_champion()
    scorer = Scorer.from_directory(
        champion.model_dir, ModelRef(name="bench", version=champion.version, digest="-")
    )
    bodies = common.shipment_requests(SHIPMENTS)
    requests = [ScoreRequest.model_validate(b) for b in bodies]
    costs = scorer.costs
    catalog = scorer.catalog
    model = scorer.model

    # Per-shipment stage inputs, prepared once (each stage is timed on its own).
    prepared = []
    for req in requests:
        record = {f: getattr(req, f) for f in SHIPMENT_FIELDS}
        table, ids = candidates_for_shipment(catalog, record, costs)
        X = model.featurizer.encode_channels(record, ids)
        pl, pj = model.predict_matrix(X, num_threads=1).values()
        d = decide(
            table,
            {"loss": pl[None, :], "reject": pj[None, :]},
            costs,
            None,
            candidate_carriers(catalog, table.channel_index),
        )
        rec = int(d.recommended[0])
        shipments = recommended_shipments(
            score(model, catalog, [record], costs, chosen=[req.channel_id]),
            [record],
            chosen=[req.channel_id],
        )
        prepared.append(
            {
                "req": req,
                "record": record,
                "table": table,
                "ids": ids,
                "X": X,
                "pl": pl,
                "pj": pj,
                "rec": rec,
                "recommended": list(shipments.values()),
            }
        )
    channels = np.array([len(p["ids"]) for p in prepared])
    common.log(f"{len(prepared)} shipments, {channels.mean():.1f} eligible channels on average")

    timings = {
        "score": time_each(lambda p: scorer.score(p["req"], with_reasons=False), prepared),
        "explain": time_each(
            lambda p: scorer.explain(p["record"], p["ids"][p["rec"]], p["X"][p["rec"]]), prepared
        ),
        "score_with_reasons": time_each(lambda p: scorer.score(p["req"]), prepared),
        "candidates_for_shipment": time_each(
            lambda p: candidates_for_shipment(catalog, p["record"], costs), prepared
        ),
        "encode_channels": time_each(
            lambda p: model.featurizer.encode_channels(p["record"], p["ids"]), prepared
        ),
        "predict_matrix": time_each(
            lambda p: model.predict_matrix(p["X"], num_threads=1), prepared
        ),
        "decide": time_each(
            lambda p: decide(
                p["table"],
                {"loss": p["pl"][None, :], "reject": p["pj"][None, :]},
                costs,
                None,
                candidate_carriers(catalog, p["table"].channel_index),
            ),
            prepared,
        ),
        "actions": time_each(
            lambda p: measured_actions(model, catalog, p["recommended"], costs), prepared
        ),
        "request_validation": time_each(lambda b: ScoreRequest.model_validate(b), bodies),
    }
    timings["explain_factor_contributions"] = time_each(
        lambda p: factor_contributions(model, p["X"][p["rec"]]), prepared
    )
    responses = [scorer.score(p["req"]) for p in prepared]
    timings["response_json"] = time_each(lambda r: r.model_dump_json(), responses)
    report.details.update(
        champion_version=champion.version,
        shipments=len(prepared),
        mean_channels=float(channels.mean()),
        timings_us=timings,
        trees={o: b.num_trees() for o, b in model.boosters.items()},
    )
    print(
        f"\none shipment x {channels.mean():.1f} eligible channels on average "
        f"({len(prepared)} held-out shipments, {REPEAT} calls each):"
    )
    met = report.figure(
        "score_p50_us",
        "Scorer.score(with_reasons=False) p50",
        timings["score"]["p50_us"],
        "µs",
        target=SCORE_TARGET_US,
        fmt="{:,.0f}",
    )
    report.figure(
        "score_p99_us",
        "Scorer.score(with_reasons=False) p99",
        timings["score"]["p99_us"],
        "µs",
        fmt="{:,.0f}",
    )
    met_explain = report.figure(
        "explain_p50_us",
        "Scorer.explain (recommended channel) p50",
        timings["explain"]["p50_us"],
        "µs",
        target=EXPLAIN_TARGET_US,
        fmt="{:,.0f}",
    )
    report.figure(
        "explain_p99_us", "Scorer.explain p99", timings["explain"]["p99_us"], "µs", fmt="{:,.0f}"
    )
    for key in ("score", "explain"):
        report.figure(
            f"{key}_cpu_p50_us",
            f"{'Scorer.score(with_reasons=False)' if key == 'score' else 'Scorer.explain'} "
            "thread CPU time p50",
            timings[key]["cpu_p50_us"],
            "µs",
            fmt="{:,.0f}",
        )
        report.figure(
            f"{key}_min_us",
            f"{'Scorer.score(with_reasons=False)' if key == 'score' else 'Scorer.explain'} "
            "fastest call (~ idle machine)",
            timings[key]["min_us"],
            "µs",
            fmt="{:,.0f}",
        )
    report.figure(
        "score_with_reasons_p50_us",
        "Scorer.score (with reasons) p50",
        timings["score_with_reasons"]["p50_us"],
        "µs",
        fmt="{:,.0f}",
    )
    for stage in (
        "candidates_for_shipment",
        "encode_channels",
        "predict_matrix",
        "decide",
        "actions",
        "request_validation",
        "response_json",
        "explain_factor_contributions",
    ):
        for stat in ("p50", "min"):
            report.figure(
                f"stage.{stage}_{stat}_us",
                f"  stage {stage} {stat}",
                timings[stage][f"{stat}_us"],
                "µs",
                fmt="{:,.0f}",
            )
    if met is False:
        report.profiles["score"] = common.profile_top(
            lambda: [scorer.score(p["req"], with_reasons=False) for p in prepared[:10]],
            calls=50,
            top=30,
            sort="cumulative",
        )
    if met_explain is False:
        report.profiles["explain"] = common.profile_top(
            lambda: [
                scorer.explain(p["record"], p["ids"][p["rec"]], p["X"][p["rec"]])
                for p in prepared[:10]
            ],
            calls=50,
        )
    for name, text in report.profiles.items():
        print(f"\nprofile of {name} (target missed):\n{text}")
    report.write()


if __name__ == "__main__":
    main()
