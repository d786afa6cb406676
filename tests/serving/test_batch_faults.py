"""Batch findings of "Reliability and security II": each test reproduces one attack on
``score-open`` that succeeded before the fix (see docs/reliability.md, batch findings).

Real files, a real SQLite file, a real SIGKILL; no fault is injected.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.data.contract import OPEN_FIELDS
from shiprisk.serving.batch import score_open
from shiprisk.serving.batch_chunks import OUTPUT_SCHEMA
from shiprisk.serving.batch_read import BatchError, SqlTable

ROWS = 300
CHUNK = 100
CLI = ["score-open", "--workers", "1", "--no-progress"]


@pytest.fixture(scope="module")
def frame(sim_frame) -> pd.DataFrame:
    return sim_frame.loc[:, list(OPEN_FIELDS)].head(ROWS).reset_index(drop=True).copy()


@pytest.fixture(scope="module")
def model_dir(champion_model, tmp_path_factory) -> Path:
    return champion_model.save(tmp_path_factory.mktemp("faults_model") / "model")


@pytest.fixture(scope="module")
def good_input(frame, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults_input") / "open.parquet"
    frame.to_parquet(path, index=False)
    return path


def run(source, destination, model, **kwargs):
    kwargs = {"chunk_rows": CHUNK, "workers": 1, "progress": False, **kwargs}
    return score_open(source, destination, model=model, **kwargs)


def _db_with_input(frame: pd.DataFrame, db: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{db}")
    frame.to_sql("open_shipments", engine, index=False)
    engine.dispose()


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _count(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _one_line_failure(result) -> str:
    """The CLI's failure line; no traceback reaches the operator."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if "score-open failed" in ln]
    assert len(lines) == 1, result.output
    return lines[0]


# -- 1. the output can never be the input, however spelled -----------------------------------


def test_output_spelled_differently_is_still_the_input(frame, model_dir, good_input, tmp_path):
    db = tmp_path / "ops.db"
    _db_with_input(frame, db)
    (tmp_path / "link.db").symlink_to(db)
    source = SqlTable(str(db), "open_shipments")
    spellings = [
        SqlTable(str(db), "OPEN_SHIPMENTS"),
        SqlTable(f"sqlite:///{tmp_path}/./ops.db", "open_shipments"),
        SqlTable(f"sqlite:///{tmp_path}/sub/../ops.db", "Open_Shipments"),
        SqlTable(str(tmp_path / "link.db"), "open_shipments"),
    ]
    for target in spellings:
        with pytest.raises(BatchError, match="overwrite the input"):
            run(source, target, model_dir)
    assert _tables(db) == {"open_shipments"} and _count(db, "open_shipments") == ROWS

    hard = tmp_path / "hard.parquet"  # a hard link is the same file under another name
    os.link(good_input, hard)
    before = good_input.read_bytes()
    with pytest.raises(BatchError, match="overwrite the input"):
        run(good_input, hard, model_dir)
    assert good_input.read_bytes() == before


def test_staging_never_drops_an_existing_table(frame, model_dir, tmp_path):
    db = tmp_path / "ops.db"
    _db_with_input(frame, db)
    with sqlite3.connect(db) as conn:  # someone's table that happens to have the old name
        conn.execute("CREATE TABLE scores__staging (keep INTEGER)")
        conn.execute("INSERT INTO scores__staging VALUES (7)")
    source, target = SqlTable(str(db), "open_shipments"), SqlTable(str(db), "scores")
    run(source, target, model_dir)
    assert _tables(db) == {"open_shipments", "scores", "scores__staging"}
    assert _count(db, "scores") == ROWS and _count(db, "scores__staging") == 1

    clash = f"scores__staging_{os.getpid()}"  # exactly the name this run would stage into
    with sqlite3.connect(db) as conn:
        conn.execute(f'CREATE TABLE "{clash}" (keep INTEGER)')
        conn.execute("DELETE FROM scores WHERE row > 10")
    with pytest.raises(BatchError, match=f"{clash}.*already exists"):
        run(source, target, model_dir)
    assert _count(db, clash) == 0 and _count(db, "scores") == 10  # both untouched


# -- 2. nothing readable: exit non-zero, keep yesterday's output ------------------------------


