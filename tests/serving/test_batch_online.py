"""Batch = online: `shiprisk score-open` over examples/open_shipments.csv (plus an unknown
country and an unknown channel) carries the same warnings /score gives for the same rows,
answers reasons and actions like /score when asked, and ends with a run summary.

The reference is the session's real BentoML server, serving the same champion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.data.contract import SHIPMENT_FIELDS, SPECS
from shiprisk.serving.batch_chunks import EXPLAIN_COLUMNS, MONEY_COLUMNS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "open_shipments.csv"


@pytest.fixture(scope="module")
def open_file(tmp_path_factory) -> Path:
    """The example file plus one row to an unknown country, one on an unknown channel and a
    33 USD parcel on express (its own channel costs far more than the recommendation)."""
    frame = pd.read_csv(EXAMPLE, dtype=str, keep_default_na=False)
    country = frame.iloc[0].copy()
    country[["shipment_id", "order_id", "destination_country"]] = ["SH-X1", "SO-X1", "ZZ"]
    channel = frame.iloc[1].copy()
    channel[["shipment_id", "order_id", "channel_id"]] = ["SH-X2", "SO-X2", "pigeon_post"]
    express = frame.iloc[0].copy()
    express[["shipment_id", "order_id", "channel_id"]] = ["SH-X3", "SO-X3", "dhl_express"]
    path = tmp_path_factory.mktemp("online") / "open.csv"
    pd.concat([frame, pd.DataFrame([country, channel, express])]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(server) -> Path:
    """The very model the session server serves (its BentoML store copy)."""
    from shiprisk.serving.model_store import _bentoml

    return Path(_bentoml().models.get(server.tag).path)


def _request(row: pd.Series) -> dict:
    """A /score body from a CSV row (text cells typed by the contract)."""
    body: dict = {}
    for name in (*SHIPMENT_FIELDS, "channel_id"):
        value, kind = row[name], SPECS[name].kind
        if kind == "bool":
            body[name] = value == "true"
        elif kind == "int":
            body[name] = int(value)
        elif kind == "float":
            body[name] = float(value)
        else:
            body[name] = value
    return body


def _score_open(model_dir: Path, args: list[str]) -> str:
    common = ["score-open", "--model-dir", str(model_dir), "--workers", "1", "--no-progress"]
    result = CliRunner().invoke(app, [*common, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_batch_warnings_equal_online_and_the_run_ends_with_a_summary(
    api, open_file, model_dir, tmp_path
):
    out = tmp_path / "scores.csv"
    output = _score_open(model_dir, ["--input", str(open_file), "--output", str(out)])
    lines = [line for line in output.strip().splitlines() if line.strip()]
    summary = next(i for i, line in enumerate(lines) if line.startswith("summary: "))
    assert lines[summary].startswith(f"summary: {len(pd.read_csv(open_file)):,} rows, ")
    warned_said = int(lines[summary].split(" with warnings")[0].rsplit(", ", 1)[1])
    assert lines[summary + 1].startswith("  recommendation: keep the chosen channel ")
    assert lines[summary + 2].startswith("  expected saving if every recommendation is followed")
    assert len(lines) - summary <= 5  # the summary is the end of the output

    source = pd.read_csv(open_file, dtype=str, keep_default_na=False)
    scores = pd.read_csv(out, dtype={"warnings": str})
    assert (scores["status"] == "scored").all()
    assert scores["order_id"].tolist() == source["order_id"].tolist()
    assert scores["destination_country"].tolist() == source["destination_country"].tolist()
    warned = 0
    for (_, row), (_, scored) in zip(source.iterrows(), scores.iterrows(), strict=True):
        answer = api.post("/score", json=_request(row))
        assert answer.status_code == 200, answer.text
        online = answer.json()
        batch = json.loads(scored["warnings"]) if isinstance(scored["warnings"], str) else []
        assert batch == online["warnings"], row["shipment_id"]
        warned += bool(batch)
        rec = online["recommendation"]
        assert scored["recommended_channel_id"] == (rec["channel_id"] if rec else None)
        assert scored["verdict"] == online["verdict"], row["shipment_id"]
        if rec is not None:  # the same profit, to the cent
            assert scored["recommended_expected_profit_usd"] == rec["expected_profit_usd"]
    assert warned >= 2 and warned == warned_said  # the summary counts what the rows carry
    unknown = scores.set_index("shipment_id")
    assert "ZZ is not in the destination catalog" in unknown.loc["SH-X1", "warnings"]
    assert "pigeon_post is not in the channel catalog" in unknown.loc["SH-X2", "warnings"]
    assert "not in the channel catalog" in unknown.loc["SH-X2", "no_saving_reason"]


def test_explain_adds_reasons_and_actions_like_score(api, open_file, model_dir, tmp_path):
    out = tmp_path / "scores.parquet"
    _score_open(model_dir, ["--input", str(open_file), "--output", str(out), "--explain"])
    table = pq.read_table(out)
    assert table.schema.names[-len(EXPLAIN_COLUMNS) :] == list(EXPLAIN_COLUMNS)
    scores = table.to_pandas()
    for column in MONEY_COLUMNS:  # Parquet keeps cents too
        values = scores[column].dropna().to_numpy()
        assert np.abs(values * 100 - np.round(values * 100)).max() < 1e-6, column
    source = pd.read_csv(open_file, dtype=str, keep_default_na=False)
    for i in (0, 5, len(source) - 1):
        online = api.post("/score", json=_request(source.iloc[i])).json()
        reasons = json.loads(scores.loc[i, "reasons"])
        assert [r["factor"] for r in reasons] == [r["factor"] for r in online["reasons"]]
        assert [r["text"] for r in reasons] == [r["text"] for r in online["reasons"]]
    # Every row's actions, measured savings included, equal /score's to the cent.
    shown = []
    for i in range(len(source)):
        online = api.post("/score", json=_request(source.iloc[i])).json()
        batch = json.loads(scores.loc[i, "actions"])
        assert batch == online["actions"], source.loc[i, "shipment_id"]
        shown += batch
    assert all(
        a["saving_usd"] > 0.5 and a["saving_usd"] == round(a["saving_usd"], 2) for a in shown
    )
    express = json.loads(scores.set_index("shipment_id").loc["SH-X3", "actions"])
    switch = [a for a in express if a["code"] == "switch_channel"]
    assert len(switch) == 1 and "instead of DHL Express" in switch[0]["text"]


def test_history_rows_are_scored_with_a_warning(open_file, model_dir, tmp_path):
    history = pd.read_csv(open_file, dtype=str, keep_default_na=False)
    history["outcome"] = "delivered"
    source = tmp_path / "history.csv"
    history.to_csv(source, index=False)
    output = _score_open(model_dir, ["--input", str(source), "--output", str(tmp_path / "s.csv")])
    assert "the input has outcome column(s): these look like delivered history rows" in output
    assert len(pd.read_csv(tmp_path / "s.csv")) == len(history)
