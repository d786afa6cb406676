"""The one feature pipeline: both entry points agree, unknowns never crash, JSON round-trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shiprisk.features import pipeline
from shiprisk.features.pipeline import (
    CATEGORICAL_FEATURES,
    FEATURES,
    MissingFeaturesError,
    ShipmentFeaturizer,
)


@pytest.fixture(scope="module")
def fitted(sim_frame):
    return ShipmentFeaturizer().fit(sim_frame.iloc[:20_000])


@pytest.fixture(scope="module")
def mixed_rows(sim_frame) -> pd.DataFrame:
    """1 000 rows, a fifth of them with categories the pipeline never saw."""
    rows = sim_frame.iloc[25_000:26_000].copy().reset_index(drop=True)
    odd = rows.index % 5 == 0
    rows.loc[odd, "destination_country"] = "ZZ"
    rows.loc[rows.index % 7 == 0, "channel_id"] = "brand_new_line"
    rows.loc[rows.index % 11 == 0, "marketplace"] = "tiktok_shop"
    rows.loc[rows.index % 13 == 0, "created_at"] = pd.Timestamp("2025-11-28 23:30", tz="UTC")
    return rows


def test_fit_follows_the_estimator_contract(sim_frame) -> None:
    featurizer = ShipmentFeaturizer()
    assert featurizer.fit(sim_frame.iloc[:2000]) is featurizer
    learned = [a for a in vars(featurizer) if a.endswith("_") and not a.startswith("_")]
    assert {"categories_", "feature_names_", "categorical_features_"} <= set(learned)
    assert featurizer.feature_names_ == list(FEATURES)
    assert [FEATURES[i] for i in featurizer.categorical_features_] == list(CATEGORICAL_FEATURES)


def test_fast_path_equals_transform_on_1000_rows_with_unknowns(fitted, mixed_rows) -> None:
    batch = fitted.transform(mixed_rows)
    records = mixed_rows.to_dict(orient="records")
    fast = fitted.transform_records(records)
    assert batch.dtype == fast.dtype == np.float64
    assert batch.shape == (1000, len(FEATURES))
    np.testing.assert_array_equal(batch, fast)


def test_unknown_categories_map_to_the_reserved_code(fitted, mixed_rows) -> None:
    X = fitted.transform(mixed_rows)
    col = {f: i for i, f in enumerate(FEATURES)}
    new = (mixed_rows["channel_id"] == "brand_new_line").to_numpy()
    assert (X[new, col["channel_id"]] == 0).all() and (X[new, col["channel_type"]] == 0).all()
    assert (X[~new, col["channel_id"]] > 0).all()
    zz = (mixed_rows["destination_country"] == "ZZ").to_numpy()
    dest = [col[f"dest_{a}"] for a in ("zone", "risk_tier", "customs_tier", "cod_share")]
    unknown = np.asarray(fitted.unknown_destination_)[:4]
    assert (X[np.ix_(zz, dest)] == unknown).all()
    assert not fitted.is_known("destination_country", "ZZ")
    assert fitted.is_known("destination_country", "US")
    assert not fitted.is_known("marketplace", "tiktok_shop")
    assert np.isfinite(X[:, [col["transit_total"], col["dest_zone"]]]).all()


def test_encode_channels_is_the_fast_path_per_channel(fitted, mixed_rows) -> None:
    record = mixed_rows.iloc[3].to_dict()
    channels = ["epacket", "dhl_express", "brand_new_line"]
    encoded = fitted.encode_channels(record, channels)
    expected = fitted.transform(pd.DataFrame([{**record, "channel_id": c} for c in channels]))
    np.testing.assert_array_equal(encoded, expected)


def test_pipeline_round_trips_through_json(fitted, mixed_rows) -> None:
    state = json.loads(json.dumps(fitted.to_dict()))
    reloaded = ShipmentFeaturizer.from_dict(state)
    np.testing.assert_array_equal(reloaded.transform(mixed_rows), fitted.transform(mixed_rows))


def _stored_as(fitted: ShipmentFeaturizer, names: list[str]) -> dict:
    """The fitted state as if a model had been trained on ``names`` (its own list)."""
    state = json.loads(json.dumps(fitted.to_dict()))
    own = state["feature_names"]
    state["feature_names"] = names
    state["reference"] = [state["reference"][own.index(f)] if f in own else 0.0 for f in names]
    state["categorical_features"] = [
        names.index(own[j]) for j in state["categorical_features"] if own[j] in names
    ]
    return state


def test_a_stored_list_is_gathered_from_the_codes_features_on_every_path(
    fitted, mixed_rows
) -> None:
    """A model trained before some features existed, in another order: its columns are the
    code's columns gathered in its order, bit-identical on the batch and online paths."""
    names = [f for f in reversed(FEATURES) if f not in ("refusal_rate", "longest_cm")]
    model = ShipmentFeaturizer.from_dict(_stored_as(fitted, names))
    full = fitted.transform(mixed_rows)
    gathered = model.transform(mixed_rows)
    np.testing.assert_array_equal(gathered, full[:, [FEATURES.index(f) for f in names]])
    records = mixed_rows.to_dict(orient="records")
    np.testing.assert_array_equal(model.transform_records(records), gathered)
    channels = ["epacket", "dhl_express", "cnpost_untracked", "brand_new_line"]
    for record in records[:50]:
        expected = model.transform(pd.DataFrame([{**record, "channel_id": c} for c in channels]))
        np.testing.assert_array_equal(model.encode_channels(record, channels), expected)
    rows = np.array([0, 0, 3, 7, 999])
    pairs = ["epacket", "ems", "dhl_express", "brand_new_line", "aramex"]
    np.testing.assert_array_equal(
        model.transform_pairs(mixed_rows, rows, pairs),
        model.transform(mixed_rows.take(rows).assign(channel_id=pairs)),
    )
    assert sorted(names[j] for j in model.categorical_features_) == sorted(CATEGORICAL_FEATURES)
    assert model.column("months_since_2000") == names.index("months_since_2000")
    assert model.column("longest_cm") is None


