"""What the MLflow UI shows for the session's training and promotion, read back from the
session's SQLite store: a classic ML experiment, runs named after what they are, with a
description, metrics grouped so model and baseline sit side by side, importance by request
field and quality tables per destination and channel."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pandas as pd

from shiprisk.data.contract import SCHEMA_FIELDS
from shiprisk.models import registry
from shiprisk.settings import CHAMPION
from shiprisk.training.evaluate import metric_key
from shiprisk.training.train import EXPERIMENT, NOTE_TAG


def test_the_experiment_is_a_classic_ml_experiment(trained) -> None:
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags[registry.EXPERIMENT_KIND_TAG] == registry.CLASSIC_ML
    assert experiment.tags["mlflow.note.content"]


def test_training_run_name_description_and_metric_groups(trained, sim_frame) -> None:
    run = mlflow.get_run(trained.run_id)
    name = run.info.run_name
    assert name == trained.run_name
    assert re.fullmatch(r"train-\d+(\.\d+)?k-.+", name), name
    assert f"{len(sim_frame) // 1000}k" in name  # every session row is valid and mature
    note = run.data.tags[NOTE_TAG]
    assert "LightGBM" in note and f"version {trained.version}" in note
    metrics = run.data.metrics
    for outcome in ("loss", "reject"):
        model, baseline = (
            metric_key(outcome, "log_loss", "model"),
            metric_key(outcome, "log_loss", "baseline"),
        )
        assert metrics[model] == trained.metrics["model"][outcome]["log_loss"]
        assert model.split("/")[0] == baseline.split("/")[0] == outcome  # one chart group
        assert metric_key(outcome, "trees", "model") in metrics
    assert all("/" in key for key in metrics)  # nothing left ungrouped
    assert not any(key.startswith("test_") for key in metrics)


def test_importance_by_request_field_and_quality_tables(trained, tmp_path) -> None:
    client = registry.client()
    request_fields = set(SCHEMA_FIELDS["request"])
    for outcome in ("loss", "reject"):
        local = client.download_artifacts(trained.run_id, f"importance/{outcome}.json", tmp_path)
        by_field = json.loads(Path(local).read_text())["gain_by_field"]
        assert set(by_field) <= request_fields and len(by_field) >= 10
        assert "cod_x_risk_tier" not in by_field
    for name, column in (("destination", "destination_country"), ("channel", "channel_id")):
        local = client.download_artifacts(
            trained.run_id, f"quality/quality_by_{name}.csv", tmp_path
        )
        table = pd.read_csv(local, keep_default_na=False)
        assert table.columns[:2].tolist() == [column, "rows"]
        assert table["rows"].sum() == trained.splits["test"]
        for outcome in ("loss", "reject"):
            assert table[f"{outcome}_observed_rate"].between(0, 1).all()
            assert (table[f"{outcome}_log_loss_prior"] > 0).all()


def test_promotion_is_a_named_run_with_the_gate(trained) -> None:
    champion = registry.get_version(CHAMPION)
    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENT],
        filter_string=f"attributes.run_name = 'promote-v{trained.version}'",
        output_format="list",
    )
    assert runs, "no promote run"
    run = runs[0]
    assert run.data.tags["gate"] == "passed" and str(champion.version) == trained.version
    assert "accepted" in run.data.tags[NOTE_TAG]
    for outcome in ("loss", "reject"):
        challenger = run.data.metrics[metric_key(outcome, "log_loss", "challenger")]
        reference = run.data.metrics[metric_key(outcome, "log_loss", "reference")]
        assert challenger < reference  # the first model beats the base rate
