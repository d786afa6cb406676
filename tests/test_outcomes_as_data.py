"""Outcomes are data: a third outcome added to the spec (and to the simulated world) flows
through training, promotion, ``/score``, ``/score_batch`` and ``score-open`` with no code
change.

The spec is a file (``data/reference/outcomes.json``; ``SHIPRISK_OUTCOMES_FILE`` points to
another), read when shiprisk starts, so every step here runs in its own process with a
three-outcome spec and its own stores. The world gets the new event through the simulator's
``add_event``: fragile parcels in soft packaging are often damaged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from shiprisk.data.outcomes import Outcome
from shiprisk.data.simulator import add_event, simulate
from tests.conftest import start_server

pytestmark = pytest.mark.slow

DAMAGED = Outcome("damaged", "damaged", "true_p_damaged", "goods_lost", "Arrived broken; refunded.")
ROWS = 30_000


def _spec(path: Path) -> Path:
    base = json.loads(
        (Path(__file__).resolve().parents[1] / "data/reference/outcomes.json").read_text()
    )
    base["events"].append(
        {
            "key": DAMAGED.key,
            "label": DAMAGED.label,
            "truth_column": DAMAGED.truth_column,
            "cost_role": DAMAGED.cost_role,
            "description": DAMAGED.description,
        }
    )
    path.write_text(json.dumps(base))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("third_outcome")
    frame = simulate(ROWS, seed=21)
    soft = frame["packaging"].isin(["envelope", "poly_mailer"]).to_numpy()
    hazard = np.where(frame["fragile"].to_numpy(), np.where(soft, 0.25, 0.08), 0.01)
    history = add_event(frame, DAMAGED, hazard, seed=5)
    history.to_parquet(root / "history.parquet", index=False)
    env = dict(
        os.environ,
        SHIPRISK_OUTCOMES_FILE=str(_spec(root / "outcomes3.json")),
        SHIPRISK_HOME=str(root / "home"),
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        BENTOML_HOME=str(root / "bentoml"),
        SHIPRISK_MATURITY_DAYS="0",
    )
    return {"root": root, "env": env, "history": history}


def _cli(world: dict, *args: str) -> subprocess.CompletedProcess:
    shiprisk = str(Path(sys.executable).with_name("shiprisk"))
    return subprocess.run(
        [shiprisk, *args], env=world["env"], capture_output=True, text=True, timeout=900
    )


def test_the_world_keeps_the_events_exclusive(world: dict) -> None:
    h = world["history"]
    truth = h[["true_p_loss", "true_p_reject", "true_p_damaged"]].sum(axis=1)
    assert (truth < 1).all()
    damaged = h["outcome"] == "damaged"
    assert damaged.sum() > 200
    # drawn where the hazard is: fragile parcels are damaged far more often
    assert h.loc[h["fragile"], "outcome"].eq("damaged").mean() > 4 * (
        h.loc[~h["fragile"], "outcome"].eq("damaged").mean()
    )


@pytest.fixture(scope="module")
def champion(world: dict) -> dict:
    trained = _cli(world, "train", "--data", str(world["root"] / "history.parquet"))
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    promoted = _cli(world, "promote")
    assert promoted.returncode == 0, promoted.stdout[-2000:] + promoted.stderr[-2000:]
    # the CLI talks on stderr (stdout stays free for data)
    return {"train": trained.stdout + trained.stderr, "promote": promoted.stdout + promoted.stderr}


def test_training_and_the_gate_cover_the_new_outcome(champion: dict) -> None:
    assert "damaged" in champion["train"]  # its metrics are in the table
    # and the gate judged it
    assert re.search(r"^  damaged: (passed|FAILED): challenger log loss", champion["promote"], re.M)


def test_score_open_writes_the_new_outcome(world: dict, champion: dict) -> None:
    open_rows = (
        world["history"]
        .head(200)
        .drop(columns=["outcome", "outcome_date", "true_p_loss", "true_p_reject", "true_p_damaged"])
    )
    source, target = world["root"] / "open.parquet", world["root"] / "scores.parquet"
    open_rows.to_parquet(source, index=False)
    done = _cli(world, "score-open", "--input", str(source), "--output", str(target))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    scores = pd.read_parquet(target)
    assert len(scores) == 200
    for column in ("p_damaged", "recommended_p_damaged"):
        assert scores[column].between(0, 1).all(), column
    total = scores[["p_loss", "p_reject", "p_damaged"]].sum(axis=1)
    assert (total < 1).all()
    fragile = open_rows["fragile"].to_numpy()
    assert scores.loc[fragile, "p_damaged"].mean() > 2 * scores.loc[~fragile, "p_damaged"].mean()


def test_score_and_score_batch_answer_the_new_outcome(world: dict, champion: dict) -> None:
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "from shiprisk.serving.model_store import import_version;print(import_version().tag)",
        ],
        env=world["env"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    tag = imported.stdout.strip().splitlines()[-1]
    keys = ("SHIPRISK_OUTCOMES_FILE", "SHIPRISK_HOME", "MLFLOW_TRACKING_URI", "BENTOML_HOME")
    env = {k: world["env"][k] for k in keys} | {"SHIPRISK_WORKERS": "1"}
    srv = start_server(tag, env, world["root"] / "server.log")
    try:
        from shiprisk.data.contract import example_request

        body = example_request()
        one = httpx.post(f"{srv.url}/score", json=body, timeout=60)
        assert one.status_code == 200, one.text
        answer = one.json()
        for channel in answer["channels"]:
            assert 0 <= channel["p_damaged"] <= 1
            assert channel["p_loss"] + channel["p_reject"] + channel["p_damaged"] < 1
        assert "p_damaged" in answer["recommendation"]
        many = httpx.post(f"{srv.url}/score_batch", json={"shipments": [body, body]}, timeout=60)
        assert many.status_code == 200, many.text
        assert [r["channels"] for r in many.json()["results"]] == [answer["channels"]] * 2
        schema = httpx.get(f"{srv.url}/docs.json", timeout=30).json()
        props = schema["components"]["schemas"]["ChannelScore"]["properties"]
        assert "p_damaged" in props
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "content",
    ["", "{not json", '{"delivered": "delivered", "events": []}', '{"events": [{"key": "x"}]}'],
)
def test_a_broken_spec_is_one_line_not_a_traceback(tmp_path: Path, content: str) -> None:
    spec = tmp_path / "outcomes.json"
    spec.write_text(content)
    shiprisk = str(Path(sys.executable).with_name("shiprisk"))
    done = subprocess.run(
        [shiprisk, "data", "generate", "--rows", "10", "--output", str(tmp_path / "x.pq")],
        env=dict(os.environ, SHIPRISK_OUTCOMES_FILE=str(spec)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(spec) in lines[0] and "Traceback" not in done.stderr, lines
    assert not (tmp_path / "x.pq").exists()
