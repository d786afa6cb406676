"""Acceptance 1 of issue 14: a history without parcel data trains, serves and scores.

A simulated seller export WITHOUT weight, the three sides, packaging, address quality and
buyer history (the columns are not in the file) goes through a mapping file, ``shiprisk
train`` and ``shiprisk promote`` into a store of its own, and is served by a real BentoML
server of its own (its own MLflow store, home and BentoML store: the session's are left
alone); a ``/score`` request leaving out the same fields answers 200, its warnings name
them, and no column is made up anywhere: not in the training frame, not in the model's
fields, and NaN in the feature matrix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from shiprisk.data.contract import TYPICAL_EXPORT_MISSING, example_request
from tests.conftest import start_server

DROPPED = TYPICAL_EXPORT_MISSING
RENAMED = {
    "Order": "order_id",
    "Created": "created_at",
    "Country": "destination_country",
    "Service": "channel_id",
    "Status": "outcome",
}
ROWS = 12_000
SALES_CHANNELS = ("web", "app", "phone")
OWN_STORES = ("SHIPRISK_HOME", "MLFLOW_TRACKING_URI", "BENTOML_HOME")


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


@pytest.fixture(scope="module")
def typical(tmp_path_factory: pytest.TempPathFactory, sim_frame: pd.DataFrame):
    """The export, its mapping, and a seller store trained, promoted and imported."""
    root = tmp_path_factory.mktemp("typical-export")
    export = sim_frame.head(ROWS).drop(columns=list(DROPPED))
    export = export.drop(columns=[c for c in export.columns if c.startswith("true_")])
    export = export.rename(columns={v: k for k, v in RENAMED.items()})
    export["Status"] = export["Status"].str.upper()  # DELIVERED: any case maps
    rng = np.random.default_rng(3)
    export["Sales Channel"] = rng.choice(SALES_CHANNELS, size=len(export))
    csv = root / "orders.csv"
    export.to_csv(csv, index=False)
    mapping = root / "mapping.yaml"
    extras = {
        "sales_channel": {
            "column": "Sales Channel",
            "kind": "categorical",
            "values": list(SALES_CHANNELS),
        }
    }
    mapping.write_text(yaml.safe_dump({"columns": RENAMED, "extras": extras}))
    config = yaml.safe_load((Path(__file__).parents[2] / "configs" / "train.yaml").read_text())
    for head in config["lightgbm"].values():  # a small model: the path is under test
        head.update(num_boost_round=300, early_stopping_rounds=40, refit_full_train=False)
    config_file = root / "train.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = dict(
        os.environ,
        SHIPRISK_HOME=str(root / "home"),
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        BENTOML_HOME=str(root / "bentoml"),
    )
    cli = str(Path(sys.executable).with_name("shiprisk"))
    _run(
        [cli, "train", "--data", str(csv), "--mapping", str(mapping), "--config", str(config_file)],
        env,
    )
    _run([cli, "promote"], env)
    script = (
        "import json; from shiprisk.serving.model_store import import_version; "
        "from shiprisk.models import registry; from shiprisk.settings import CHAMPION; "
        "r = import_version(); v = registry.get_version(CHAMPION); "
        f"p = registry.download_risk_model(v, {str(root / 'model')!r}); "
        "print(json.dumps({'tag': r.tag, 'path': str(p)}))"
    )
    out = json.loads(_run([sys.executable, "-c", script], env).strip().splitlines()[-1])
    return {"csv": csv, "mapping": mapping, "env": env, "root": root, **out}


@pytest.fixture(scope="module")
def typical_server(typical):
    srv = start_server(
        typical["tag"],
        {"SHIPRISK_WORKERS": "1", **{k: typical["env"][k] for k in OWN_STORES}},
        typical["root"] / "server.log",
    )
    try:
        yield srv
    finally:
        srv.stop()


def _request() -> dict:
    return {k: v for k, v in example_request().items() if k not in DROPPED}


def test_the_training_frame_and_the_model_have_no_made_up_column(typical) -> None:
    from shiprisk.data.loaders import load_history
    from shiprisk.models.risk_model import RiskModel

    loaded = load_history(typical["csv"], mapping=typical["mapping"])
    assert loaded.n_train > 10_000
    assert not set(DROPPED) & set(loaded.train.columns)
    model = RiskModel.load(Path(typical["path"]))
    assert not set(DROPPED) & set(model.featurizer.fields_)
    assert {"destination_country", "channel_id", "goods_category"} <= set(model.featurizer.fields_)
    record = {**_request(), **dict.fromkeys(DROPPED)}
    X = model.featurizer.encode_channels(record, ["epacket"])
    for feature in (
        "weight_kg",
        "volumetric_kg",
        "longest_cm",
        "packaging",
        "address_quality",
        "buyer_prior_orders",
        "refusal_rate",
        "new_buyer",
    ):
        j = model.featurizer.column(feature)
        assert j is not None and np.isnan(X[0, j]), feature
    assert np.isfinite(X[0, model.featurizer.column("log_value_usd")])


def test_score_without_the_fields_answers_and_names_them(typical_server) -> None:
    answer = httpx.post(f"{typical_server.url}/score", json=_request(), timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    text = " ".join(body["warnings"])
    for field in DROPPED:
        assert field in text, (field, body["warnings"])
    assert "trained without" in text and "less certain" in text
    assert body["recommendation"] is not None
    assert body["channels"] and all(c["price_estimated"] for c in body["channels"])
    assert all(c["price_usd"] > 0 for c in body["channels"])
    factors = {r["factor"] for r in body["reasons"]}
    assert not factors & {"packaging", "address", "buyer", "size"}


def test_a_field_the_model_never_saw_is_accepted_and_reported_unused(typical_server) -> None:
    body = {
        **_request(),
        "weight_kg": 0.8,
        "candidates": [{"channel_id": "epacket", "quoted_price_usd": 4.2}],
    }
    answer = httpx.post(f"{typical_server.url}/score", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert any("not used by this model" in w and "weight_kg" in w for w in data["warnings"])
    (channel,) = data["channels"]
    assert channel["price_usd"] == 4.2 and channel["price_estimated"] is False


def test_the_session_model_scores_absent_fields_it_knows_as_unknown(scorer) -> None:
    """The full-field model (trained with masking) names the fields it reads that a request
    leaves out, and never phrases a reason from one."""
    from shiprisk.serving.schemas import ScoreRequest

    request = {**example_request(), "address_quality": None}
    request.pop("packaging")
    answer = scorer.score(ScoreRequest.model_validate(request))
    unknown = [w for w in answer.warnings if w.startswith("absent field(s) scored as unknown")]
    assert len(unknown) == 1 and "packaging" in unknown[0] and "address_quality" in unknown[0]
    assert not any("less certain" in w for w in answer.warnings)  # price and size known
    assert not {r.factor for r in answer.reasons} & {"address", "packaging"}
    assert not any(c.price_estimated for c in answer.channels)
    full = scorer.score(ScoreRequest.model_validate(example_request()))
    assert not any("absent" in w or "not used" in w for w in full.warnings)


def test_open_shipments_without_the_fields_are_all_scored(champion_model, sim_frame, tmp_path):
    """An open-shipments file without the parcel columns (and a blank cell): one scored
    output row per input row, the same figures as the in-process path."""
    from shiprisk.serving.batch import score_open

    rows = sim_frame.tail(200).drop(columns=["outcome", "outcome_date", *DROPPED])
    rows = rows.drop(columns=[c for c in rows.columns if c.startswith("true_")])
    rows["fragile"] = rows["fragile"].astype(object)
    rows.iloc[3, rows.columns.get_loc("fragile")] = None
    source, destination = tmp_path / "open.csv", tmp_path / "scored.csv"
    rows.to_csv(source, index=False)
    summary = score_open(source, destination, model=champion_model, workers=1, progress=False)
    assert summary.rows == summary.scored == 200 and summary.errors == 0
    out = pd.read_csv(destination)
    assert len(out) == 200 and (out["status"] == "scored").all()
    assert out["p_loss"].notna().all() and out["price_usd"].notna().all()


def test_extra_features_are_checked_against_the_served_model(typical_server) -> None:
    """The export's declared extra is the served model's: accepted under ``extra``, named
    in the OpenAPI document; an unknown name or a wrong type is a 400 naming it."""
    url = f"{typical_server.url}/score"
    ok = httpx.post(url, json={**_request(), "extra": {"sales_channel": "phone"}}, timeout=60)
    assert ok.status_code == 200, ok.text
    unknown = httpx.post(url, json={**_request(), "extra": {"basket_size": 3}}, timeout=60)
    assert unknown.status_code == 400, unknown.text
    assert unknown.json()["fields"] == [
        {
            "field": "extra.basket_size",
            "reason": "not an extra of this model (its extras: sales_channel)",
        }
    ]
    wrong = httpx.post(url, json={**_request(), "extra": {"sales_channel": 7}}, timeout=60)
    assert wrong.status_code == 400
    assert wrong.json()["fields"][0]["field"] == "extra.sales_channel"
    assert "one of: web, app, phone" in wrong.json()["fields"][0]["reason"]
    listed = [{"field": "x", "reason": "y"}]
    bad_type = httpx.post(url, json={**_request(), "extra": {"sales_channel": listed}})
    assert bad_type.status_code == 400
    assert bad_type.json()["fields"][0]["field"] == "extra.sales_channel"  # a declared name
    spec = httpx.get(f"{typical_server.url}/docs.json", timeout=60).json()
    text = json.dumps(spec["components"]["schemas"])
    assert "`sales_channel` (one of: web, app, phone)" in text
    extra = spec["components"]["schemas"]["ScoreRequest"]["properties"]["extra"]
    assert extra["properties"] == {"sales_channel": {"enum": list(SALES_CHANNELS)}}
    assert extra["additionalProperties"] is False


def test_explained_open_shipments_without_the_fields(champion_model, sim_frame, tmp_path):
    """The batch's reasons and actions (--explain) on a file without the parcel columns:
    every row scored, no reason phrased from an absent field."""
    from shiprisk.serving.batch import score_open

    rows = sim_frame.tail(60).drop(columns=["outcome", "outcome_date", *DROPPED])
    rows = rows.drop(columns=[c for c in rows.columns if c.startswith("true_")])
    source, destination = tmp_path / "open.csv", tmp_path / "scored.csv"
    rows.to_csv(source, index=False)
    summary = score_open(
        source, destination, model=champion_model, workers=1, progress=False, explain=True
    )
    assert summary.scored == 60 and summary.errors == 0
    out = pd.read_csv(destination)
    text = " ".join(out.filter(like="reason").fillna("").astype(str).to_numpy().ravel())
    assert "None" not in text and "nan" not in text.split()