def _empty_inputs(frame: pd.DataFrame, root: Path) -> dict[str, Path]:
    zeros = root / "zeros.csv"
    with zeros.open("wb") as fh:
        fh.write(b"\0" * 10_000_000)
    header_only = root / "header_only.csv"
    frame.head(0).to_csv(header_only, index=False)
    no_rows = root / "no_rows.parquet"
    frame.head(0).to_parquet(no_rows, index=False)
    empty = root / "empty.csv"
    empty.touch()
    zeros_pq = root / "zeros.parquet"
    zeros_pq.write_bytes(b"\0" * 1_000_000)
    return {p.stem: p for p in (zeros, header_only, no_rows, empty)} | {"zeros_pq": zeros_pq}


@pytest.mark.parametrize("kind", ["zeros", "header_only", "no_rows", "empty", "zeros_pq"])
def test_empty_looking_input_fails_and_keeps_the_previous_output(
    kind, frame, model_dir, good_input, tmp_path
):
    out = tmp_path / "scores.csv"
    run(good_input, out, model_dir)
    yesterday = out.read_bytes()
    source = _empty_inputs(frame, tmp_path)[kind]
    with pytest.raises(BatchError, match=r"no rows|NUL|empty|not a Parquet"):
        run(source, out, model_dir)
    assert out.read_bytes() == yesterday
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    result = CliRunner().invoke(
        app,
        [*CLI, "--input", str(source), "--output", str(out), "--model-dir", str(model_dir)],
    )
    _one_line_failure(result)
    assert out.read_bytes() == yesterday


def test_allow_empty_writes_an_empty_output(frame, model_dir, good_input, tmp_path):
    source = _empty_inputs(frame, tmp_path)["header_only"]
    out = tmp_path / "scores.parquet"
    run(good_input, out, model_dir)
    summary = run(source, out, model_dir, allow_empty=True)
    assert summary.rows == 0 and pq.read_table(out).num_rows == 0


def test_sparse_file_is_refused_without_reading_it(model_dir, tmp_path):
    """2 GB of holes: refused from its first bytes (before: 17 GB of memory, exit 0)."""
    sparse = tmp_path / "open.csv"
    with sparse.open("wb") as fh:
        fh.truncate(2 * 1024**3)
    started = time.monotonic()
    with pytest.raises(BatchError, match="NUL bytes"):
        run(sparse, tmp_path / "scores.parquet", model_dir)
    assert time.monotonic() - started < 10
    assert not (tmp_path / "scores.parquet").exists()


# -- 3. a killed run leaves nothing behind (at the latest after the next run) ----------------


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        kids.extend(int(k) for k in text)
    return kids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie holds no memory


def test_killed_run_takes_its_workers_and_the_next_run_cleans_up(frame, model_dir, tmp_path):
    db = tmp_path / "ops.db"
    copies = [frame.assign(shipment_id=frame["shipment_id"] + f"-{k}") for k in range(20)]
    _db_with_input(pd.concat(copies, ignore_index=True), db)  # 120 chunks: killed mid-run
    spool_root = tmp_path / "tmp"
    spool_root.mkdir()
    args = [
        "--input-sql", str(db), "--input-table", "open_shipments", "--output-sql", str(db),
        "--output-table", "scores", "--model-dir", str(model_dir), "--chunk-rows", "50",
        "--workers", "2",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", "from shiprisk.cli import app; app()", "score-open", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(spool_root)},
    )
    workers: list[int] = []
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("chunk 1 written"):
                workers = [p for p in _children(proc.pid) if _alive(p)]
                break
        assert len(workers) >= 2, (seen, workers)
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, as the OOM killer would
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [p for p in workers if _alive(p)]
        assert survivors == [], f"workers outlived the killed run: {survivors}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # never leave anything behind in the test
        proc.stderr.close()
    spools = list(spool_root.iterdir())
    assert [p.name.split("-")[2] for p in spools] == [str(proc.pid)]  # the killed run's spool

    # A run killed while loading its staging table leaves one with rows; make that state.
    dead = _dead_pid()
    stale = f"scores__staging_{dead}"
    with sqlite3.connect(db) as conn:
        conn.execute(f'CREATE TABLE "{stale}" AS SELECT * FROM open_shipments')
    (spool_root / f"shiprisk-batch-{dead}-x").mkdir()
    (spool_root / f"shiprisk-batch-{dead}-x" / "scores.parquet").write_bytes(b"PAR1")

    tempfile.tempdir = str(spool_root)
    try:
        summary = run(SqlTable(str(db), "open_shipments"), SqlTable(str(db), "scores"), model_dir)
    finally:
        tempfile.tempdir = None
    assert summary.rows == 20 * ROWS
    assert list(spool_root.iterdir()) == []
    assert _tables(db) == {"open_shipments", "scores"}


# -- 7. CSV injection, encodings, odd Parquet columns ----------------------------------------


