"""Issue 14, item 3 in batch and online: without the weight or the sides a channel is priced
at its minimum chargeable weight (``price_estimated``), size eligibility is skipped with a
warning, and a recommendation made that way says it is less certain, in ``/score`` (the
in-process request path) and in every batch output (CSV, Parquet, SQL) alike."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from shiprisk.data.contract import SHIPMENT_FIELDS, example_request
from shiprisk.serving.batch_read import SqlTable
from shiprisk.serving.schemas import ScoreRequest

SIDES = ("length_cm", "width_cm", "height_cm")
SIZE_SKIPPED = "size eligibility (longest side, girth) not checked"
LESS_CERTAIN = "the recommendation is less certain"
ROWS = 48


@pytest.fixture(scope="module")
def open_rows(sim_frame: pd.DataFrame) -> pd.DataFrame:
    """Open shipments: a quarter complete, a quarter without weight, a quarter without the
    sides, a quarter without either (blank cells, as an export leaves them)."""
    rows = sim_frame.tail(ROWS).drop(columns=["outcome", "outcome_date"]).reset_index(drop=True)
    rows = rows.drop(columns=[c for c in rows.columns if c.startswith("true_")])
    part = np.arange(ROWS) % 4
    rows.loc[part % 2 == 1, "weight_kg"] = np.nan
    rows.loc[part >= 2, list(SIDES)] = np.nan
    return rows


def _request(row: pd.Series) -> ScoreRequest:
    body = {f: row[f] for f in SHIPMENT_FIELDS if f in row.index}
    body = {k: (None if pd.isna(v) else v) for k, v in body.items()}
    body["created_at"] = pd.Timestamp(row["created_at"]).isoformat()
    body["channel_id"] = row["channel_id"]
    return ScoreRequest.model_validate(body)


def _outputs(open_rows, champion_model, tmp_path) -> dict[str, pd.DataFrame]:
    from shiprisk.serving.batch import score_open

    source = tmp_path / "open.parquet"
    open_rows.to_parquet(source, index=False)
    db = tmp_path / "ops.db"
    targets = {
        "csv": tmp_path / "scores.csv",
        "parquet": tmp_path / "scores.parquet",
        "sql": SqlTable(f"sqlite:///{db}", "scores"),
    }
    for target in targets.values():
        summary = score_open(source, target, model=champion_model, workers=1, progress=False)
        assert summary.scored == ROWS and summary.errors == 0
    with sqlite3.connect(db) as conn:
        sql = pd.read_sql("SELECT * FROM scores ORDER BY row", conn)
    for name in ("price_estimated", "recommended_price_estimated"):  # SQLite: 0/1 integers
        sql[name] = sql[name].map({1: True, 0: False})
    return {
        "csv": pd.read_csv(targets["csv"], dtype={"warnings": str}),
        "parquet": pq.read_table(targets["parquet"]).to_pandas(),
        "sql": sql,
    }


def test_batch_price_estimated_and_warnings_equal_score(
    open_rows, champion_model, scorer, tmp_path
) -> None:
    outputs = _outputs(open_rows, champion_model, tmp_path)
    lacking = open_rows[["weight_kg", *SIDES]].isna().any(axis=1).to_numpy()
    seen_size, seen_less_certain = 0, 0
    for i, row in open_rows.iterrows():
        answer = scorer.score(_request(row))
        chosen = next(c for c in answer.channels if c.channel_id == row["channel_id"])
        rec = answer.recommendation
        recommended = (
            next(c for c in answer.channels if c.channel_id == rec.channel_id) if rec else None
        )
        for name, out in outputs.items():
            got = out.iloc[i]
            where = (name, row["shipment_id"])
            assert bool(got["price_estimated"]) is chosen.price_estimated, where
            assert bool(got["price_estimated"]) is bool(lacking[i]), where
            if recommended is None:
                assert pd.isna(got["recommended_price_estimated"]), where
            else:
                assert bool(got["recommended_price_estimated"]) is recommended.price_estimated
            warnings = json.loads(got["warnings"]) if isinstance(got["warnings"], str) else []
            assert warnings == answer.warnings, where
        text = " ".join(answer.warnings)
        if pd.isna(row["length_cm"]):
            assert SIZE_SKIPPED in text
            seen_size += 1
        else:
            assert SIZE_SKIPPED not in text
        if lacking[i] and rec is not None:
            assert LESS_CERTAIN in text
            seen_less_certain += 1
        elif not lacking[i]:
            assert LESS_CERTAIN not in text
    assert seen_size == ROWS // 2 and seen_less_certain > ROWS // 2


def test_size_limits_are_skipped_without_the_sides(scorer) -> None:
    """A parcel too long for some channels: refused there with its sides; without them those
    channels are eligible again, and the answer says size was not checked and the
    recommendation is less certain."""
    long_parcel = {**example_request(), "length_cm": 130.0, "channel_id": "epacket"}
    sized = scorer.score(ScoreRequest.model_validate(long_parcel))
    too_long = {c.channel_id for c in sized.channels if not c.eligible}
    assert too_long and all(
        any("length" in r or "girth" in r for r in c.ineligible_reasons)
        for c in sized.channels
        if c.channel_id in too_long
    )
    assert not any(SIZE_SKIPPED in w for w in sized.warnings)
    unsized = scorer.score(ScoreRequest.model_validate({**long_parcel, **dict.fromkeys(SIDES)}))
    eligible = {c.channel_id for c in unsized.channels if c.eligible}
    assert too_long <= eligible
    assert unsized.recommendation is not None
    assert any(SIZE_SKIPPED in w for w in unsized.warnings)
    assert any(w.startswith(LESS_CERTAIN) for w in unsized.warnings)
    assert all(c.price_estimated for c in unsized.channels if c.price_usd is not None)
