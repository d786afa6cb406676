"""Nightly batch scoring: one output row per input row, same scores and policy as online,
all-or-nothing files and SQL tables (killed run, disk full, locked database), CLI.

Real Parquet/CSV files, a real SQLite file and the session's champion model; the only
injected fault is the disk-full error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.data.catalogs import load_catalog
from shiprisk.data.contract import OPEN_FIELDS
from shiprisk.data.validation import DUPLICATE_ID
from shiprisk.decisions.candidates import (
    candidates_for_shipment,
    shipment_arrays,
)
from shiprisk.decisions.costs import SellerCosts
from shiprisk.decisions.policy import decide
from shiprisk.serving import batch_write
from shiprisk.serving.batch import champion_model_dir, score_open
from shiprisk.serving.batch_chunks import MONEY_COLUMNS, OUTPUT_COLUMNS, OUTPUT_SCHEMA
from shiprisk.serving.batch_read import BatchError, SqlTable

N_ROWS = 2_400
CHUNK = 500
KILL_CHUNK = 200


def _open_shipments(sim_frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """Open shipments from the simulated history with known problems mixed in.

    Returns the frame and {0-based position: field expected in error_field}.
    """
    df = sim_frame.loc[:, list(OPEN_FIELDS)].head(N_ROWS).reset_index(drop=True).copy()
    ids = df["shipment_id"]
    df.loc[10, "weight_kg"] = -1.0
    df.loc[20, "currency"] = "XXX"
    df.loc[30, "channel_id"] = "no_such_channel"
    df.loc[40, "buyer_prior_refusals"] = df.loc[40, "buyer_prior_orders"] + 1
    df.loc[50, "shipment_id"] = "bad id!"
    df.loc[60, "created_at"] = pd.NaT
    df.loc[70, "shipment_id"] = ids[65]  # repeated within a chunk
    df.loc[80, ["weight_kg", "currency"]] = [-1.0, "XXX"]  # two problems: currency first
    df.loc[90, "weight_kg"] = -1.0
    df.loc[95, "shipment_id"] = ids[90]  # repeats an id whose first row is invalid
    df.loc[1_500, "shipment_id"] = ids[5]  # repeated across chunks
    df.loc[N_ROWS - 1, "declared_value"] = 0.0
    expected = {
        10: "weight_kg",
        20: "currency",
        40: "buyer_prior_refusals",
        50: "shipment_id",
        60: "created_at",
        70: "shipment_id",
        80: "currency",
        90: "weight_kg",
        95: "shipment_id",
        1_500: "shipment_id",
        N_ROWS - 1: "declared_value",
    }
    return df, expected


@pytest.fixture(scope="module")
def open_data(sim_frame) -> tuple[pd.DataFrame, dict[int, str]]:
    return _open_shipments(sim_frame)


@pytest.fixture(scope="module")
def files(open_data, tmp_path_factory) -> dict[str, Path]:
    frame, _ = open_data
    root = tmp_path_factory.mktemp("batch_input")
    paths = {"parquet": root / "open.parquet", "csv": root / "open.csv"}
    frame.to_parquet(paths["parquet"], index=False)
    frame.to_csv(paths["csv"], index=False)
    return paths


@pytest.fixture(scope="module")
def model_dir(champion_model, tmp_path_factory) -> Path:
    return champion_model.save(tmp_path_factory.mktemp("batch_model") / "model")


@pytest.fixture(scope="module")
def reference(files, model_dir, tmp_path_factory) -> Path:
    """A clean in-process run on the Parquet input: what every other run must reproduce."""
    out = tmp_path_factory.mktemp("batch_ref") / "scores.parquet"
    score_open(files["parquet"], out, model=model_dir, chunk_rows=CHUNK, workers=1)
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(source, destination, model, **kwargs):
    kwargs = {"chunk_rows": CHUNK, "workers": 1, "progress": False, **kwargs}
    return score_open(source, destination, model=model, **kwargs)


# -- one row per input row, errors where expected, same scores as in-process ----------------


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_every_input_row_gives_one_output_row(
    kind, files, open_data, model_dir, champion_model, tmp_path
):
    frame, expected = open_data
    out_path = tmp_path / f"scores.{kind}"
    summary = run(files[kind], out_path, model_dir)
    out = pd.read_parquet(out_path) if kind == "parquet" else pd.read_csv(out_path)

    assert list(out.columns) == list(OUTPUT_COLUMNS)
    assert out["row"].tolist() == list(range(1, N_ROWS + 1))
    assert (summary.rows, summary.errors, summary.chunks) == (N_ROWS, len(expected), 5)
    errors = out[out["status"] == "error"]
    assert dict(zip(errors["row"] - 1, errors["error_field"], strict=True)) == expected
    assert set(out["status"]) == {"scored", "error"}
    by_pos = out.set_index(out["row"] - 1)
    # An unknown channel is scored with a warning, as /score does, and never recommended.
    unknown = by_pos.loc[30]
    assert unknown["status"] == "scored" and unknown["p_loss"] > 0
    assert "no_such_channel is not in the channel catalog" in json.loads(unknown["warnings"])[0]
    assert pd.isna(unknown["price_usd"]) and pd.isna(unknown["saving_usd"])
    assert unknown["recommended_channel_id"] in set(load_catalog().channel_ids)
    assert "not in the channel catalog" in unknown["no_saving_reason"]
    for pos in (70, 95, 1_500):
        assert by_pos.loc[pos, "error_reason"] == DUPLICATE_ID
    assert by_pos.loc[80, "error_count"] == 2
    assert by_pos.loc[5, "status"] == "scored"  # the first occurrence keeps its scores
    assert by_pos.loc[50, "shipment_id"] == "bad id!"  # error rows echo the input
    assert errors["p_loss"].isna().all() and errors["recommended_channel_id"].isna().all()

    scored = out[out["status"] == "scored"]
    assert scored["error_count"].eq(0).all() and scored["error_field"].isna().all()
    direct = champion_model.predict_frame(frame.iloc[scored["row"].to_numpy() - 1])
    np.testing.assert_allclose(scored["p_loss"], direct["p_loss"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(scored["p_reject"], direct["p_reject"], rtol=1e-12, atol=0)
    assert scored["shipment_id"].tolist() == frame["shipment_id"].iloc[scored.index].tolist()

    ids = set(load_catalog().channel_ids)
    has_rec = scored["recommended_channel_id"].notna()
    assert has_rec.mean() > 0.99
    assert set(scored.loc[has_rec, "recommended_channel_id"]) <= ids
    allowed = scored["chosen_eligible"].astype(bool) & has_rec
    # the recommendation maximises the seller's certainty equivalent: it costs more in
    # expectation than an allowed choice only where it buys safety (a risk premium), rarely
    saving = scored.loc[allowed, "saving_usd"]
    np.testing.assert_allclose(
        saving,
        scored.loc[allowed, "expected_cost_usd"]
        - scored.loc[allowed, "recommended_expected_cost_usd"],
        atol=0.011,
    )
    assert (saving < 0).mean() < 0.05, (saving < 0).mean()
    # an ineligible choice has no saving to show, and says why instead of a negative number
    refused = ~scored["chosen_eligible"].astype(bool) & has_rec
    assert refused.sum() > 0
    assert scored.loc[refused, "saving_usd"].isna().all()
    assert scored.loc[refused, "no_saving_reason"].str.contains("does not accept|not in").all()
    assert scored.loc[allowed, "no_saving_reason"].isna().all()
    assert scored["order_id"].tolist() == frame["order_id"].iloc[scored.index].tolist()
    assert (
        scored["destination_country"].tolist()
        == frame["destination_country"].iloc[scored.index].tolist()
    )
    for column in MONEY_COLUMNS:  # money to the cent in CSV and Parquet alike
        values = out[column].dropna().to_numpy()
        assert np.abs(values * 100 - np.round(values * 100)).max() < 1e-6, column
    same = scored["recommended_channel_id"] == scored["channel_id"]
    assert (scored.loc[same, "saving_usd"] == 0).all()
    assert scored.loc[~same & allowed, "saving_usd"].gt(0).mean() > 0.9
    no_premium = scored["premium_usd"].isna()
    assert not scored.loc[no_premium, "insure"].astype(bool).any()  # no cover, no insure


def test_same_policy_and_scores_as_online(files, open_data, champion_model, tmp_path):
    """Batch over (n, all channels) equals the online path, one shipment at a time."""
    frame, expected = open_data
    costs = SellerCosts(reship_policy="reship", risk_aversion=3.0, delay_cost_per_day_usd=0.2)
    out_path = tmp_path / "scores.parquet"
    run(files["parquet"], out_path, champion_model, costs=costs)  # a loaded model works too
    out = pd.read_parquet(out_path)
    catalog = load_catalog()
    positions = [p for p in range(0, N_ROWS, 97) if p not in expected]
    records = [frame.iloc[p].to_dict() for p in positions]

    reference = shipment_arrays(catalog, records)
    mine = shipment_arrays(catalog, frame.iloc[positions])
    for key, value in reference.items():
        np.testing.assert_array_equal(np.asarray(mine[key]), np.asarray(value), err_msg=key)

    insured = 0
    for pos, rec in zip(positions, records, strict=True):
        row = out.iloc[pos]
        table, ids = candidates_for_shipment(catalog, rec, costs)
        pl, pj = champion_model.predict_matrix(
            champion_model.featurizer.encode_channels(rec, ids)
        ).values()
        d = decide(table, {"loss": pl[None, :], "reject": pj[None, :]}, costs)
        best = int(d.recommended[0])
        assert row["recommended_channel_id"] == ids[best]
        np.testing.assert_allclose(
            row["recommended_expected_cost_usd"], d.expected_cost[0, best], atol=0.005
        )
        np.testing.assert_allclose(row["recommended_p_loss"], pl[best], rtol=1e-12)

        chosen = [{"channel_id": rec["channel_id"]}]
        table, _ = candidates_for_shipment(catalog, rec, costs, chosen)
        X = champion_model.featurizer.encode_channels(rec, [rec["channel_id"]])
        cl, cj = champion_model.predict_matrix(X).values()
        dc = decide(table, {"loss": cl[None, :], "reject": cj[None, :]}, costs)
        np.testing.assert_allclose([row["p_loss"], row["p_reject"]], [cl[0], cj[0]], rtol=1e-12)
        np.testing.assert_allclose(row["expected_cost_usd"], dc.expected_cost[0, 0], atol=0.005)
        if table.eligible[0, 0]:  # cents: each side rounded once, the difference exact
            np.testing.assert_allclose(
                row["saving_usd"], dc.expected_cost[0, 0] - d.expected_cost[0, best], atol=0.011
            )
        else:
            assert pd.isna(row["saving_usd"]) and row["no_saving_reason"]
        assert bool(row["insure"]) == bool(dc.insure[0, 0])
        assert bool(row["chosen_eligible"]) == bool(table.eligible[0, 0])
        insured += bool(row["insure"])
    assert insured > 0  # risk_aversion=3 makes insurance worth buying somewhere


def test_reruns_give_byte_identical_files(files, model_dir, reference, tmp_path):
    before = {k: sha256(p) for k, p in files.items()}
    two = tmp_path / "two_workers.parquet"  # spawned workers, results re-assembled in order
    summary = run(files["parquet"], two, model_dir, workers=2)
    assert summary.rows == N_ROWS and summary.pairs > N_ROWS
    assert sha256(two) == sha256(reference)
    again = tmp_path / "again.parquet"
    run(files["parquet"], again, model_dir)
    assert sha256(again) == sha256(reference)
    csv_a, csv_b = tmp_path / "a.csv", tmp_path / "b.csv"
    run(files["csv"], csv_a, model_dir)
    run(files["csv"], csv_b, model_dir)
    assert csv_a.read_bytes() == csv_b.read_bytes()
    assert {k: sha256(p) for k, p in files.items()} == before  # input never modified
    meta = pq.ParquetFile(reference).schema_arrow.metadata
    assert meta[b"shiprisk.model_digest"] == summary.model_digest.encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.csv",
        "again.parquet",
        "b.csv",
        "two_workers.parquet",
    ]


def test_mapping_and_empty_input(files, open_data, model_dir, reference, tmp_path):
    frame, _ = open_data
    theirs = frame.rename(columns={"channel_id": "Service", "payment_method": "Payment"})
    theirs["Payment"] = theirs["Payment"].map({"prepaid": "Prepaid", "cod": "COD"})
    src = tmp_path / "export.csv"
    theirs.to_csv(src, index=False)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "columns: {Service: channel_id, Payment: payment_method}\n"
        "values: {payment_method: {Prepaid: prepaid, COD: cod}}\n"
    )
    out = tmp_path / "mapped.parquet"
    run(src, out, model_dir, mapping=mapping)
    got, ref = pd.read_parquet(out), pd.read_parquet(reference)
    pd.testing.assert_frame_equal(got, ref)

    empty = tmp_path / "empty.parquet"
    frame.head(0).to_parquet(empty, index=False)
    with pytest.raises(BatchError, match="no rows"):  # would replace good scores with none
        run(empty, tmp_path / "none.parquet", model_dir)
    assert not (tmp_path / "none.parquet").exists()
    summary = run(empty, tmp_path / "none.parquet", model_dir, allow_empty=True)
    assert summary.rows == 0
    assert pq.read_table(tmp_path / "none.parquet").schema.names == list(OUTPUT_COLUMNS)
    with pytest.raises(BatchError, match="overwrite the input"):
        run(src, src, model_dir)


# -- SQL in and out --------------------------------------------------------------------------


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _as_comparable(df: pd.DataFrame) -> pd.DataFrame:
    """Booleans as 0/1 floats, text as object: SQL and Parquet spell them differently."""
    out = df.copy()
    for name in (f.name for f in OUTPUT_SCHEMA if pa.types.is_boolean(f.type)):
        out[name] = pd.to_numeric(out[name].astype(object).map({True: 1, False: 0}, "ignore"))
        out[name] = out[name].astype(float)
    for name in out.columns:
        if out[name].dtype != float and name not in ("row", "error_count"):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def test_sql_in_and_out_same_sqlite_file(open_data, model_dir, reference, tmp_path):
    frame, _ = open_data
    db = tmp_path / "ops.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    frame.to_sql("open_shipments", engine, index=False)
    engine.dispose()
    source = SqlTable(str(db), "open_shipments")
    target = SqlTable(f"sqlite:///{db}", "scores")
    for _ in range(2):  # the second run replaces the table
        summary = run(source, target, model_dir)
    assert summary.rows == N_ROWS
    assert _tables(db) == {"open_shipments", "scores"}
    with sqlite3.connect(db) as conn:
        got = pd.read_sql("SELECT * FROM scores ORDER BY row", conn)
    ref = pd.read_parquet(reference)
    assert list(got.columns) == list(OUTPUT_COLUMNS)
    pd.testing.assert_frame_equal(_as_comparable(got), _as_comparable(ref), check_dtype=False)


def test_locked_sqlite_output_fails_cleanly_then_succeeds(files, model_dir, tmp_path):
    db = tmp_path / "out.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE scores (old INTEGER)")
        conn.execute("INSERT INTO scores VALUES (42)")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    target = SqlTable(str(db), "scores", lock_timeout_s=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(BatchError, match="locked"):
            run(files["parquet"], target, model_dir)
    finally:
        holder.rollback()
        holder.close()
    assert time.monotonic() - started < 30
    assert _tables(db) == {"scores"}  # no staging table, the old output untouched
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT old FROM scores").fetchall() == [(42,)]

    summary = run(files["parquet"], target, model_dir)
    assert summary.rows == N_ROWS
    assert _tables(db) == {"scores"}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), MIN(row), MAX(row) FROM scores").fetchone() == (
            N_ROWS,
            1,
            N_ROWS,
        )


# -- all-or-nothing files --------------------------------------------------------------------


def test_disk_full_leaves_nothing_and_rerun_is_identical(
    files, model_dir, reference, tmp_path, monkeypatch
):
    before = sha256(files["parquet"])
    out_dir = tmp_path / "out"
    out = out_dir / "scores.parquet"
    original = batch_write.ParquetSink.write
    calls = []

    def write_then_fail(self, chunk):
        calls.append(chunk.num_rows)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(self, chunk)

    monkeypatch.setattr(batch_write.ParquetSink, "write", write_then_fail)
    with pytest.raises(OSError) as info:
        run(files["parquet"], out, model_dir)
    assert info.value.errno == errno.ENOSPC
    assert len(calls) == 3
    assert list(out_dir.iterdir()) == []  # no output, no temp file
    assert sha256(files["parquet"]) == before

    monkeypatch.undo()
    run(files["parquet"], out, model_dir)
    assert sha256(out) == sha256(reference)
    assert [p.name for p in out_dir.iterdir()] == ["scores.parquet"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from shiprisk.cli import app; app()", "score-open", *args]


def test_killed_cli_run_leaves_no_output_and_rerun_is_identical(files, model_dir, tmp_path):
    out_dir = tmp_path / "out"
    out = out_dir / "scores.parquet"
    clean = tmp_path / "clean.parquet"
    run(files["parquet"], clean, model_dir, chunk_rows=KILL_CHUNK)
    args = [
        "--input", str(files["parquet"]), "--output", str(out), "--model-dir", str(model_dir),
        "--chunk-rows", str(KILL_CHUNK),
    ]  # fmt: skip
    proc = subprocess.Popen(
        _cli(*args, "--workers", "1"),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group: nothing it started survives
    )
    seen, sizes = [], []
    partial = out_dir / f".scores.parquet.partial-{proc.pid}"
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(("chunk 1 written", "chunk 2 written")):
                sizes.append(partial.stat().st_size)  # each chunk is on disk once announced
            if len(sizes) == 2:
                break
        assert len(sizes) == 2 and 4 < sizes[0] < sizes[1], seen  # past the 4-byte header
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    assert list(out_dir.iterdir()) == [partial]  # only the hidden temp file, unreadable
    with pytest.raises(pa.ArrowInvalid):
        pq.ParquetFile(partial)

    run(files["parquet"], out, model_dir, chunk_rows=KILL_CHUNK)  # the rerun
    assert [p.name for p in out_dir.iterdir()] == ["scores.parquet"]  # stale temp removed
    assert sha256(out) == sha256(clean)


def test_cli_costs_errors_and_exit_codes(files, model_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "scores.csv"
    common = ["score-open", "--model-dir", str(model_dir), "--workers", "1", "--no-progress"]
    io = ["--input", str(files["csv"]), "--output", str(out)]
    result = runner.invoke(app, [*common, *io])
    assert result.exit_code == 0, result.output  # error rows do not fail the run
    n_errors = 11
    assert f"summary: {N_ROWS:,} rows, {N_ROWS - n_errors:,} scored, {n_errors} errors, " in (
        result.output
    )
    assert "  recommendation: keep the chosen channel " in result.output
    assert "  expected saving if every recommendation is followed: " in result.output
    plain = pd.read_csv(out)

    costs = tmp_path / "costs.yaml"
    costs.write_text("delay_cost_per_day_usd: 0.5\n")
    result = runner.invoke(app, [*common, *io, "--costs", str(costs)])
    assert result.exit_code == 0, result.output
    delayed = pd.read_csv(out)
    scored = (delayed["status"] == "scored").to_numpy()
    assert scored.sum() == N_ROWS - n_errors
    priced = scored & delayed["expected_cost_usd"].notna().to_numpy()
    assert priced.sum() == scored.sum() - 1  # the unknown channel has no price
    extra = delayed["expected_cost_usd"][priced] - plain["expected_cost_usd"][priced]
    assert (extra > 0.5).all()  # half a dollar per transit day, at least a day

    costs.write_text("risk_aversion: 99\n")
    bad_costs = runner.invoke(app, [*common, *io, "--costs", str(costs)])
    assert bad_costs.exit_code == 1 and "risk_aversion" in bad_costs.output
    assert_frame = pd.read_csv(out)  # a failed run leaves the previous output as it was
    pd.testing.assert_frame_equal(assert_frame, delayed)
    missing = runner.invoke(
        app, [*common, "--input", str(tmp_path / "nope.csv"), "--output", str(out)]
    )
    assert missing.exit_code == 1 and "does not exist" in missing.output
    both = runner.invoke(app, [*common, *io, "--input-sql", "x.db"])
    assert both.exit_code == 2


def test_default_model_is_the_registry_champion(trained, champion_model, open_data):
    from shiprisk.models import registry
    from shiprisk.models.risk_model import RiskModel
    from shiprisk.settings import CHAMPION, get_settings

    path = champion_model_dir()
    version = registry.get_version(CHAMPION)
    assert path == get_settings().home / "models" / f"v{version.version}"
    sample = open_data[0].iloc[100:150]  # valid rows
    pd.testing.assert_frame_equal(
        RiskModel.load(path).predict_frame(sample), champion_model.predict_frame(sample)
    )
    booster = path / "booster_loss.txt"
    stamp = booster.stat().st_mtime_ns
    assert champion_model_dir() == path and booster.stat().st_mtime_ns == stamp  # reused
    (path / "calibration.json").write_text("{}")  # damaged copy: fetched again
    assert champion_model_dir() == path
    RiskModel.load(path)  # checksums verify again
    assert not list(path.parent.glob(".*partial*"))