def test_from_dict_refuses_a_feature_the_code_does_not_compute(fitted) -> None:
    state = _stored_as(fitted, [*FEATURES, "parcel_age_days"])
    with pytest.raises(MissingFeaturesError, match="parcel_age_days") as refused:
        ShipmentFeaturizer.from_dict(state)
    assert refused.value.missing == ("parcel_age_days",)
    assert isinstance(refused.value, ValueError)


def test_from_dict_refuses_a_reference_of_another_width(fitted) -> None:
    state = fitted.to_dict()
    state["reference"] = state["reference"][:-1]
    with pytest.raises(ValueError, match="inconsistent"):
        ShipmentFeaturizer.from_dict(state)


def test_a_derived_feature_added_to_the_code_is_computed_on_both_paths(
    sim_frame, mixed_rows, monkeypatch
) -> None:
    """Adding a feature is one name in FEATURES plus its formula; a pipeline fitted
    afterwards lists it last and both paths compute it identically."""
    monkeypatch.setattr(pipeline, "FEATURES", (*FEATURES, "log_weight"))
    monkeypatch.setitem(pipeline.DERIVED_FEATURES, "log_weight", lambda v: np.log1p(v["weight_kg"]))
    grown = ShipmentFeaturizer().fit(sim_frame.iloc[:5000])
    assert grown.feature_names_ == [*FEATURES, "log_weight"]
    X = grown.transform(mixed_rows)
    np.testing.assert_array_equal(X[:, -1], np.log1p(mixed_rows["weight_kg"].to_numpy()))
    np.testing.assert_array_equal(grown.transform_records(mixed_rows.to_dict("records")), X)
    record = mixed_rows.iloc[3].to_dict()
    expected = grown.transform(pd.DataFrame([{**record, "channel_id": c} for c in ("ems", "x")]))
    np.testing.assert_array_equal(grown.encode_channels(record, ["ems", "x"]), expected)


def test_timezone_of_the_record_does_not_change_features(fitted, mixed_rows) -> None:
    record = mixed_rows.iloc[13].to_dict()  # 2025-11-28 23:30 UTC: still November in UTC
    shifted = {**record, "created_at": "2025-11-29T07:30:00+08:00"}
    np.testing.assert_array_equal(
        fitted.transform_records([record]), fitted.transform_records([shifted])
    )


def test_one_shipment_on_every_channel_equals_transform_bit_for_bit(fitted, mixed_rows) -> None:
    """The online shape (shipment encoded once, as scalars) on 200 rows x 4 channels,
    unknown country, channel, marketplace and timestamps included."""
    channels = ["epacket", "dhl_express", "cnpost_untracked", "brand_new_line"]
    for record in mixed_rows.iloc[:200].to_dict(orient="records"):
        encoded = fitted.encode_channels(record, channels)
        expected = fitted.transform(pd.DataFrame([{**record, "channel_id": c} for c in channels]))
        np.testing.assert_array_equal(encoded, expected)


def test_transform_pairs_equals_transform_of_the_repeated_rows(fitted, mixed_rows) -> None:
    rows = np.array([0, 0, 3, 7, 7, 7, 999])
    channels = ["epacket", "ems", "dhl_express", "brand_new_line", "aramex", "epacket", "ems"]
    repeated = mixed_rows.take(rows).assign(channel_id=channels)
    np.testing.assert_array_equal(
        fitted.transform_pairs(mixed_rows, rows, channels), fitted.transform(repeated)
    )
    assert fitted.transform(mixed_rows.iloc[:0]).shape == (0, len(FEATURES))
