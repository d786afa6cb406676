"""Stated support: an answer resting on few comparable training shipments says so, in the
in-process scorer, over HTTP (the real session server) and in the batch output.

The session model learns from 35k shipments, not the main job's 210k: with the service's
default thresholds (500 shipments, 50 events per cell) nearly every cell is uncertain there,
so the tests that need both kinds of cell use thresholds scaled to that size."""

from __future__ import annotations

import pandas as pd
import pytest

from shiprisk.data.catalogs import load_catalog
from shiprisk.data.contract import OPEN_FIELDS, example_request
from shiprisk.serving.batch import score_open
from shiprisk.serving.schemas import ScoreRequest
from shiprisk.serving.scorer import Scorer
from shiprisk.settings import get_settings

VALUE = 12.0  # the "<25" band: cheap parcels, common on postal lines, rare on express
CI_MIN, CI_MIN_EVENTS = 500, 10  # the defaults scaled to the session model's data


@pytest.fixture(scope="module")
def ci_scorer(scorer) -> Scorer:
    return Scorer(scorer.model, scorer.ref, scorer.catalog, scorer.costs, CI_MIN, CI_MIN_EVENTS)


def _body(**changes) -> dict:
    return {**example_request(), "declared_value": VALUE, "currency": "USD", **changes}


def _counts(model, body: dict, table: dict | None = None) -> dict[str, int]:
    """Each channel's count, read straight from the model's stored cells."""
    tier = next(
        d.risk_tier for d in load_catalog().destinations if d.country == body["destination_country"]
    )
    return {
        cid: (model.support if table is None else table).get(f"{cid}|<25|tier{tier}", 0)
        for cid in load_catalog().channel_ids
    }


def test_rare_cells_are_flagged_and_common_ones_are_not(ci_scorer, champion_model) -> None:
    body = _body()
    answer = ci_scorer.score(ScoreRequest.model_validate(body))
    counts = _counts(champion_model, body)
    events = {
        cid: min(n, _counts(champion_model, body, champion_model.support_events["reject"])[cid])
        for cid, n in _counts(champion_model, body, champion_model.support_events["loss"]).items()
    }
    for c in answer.channels:
        assert (c.support, c.support_events) == (counts[c.channel_id], events[c.channel_id])
        rare = counts[c.channel_id] < CI_MIN or events[c.channel_id] < CI_MIN_EVENTS
        assert c.uncertain == rare
    flags = {c.uncertain for c in answer.channels}
    assert flags == {True, False}, [(c.channel_id, c.support) for c in answer.channels]
    rec = answer.recommendation
    best = next(c for c in answer.channels if c.channel_id == rec.channel_id)
    assert (rec.support, rec.uncertain) == (best.support, best.uncertain)


def test_a_recommendation_on_an_uncertain_estimate_says_so(ci_scorer) -> None:
    answer = ci_scorer.score(ScoreRequest.model_validate(_body()))
    rare = min(answer.channels, key=lambda c: c.support)
    common = max((c for c in answer.channels if not c.uncertain), key=lambda c: c.support)
    assert rare.uncertain

    only_rare = _body(candidates=[{"channel_id": rare.channel_id}])
    on_rare = ci_scorer.score(ScoreRequest.model_validate(only_rare))
    assert on_rare.recommendation.channel_id == rare.channel_id
    assert on_rare.recommendation.uncertain and on_rare.recommendation.support == rare.support
    warning = [w for w in on_rare.warnings if "uncertain estimate" in w]
    assert len(warning) == 1 and f"only {rare.support} training shipments" in warning[0]

    only_common = _body(candidates=[{"channel_id": common.channel_id}])
    on_common = ci_scorer.score(ScoreRequest.model_validate(only_common))
    assert not on_common.recommendation.uncertain
    assert not [w for w in on_common.warnings if "uncertain estimate" in w]


def test_the_server_states_support_like_the_scorer(api, scorer) -> None:
    body = _body()
    answer = api.post("/score", json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    local = scorer.score(ScoreRequest.model_validate(body))
    assert [(c["channel_id"], c["support"], c["uncertain"]) for c in data["channels"]] == [
        (c.channel_id, c.support, c.uncertain) for c in local.channels
    ]
    assert any(c["uncertain"] for c in data["channels"])
    rec = data["recommendation"]
    assert (rec["support"], rec["uncertain"]) == (
        local.recommendation.support,
        local.recommendation.uncertain,
    )


def test_batch_rows_carry_support_of_the_chosen_and_recommended_channel(
    sim_frame, champion_model, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("SHIPRISK_SUPPORT_MIN_EVENTS", str(CI_MIN_EVENTS))
    get_settings.cache_clear()
    frame = sim_frame.loc[:, list(OPEN_FIELDS)].head(300).reset_index(drop=True)
    frame.to_parquet(tmp_path / "open.parquet", index=False)
    model_dir = champion_model.save(tmp_path / "model")
    score_open(
        tmp_path / "open.parquet",
        tmp_path / "out.parquet",
        model=model_dir,
        workers=1,
        progress=False,
    )
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert (out["status"] == "scored").all()
    catalog = load_catalog()
    value = frame["declared_value"].to_numpy() * catalog.usd_rate(frame["currency"].to_numpy())
    countries = frame["destination_country"].tolist()
    get_settings.cache_clear()

    def expected(ids) -> tuple[list[int], list[bool]]:
        shipments = champion_model.support_of(ids, value, countries)[:, 0]
        events = champion_model.support_events_of(ids, value, countries)[:, 0]
        return shipments.tolist(), ((shipments < CI_MIN) | (events < CI_MIN_EVENTS)).tolist()

    chosen, chosen_flag = expected(frame[["channel_id"]].to_numpy())
    assert out["support"].tolist() == chosen
    assert out["uncertain"].tolist() == chosen_flag
    rec, rec_flag = expected(out[["recommended_channel_id"]].to_numpy())
    assert out["recommended_support"].tolist() == rec
    assert out["recommended_uncertain"].tolist() == rec_flag
    assert out["uncertain"].any() and not out["uncertain"].all()