PAYLOADS = ['=HYPERLINK("http://evil.example","click")', "=cmd|' /C calc'!A0", "+1+1", "@SUM(1)"]


NUMBER_COLUMNS = {f.name for f in OUTPUT_SCHEMA if pa.types.is_floating(f.type)}


def test_csv_output_neutralises_formulas_and_parquet_keeps_exact_values(frame, model_dir, tmp_path):
    df = frame.head(10).copy()
    df.loc[0:3, "shipment_id"] = PAYLOADS
    df.loc[4, "channel_id"] = "-2+3"
    source = tmp_path / "open.parquet"
    df.to_parquet(source, index=False)
    run(source, tmp_path / "scores.csv", model_dir)
    run(source, tmp_path / "scores.parquet", model_dir)

    with (tmp_path / "scores.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["shipment_id"] for r in rows]
    assert ids[:4] == [f"'{p}" for p in PAYLOADS]
    assert rows[4]["channel_id"] == "'-2+3"
    for r in rows:
        for name, cell in r.items():
            if name in NUMBER_COLUMNS and cell:  # a negative amount is a number, not a formula
                float(cell)
                continue
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
    exact = pd.read_parquet(tmp_path / "scores.parquet")
    assert exact["shipment_id"].tolist()[:4] == PAYLOADS
    assert exact.loc[4, "channel_id"] == "-2+3"

    # input text is stripped before it is echoed; a tab or CR can still lead a cell value
    from shiprisk.serving.batch_write import neutralise_formulas

    cells = pa.array(["\tx", "\r=1", "ok", None, "a=b"])
    batch = pa.RecordBatch.from_arrays([cells, pa.array([1, 2, 3, 4, 5])], names=["t", "n"])
    got = neutralise_formulas(batch).column(0).to_pylist()
    assert got == ["'\tx", "'\r=1", "ok", None, "a=b"]


def test_a_stray_byte_is_that_rows_error_and_utf16_is_one_line(frame, model_dir, tmp_path):
    out = tmp_path / "scores.parquet"
    latin = tmp_path / "latin1.csv"
    text = frame.head(50).to_csv(index=False).encode("utf-8")
    first_id = str(frame.loc[20, "shipment_id"]).encode()
    latin.write_bytes(text.replace(first_id, first_id + b"\xe9", 1))
    summary = run(latin, out, model_dir)
    scores = pd.read_parquet(out)
    assert (summary.rows, summary.errors) == (50, 1)  # the run goes on, one row per row
    bad = scores.loc[scores["row"] == 21].iloc[0]
    assert (bad["status"], bad["error_field"]) == ("error", "shipment_id")
    assert "not UTF-8" in bad["error_reason"]
    assert (scores.loc[scores["row"] != 21, "status"] == "scored").all()

    utf16 = tmp_path / "utf16.csv"
    frame.head(50).to_csv(utf16, index=False, encoding="utf-16")
    good = out.read_bytes()
    with pytest.raises(BatchError, match="UTF-16"):
        run(utf16, out, model_dir)
    result = CliRunner().invoke(
        app,
        [*CLI, "--input", str(utf16), "--output", str(out), "--model-dir", str(model_dir)],
    )
    assert "UTF-16" in _one_line_failure(result)
    assert out.read_bytes() == good  # the previous good output is never replaced


def test_parquet_list_and_duplicate_columns_give_one_line_errors(frame, model_dir, tmp_path):
    table = pa.Table.from_pandas(frame.head(20), preserve_index=False)
    listed = table.set_column(
        table.schema.get_field_index("currency"),
        "currency",
        pa.array([[c] for c in frame["currency"].head(20)]),
    )
    pq.write_table(listed, tmp_path / "list.parquet")
    with pytest.raises(BatchError, match="'currency' holds list"):
        run(tmp_path / "list.parquet", tmp_path / "a.parquet", model_dir)

    dup = pa.Table.from_arrays(
        [*table.columns, table.column("weight_kg")], names=[*table.column_names, "weight_kg"]
    )
    pq.write_table(dup, tmp_path / "dup.parquet")
    result = CliRunner().invoke(
        app,
        [
            *CLI,
            "--input",
            str(tmp_path / "dup.parquet"),
            "--output",
            str(tmp_path / "b.parquet"),
            "--model-dir",
            str(model_dir),
        ],
    )
    assert "duplicate columns: weight_kg" in _one_line_failure(result)
    assert not (tmp_path / "a.parquet").exists() and not (tmp_path / "b.parquet").exists()
