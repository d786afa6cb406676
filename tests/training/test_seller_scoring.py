"""A seller catalog at scoring time: prices are read from the catalog in use (a price change
needs no retraining), a channel the model never saw is scored from its catalog attributes with
a warning, and a channel quoted at request time is priced by the request's quote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shiprisk.data.catalogs import load_catalog
from shiprisk.data.contract import example_request
from shiprisk.decisions.costs import SellerCosts
from shiprisk.models.risk_model import RiskModel
from shiprisk.serving.schemas import ModelRef, ScoreRequest
from shiprisk.serving.scorer import Scorer
from shiprisk.settings import get_settings
from shiprisk.training.config import load_config
from shiprisk.training.train import time_split
from tests.training.seller_world import DHL, SELLER_CATALOG, UPS, seller_history

NEW = "fedex_intl_priority"
REF = ModelRef(name="seller", version="test", digest="test")


def _using(directory: Path) -> pytest.MonkeyPatch:
    mp = pytest.MonkeyPatch()
    mp.setenv("SHIPRISK_CATALOG_DIR", str(directory))
    get_settings.cache_clear()
    return mp


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A model trained under the seller's catalog (no MLflow: the scoring side is tested)."""
    mp = _using(SELLER_CATALOG)
    try:
        config = load_config()
        splits = time_split(seller_history(12_000, seed=3), config)
        model = RiskModel.fit(splits.train, splits.calibration, config.lightgbm)
        return model.save(tmp_path_factory.mktemp("seller-model") / "model")
    finally:
        mp.undo()
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def changed_catalog(tmp_path_factory) -> Path:
    """The seller's catalog a month later: every price doubled, a FedEx channel added that is
    quoted at request time (no list price)."""
    root = Path(shutil.copytree(SELLER_CATALOG, tmp_path_factory.mktemp("c") / "catalog"))
    raw = json.loads((root / "channels.json").read_text())
    raw["version"] = "acme-2026-12"
    for ch in raw["channels"]:
        for zone in ch["zones"].values():
            zone["base_usd"] *= 2
            zone["per_kg_usd"] *= 2
    fedex = json.loads(json.dumps(raw["channels"][2]))  # UPS's terms, its own id and carrier
    fedex.update(id=NEW, name="FedEx International Priority", carrier="fedex", pricing="quoted")
    fedex["zones"] = {z: {"transit_days": v["transit_days"]} for z, v in fedex["zones"].items()}
    raw["channels"].append(fedex)
    (root / "channels.json").write_text(json.dumps(raw))
    return root


def _scorer(model_dir: Path, catalog_dir: Path) -> Scorer:
    mp = _using(catalog_dir)
    try:  # the model is loaded under the catalog in use, as a server process does
        return Scorer(RiskModel.load(model_dir), REF, load_catalog(), SellerCosts())
    finally:
        mp.undo()
        get_settings.cache_clear()


def _request(**fields: object) -> ScoreRequest:
    body = {**example_request(), "destination_country": "GR", "weight_kg": 0.3, **fields}
    return ScoreRequest.model_validate(body)


def test_a_price_change_needs_no_retraining(saved_model: Path, changed_catalog: Path) -> None:
    before = _scorer(saved_model, SELLER_CATALOG).score(_request())
    after = _scorer(saved_model, changed_catalog).score(_request())
    assert (before.catalog.version, after.catalog.version) == ("acme-2026-11", "acme-2026-12")
    old = {c.channel_id: c for c in before.channels}
    for row in after.channels:
        if row.channel_id in old:
            assert row.p_loss == old[row.channel_id].p_loss  # same model, same risk
            assert row.price_usd == pytest.approx(2 * old[row.channel_id].price_usd, abs=0.011)


def test_a_channel_the_model_never_saw_is_scored_from_its_attributes(
    saved_model: Path, changed_catalog: Path
) -> None:
    scorer = _scorer(saved_model, changed_catalog)
    answer = scorer.score(_request(channel_id=NEW))
    warning = [w for w in answer.warnings if NEW in w]
    assert warning and "scored from its catalog attributes" in warning[0], answer.warnings
    featurizer = scorer.model.featurizer
    record = {**_request().model_dump(), "channel_id": NEW}
    seen = featurizer.computed_features({**record, "channel_id": UPS})
    new = featurizer.computed_features(record)
    unknown = featurizer.computed_features({**record, "channel_id": "no_such_channel"})
    for name in ("tracking_level", "channel_type", "liability_usd", "transit_min"):
        assert new[name] == seen[name] != unknown[name], name
    assert new["channel_id"] == unknown["channel_id"] == 0.0 != seen["channel_id"]
    # Express with full tracking: its risk is an express channel's, not the generic one's.
    probs = {c.channel_id: c.p_loss for c in answer.channels}
    assert probs[NEW] < probs[DHL]


def test_a_quoted_channel_is_priced_by_the_request(
    saved_model: Path, changed_catalog: Path
) -> None:
    scorer = _scorer(saved_model, changed_catalog)
    unquoted = {c.channel_id: c for c in scorer.score(_request(channel_id=NEW)).channels}
    assert unquoted[NEW].price_usd is None
    cheap = [
        {"channel_id": c, "quoted_price_usd": 1.0 if c == NEW else None} for c in (NEW, UPS, DHL)
    ]
    quoted = scorer.score(_request(channel_id=NEW, candidates=cheap))
    rows = {c.channel_id: c for c in quoted.channels}
    assert rows[NEW].price_usd == 1.0
    assert np.isfinite(rows[NEW].expected_cost_usd)
    assert quoted.recommendation.channel_id == NEW  # a $1 quote on an express channel


def test_a_historys_channel_names_map_onto_the_catalogs_channels(tmp_path: Path) -> None:
    """`values.channel_id` in the mapping turns the export's own names into catalog ids;
    `validate`/`train` then find no channel the catalog lacks."""
    from shiprisk.data.loaders import load_history
    from shiprisk.training.config import load_config
    from shiprisk.training.readiness import assess

    names = {
        "usps_fcmi_flat": "USPS First-Class Mail Intl",
        "usps_fcpis": "USPS FCPIS",
        UPS: "UPS Worldwide Saver",
        DHL: "DHL Express WW",
    }
    frame = seller_history(4000, seed=5)
    frame["channel_id"] = frame["channel_id"].map(names)
    export = tmp_path / "export.csv"
    frame.rename(columns={"channel_id": "Service"}).to_csv(export, index=False)
    mapping = tmp_path / "mapping.yaml"
    table = "\n".join(f"    {name}: {cid}" for cid, name in names.items())
    mapping.write_text(f"columns:\n  Service: channel_id\nvalues:\n  channel_id:\n{table}\n")
    mp = _using(SELLER_CATALOG)
    try:
        loaded = load_history(export, mapping=mapping)
        readiness = assess(loaded, load_config())
    finally:
        mp.undo()
        get_settings.cache_clear()
    assert set(loaded.train["channel_id"]) == set(names)
    assert loaded.n_train == len(frame)
    assert not [w for w in readiness.warnings if "channel_id the catalog lacks" in w]
    bundled = assess(loaded, load_config())  # the same history under the bundled catalog
    assert [w for w in bundled.warnings if "channel_id the catalog lacks" in w]
