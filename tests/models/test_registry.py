"""MLflow tracking and registry, against real stores (SQLite and an `mlflow server`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pytest

from shiprisk.models import registry
from shiprisk.settings import CHALLENGER, CHAMPION
from shiprisk.training.evaluate import metric_key
from shiprisk.training.train import train
from tests.conftest import free_port


def test_training_logs_metrics_plots_config_and_frozen_set(trained) -> None:
    run = mlflow.get_run(trained.run_id)
    metrics = run.data.metrics
    for outcome in ("loss", "reject"):
        for name in (
            "log_loss",
            "roc_auc",
            "pr_auc",
            "brier",
            "ece_over_base_rate",
            "gain_captured",
            "ll_ratio_to_bayes",
        ):
            assert metric_key(outcome, name, "model") in metrics
            assert metric_key(outcome, name, "baseline") in metrics
    assert run.data.params["config_version"] == "1"
    client = registry.client()
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "plots")}
    assert {"plots/calibration_loss.png", "plots/importance_reject.png"} <= artifacts
    assert [a.path for a in client.list_artifacts(trained.run_id, "config")] == [
        "config/train.yaml"
    ]
    assert client.list_artifacts(trained.run_id, "frozen_eval")


def test_pyfunc_reload_gives_identical_probabilities(trained, champion_model, sim_frame) -> None:
    pyfunc = mlflow.pyfunc.load_model(registry.model_uri(CHAMPION))
    rows = sim_frame.iloc[:500]
    got = pyfunc.predict(registry.pyfunc_input_example(rows, rows=len(rows)))
    want = champion_model.predict_frame(rows)
    assert list(got.columns) == ["p_loss", "p_reject"]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-12)


def test_logged_model_holds_no_pickle(trained, tmp_path) -> None:
    local = Path(
        mlflow.artifacts.download_artifacts(registry.model_uri(CHAMPION), dst_path=tmp_path)
    )
    files = [p for p in local.rglob("*") if p.is_file()]
    assert any(p.name == "booster_loss.txt" for p in files)
    assert not [p for p in files if p.suffix in (".pkl", ".pickle")]
    assert "loader_module: mlflow.pyfunc.loaders.code_model" in (local / "MLmodel").read_text()


def test_rollback_restores_the_previous_champion(trained) -> None:
    original = str(registry.get_version(CHAMPION).version)
    source = registry.client().get_model_version(registry.model_name(), original).source
    second = str(registry.register(source).version)  # e.g. a hand-promoted copy
    registry.make_champion(second)
    assert str(registry.get_version(CHAMPION).version) == second
    before, after = registry.rollback()
    assert (before, after) == (second, original)
    assert str(registry.get_version(CHAMPION).version) == original
    with pytest.raises(RuntimeError, match="no previous champion"):
        registry.rollback()


def test_train_and_register_through_a_real_mlflow_server(sim_frame, tmp_path) -> None:
    port = free_port()
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    env = dict(
        os.environ,
        MLFLOW_DISABLE_TELEMETRY="true",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            mlflow_bin,
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'srv.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    previous = mlflow.get_tracking_uri()
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(1)
        result = train(sim_frame.iloc[:10_000], tracking_uri=url, with_baseline=False)
        client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
        version = client.get_model_version_by_alias(registry.model_name(), CHALLENGER)
        assert str(version.version) == result.version == "1"
        assert any((tmp_path / "artifacts").rglob("booster_loss.txt"))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
        registry.configure(previous)
