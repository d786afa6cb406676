"""Seller extra features (issue 14, acceptance 3): declared in the mapping, learned.

A simulated seller world where a sales-channel column (not a contract field) triples the
refusal rate on one value: the model trained with it, declared under the mapping's
``extras``, beats the model trained without it on fresh rows of that world, and the
``/score`` path uses it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from shiprisk.data.mapping import HistoryFileError, load_mapping

CHANNELS = ("web", "app", "marketplace", "phone")
SHARES = (0.4, 0.3, 0.2, 0.1)
RISKY = "phone"


def seller_world(rows: int, seed: int) -> pd.DataFrame:
    """The default world plus a sales channel; on ``phone`` the refusal odds triple."""
    from shiprisk.data.simulator import simulate

    frame = simulate(rows, seed=seed)
    rng = np.random.default_rng(seed + 1)
    channel = rng.choice(CHANNELS, size=rows, p=SHARES)
    p_reject = frame["true_p_reject"].to_numpy()
    p_loss = frame["true_p_loss"].to_numpy()
    risky = channel == RISKY
    target = np.where(risky, np.minimum(3.0 * p_reject, 0.9 - p_loss), p_reject)
    flip = (target - p_reject) / np.maximum(1.0 - p_reject - p_loss, 1e-9)
    delivered = frame["outcome"].to_numpy() == "delivered"
    frame.loc[delivered & risky & (rng.random(rows) < flip), "outcome"] = "rejected"
    frame["true_p_reject"] = target
    frame["Sales Channel"] = channel
    return frame


def _mapping(path: Path, with_extra: bool) -> Path:
    body = {}
    if with_extra:
        body["extras"] = {
            "sales_channel": {
                "column": "Sales Channel",
                "kind": "categorical",
                "values": list(CHANNELS),
            }
        }
    path.write_text(yaml.safe_dump(body))
    return path


def _fit(frame: pd.DataFrame, mapping: Path):
    from shiprisk.data.loaders import load_history
    from shiprisk.models.risk_model import RiskModel
    from shiprisk.training.config import load_config
    from shiprisk.training.train import _masked, time_split

    config = load_config()
    params = {
        k: dict(v, num_boost_round=400, early_stopping_rounds=40, refit_full_train=False)
        for k, v in config.lightgbm.items()
    }
    loaded = load_history(frame, mapping=mapping)
    splits = time_split(loaded.train, config)
    return loaded, RiskModel.fit(*_masked(splits, config), params)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("extras")
    world = seller_world(30_000, seed=21)
    with_extra = _fit(world, _mapping(root / "with.yaml", True))
    without = _fit(world, _mapping(root / "without.yaml", False))
    return with_extra, without


def test_the_declared_extra_is_a_typed_feature_of_the_model(models) -> None:
    (loaded, model), (plain, base) = models
    assert loaded.train["extra.sales_channel"].isin(CHANNELS).all()
    assert model.featurizer.feature_names_[-1] == "extra.sales_channel"
    assert len(model.featurizer.feature_names_) - 1 in model.featurizer.categorical_features_
    assert "extra.sales_channel" not in base.featurizer.feature_names_
    assert "extra.sales_channel" not in plain.train  # undeclared: never a feature


def test_the_model_with_the_extra_beats_the_model_without_on_fresh_rows(models) -> None:
    from shiprisk.training.evaluate import binary_log_loss

    (_, model), (_, base) = models
    fresh = seller_world(20_000, seed=99)
    y = (fresh["outcome"] == "rejected").to_numpy().astype(float)
    scored = fresh.rename(columns={"Sales Channel": "extra.sales_channel"})
    with_extra = binary_log_loss(y, model.predict_frame(scored)["p_reject"].to_numpy())
    without = binary_log_loss(y, base.predict_frame(fresh)["p_reject"].to_numpy())
    bayes = binary_log_loss(y, fresh["true_p_reject"].to_numpy())
    assert with_extra < without - 0.002, (with_extra, without, bayes)


def test_score_uses_the_extra(models) -> None:
    from shiprisk.data.catalogs import load_catalog
    from shiprisk.data.contract import example_request
    from shiprisk.decisions.costs import SellerCosts
    from shiprisk.serving.schemas import ModelRef, ScoreRequest
    from shiprisk.serving.scorer import Scorer

    (_, model), _ = models
    scorer = Scorer(
        model, ModelRef(name="m", version="1", digest="d"), load_catalog(), SellerCosts()
    )
    request = {**example_request(), "channel_id": "epacket"}
    p = {}
    for value in ("web", RISKY):
        answer = scorer.score(
            ScoreRequest.model_validate({**request, "extra": {"sales_channel": value}})
        )
        (row,) = [c for c in answer.channels if c.channel_id == "epacket"]
        p[value] = row.p_reject
    assert p[RISKY] > 1.8 * p["web"], p


def test_free_text_cannot_be_declared(tmp_path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"extras": {"note": {"column": "Note", "kind": "text"}}}))
    with pytest.raises(HistoryFileError, match="free text is refused"):
        load_mapping(path)
    path.write_text(yaml.safe_dump({"extras": {"tier": {"column": "T", "kind": "categorical"}}}))
    with pytest.raises(HistoryFileError, match="values"):
        load_mapping(path)
