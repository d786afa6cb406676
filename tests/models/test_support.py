"""Support: the model stores how many training shipments it saw per channel x value band x
destination tier; the counts are part of the checksummed artifact."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shiprisk.data.catalogs import load_catalog
from shiprisk.models.risk_model import (
    SUPPORT_FILE,
    ModelIntegrityError,
    RiskModel,
    model_digest,
)
from shiprisk.models.support import VALUE_BANDS, SupportGrid, lookup, value_band
from shiprisk.training.config import load_config
from shiprisk.training.train import load_training_frame, time_split


def test_value_bands_cut_at_their_documented_edges() -> None:
    values = [0.0, 24.99, 25.0, 99.99, 100.0, 299.0, 300.0, 499.99, 500.0, 1e6]
    assert value_band(values).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert len(VALUE_BANDS) == 5


def _recount(train: pd.DataFrame, label: str | None = None) -> dict[str, int]:
    """The same counts (of shipments, or of one outcome), computed independently from the
    catalog with pandas."""
    catalog = load_catalog()
    value = train["declared_value"].to_numpy() * train["currency"].map(catalog.usd_per_unit)
    tiers = {d.country: d.risk_tier for d in catalog.destinations}
    bands = pd.cut(value, [-np.inf, 25, 100, 300, 500, np.inf], right=False, labels=VALUE_BANDS)
    keys = (
        train["channel_id"].astype(str)
        + "|"
        + bands.astype(str)
        + "|tier"
        + train["destination_country"].map(tiers).fillna(2).astype(int).astype(str)
    )
    if label is None:
        return keys.value_counts().to_dict()
    return (train["outcome"] == label).groupby(keys).sum().astype(int).to_dict()


def test_the_champion_counts_the_shipments_of_its_training_slice(champion_model, sim_file):
    frame, _ = load_training_frame(sim_file)
    train = time_split(frame, load_config()).train
    assert champion_model.support == _recount(train)
    assert sum(champion_model.support.values()) == len(train)
    assert champion_model.support_events == {
        "loss": _recount(train, "lost"),
        "reject": _recount(train, "rejected"),
    }


def test_support_lookup_reads_the_cells_and_knows_when_it_has_none(champion_model) -> None:
    support = champion_model.support
    (common, n_common) = max(support.items(), key=lambda kv: kv[1])
    channel, band, tier = common.split("|")
    value = {"<25": 10.0, "25-100": 50.0, "100-300": 200.0, "300-500": 400.0, ">=500": 900.0}
    got = lookup(
        support, np.array([[channel, "no_such_line"]], dtype=object), value[band], int(tier[4:])
    )
    assert got.tolist() == [[n_common, 0]]
    assert lookup(None, np.array([channel], dtype=object), 10.0, 1).tolist() == [-1]


def test_the_dense_grid_answers_what_the_stored_cells_say(champion_model) -> None:
    """The answer path's grid (built once per model) agrees with the per-cell lookup on every
    stored cell, on channels and tiers the model never saw, and for the events minimum."""
    tables = [champion_model.support, *champion_model.support_events.values()]
    value = {"<25": 10.0, "25-100": 50.0, "100-300": 200.0, "300-500": 400.0, ">=500": 900.0}
    keys = sorted(set().union(*tables))
    ids = np.array([[k.split("|")[0], "no_such_line"] for k in keys], dtype=object)
    values = np.array([value[k.split("|")[1]] for k in keys])
    tiers = np.array([int(k.split("|")[2][4:]) for k in keys])
    got = SupportGrid(tables).lookup(ids, values, tiers)
    for k, table in enumerate(tables):
        want = lookup(table, ids, values[:, None], tiers[:, None])
        assert got[k].tolist() == want.tolist()
    assert SupportGrid(tables).lookup(ids[:1], values[:1], [7])[:, 0, 0].tolist() == [0] * 3
    countries = ["US"] * len(keys)
    shipments, events = champion_model.support_cells(ids, values, countries)
    assert shipments.tolist() == champion_model.support_of(ids, values, countries).tolist()
    mins = np.minimum.reduce(
        [
            lookup(
                t,
                ids,
                values[:, None],
                champion_model.featurizer.destination_attribute("risk_tier", countries)[:, None],
            )
            for t in tables[1:]
        ]
    )
    assert events.tolist() == mins.tolist()


def test_support_survives_save_and_load_and_is_checksummed(champion_model, tmp_path) -> None:
    path = champion_model.save(tmp_path / "m")
    loaded = RiskModel.load(path)
    assert loaded.support == champion_model.support
    assert loaded.support_events == champion_model.support_events
    other = RiskModel(
        champion_model.featurizer,
        champion_model.boosters,
        champion_model.calibrators,
        champion_model.info,
        support={**champion_model.support, "epacket|<25|tier1": 1},
        support_events=champion_model.support_events,
    )
    assert model_digest(other.save(tmp_path / "other")) != model_digest(path)
    stored = json.loads((path / SUPPORT_FILE).read_text())
    stored["events"]["loss"][next(iter(stored["events"]["loss"]))] += 1
    (path / SUPPORT_FILE).write_text(json.dumps(stored))
    with pytest.raises(ModelIntegrityError, match="checksum"):
        RiskModel.load(path)
