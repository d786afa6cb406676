"""Absent fields are unknown: masking in training, NaN features, the fields a model reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiprisk.data.contract import CORE_FIELDS, OPTIONAL_FIELDS
from shiprisk.data.simulator import simulate
from shiprisk.features.masking import MASK_GROUPS, MODEL_FIELDS, mask_optional
from shiprisk.features.pipeline import ShipmentFeaturizer


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return simulate(4000, seed=5)


def test_masking_blanks_each_optional_group_at_the_rate_and_never_a_core_field(frame) -> None:
    masked = mask_optional(frame, 0.12, seed=3)
    share = masked.isna().mean()
    for name in OPTIONAL_FIELDS:
        if name in MODEL_FIELDS:
            assert 0.09 < share[name] < 0.15, (name, share[name])
    for name in CORE_FIELDS:
        if name in frame:
            assert share[name] == 0.0, name
    assert share["marketplace"] == 0.0  # no model reads it: nothing to teach
    for group in MASK_GROUPS:
        blank = masked[list(group)].isna()
        assert (blank.all(axis=1) == blank.any(axis=1)).all(), group
    pairs = masked[["weight_kg", "packaging"]].isna()
    both = (pairs["weight_kg"] & pairs["packaging"]).mean()
    assert both < 0.03  # independent groups: about 0.12^2
    assert frame.notna().all().all()  # the input is not modified


def test_an_absent_field_is_nan_in_every_feature_from_it_on_every_path(frame) -> None:
    featurizer = ShipmentFeaturizer().fit(mask_optional(frame, 0.12))
    rows = frame.head(20)
    gone = ["weight_kg", "packaging", "payment_method", "fragile"]
    X_frame = featurizer.transform(rows.drop(columns=gone))
    records = [{**r, **dict.fromkeys(gone)} for r in rows.to_dict("records")]
    X_records = featurizer.transform_records(records)
    X_one = featurizer.encode_channels(records[0], [records[0]["channel_id"]])
    assert np.array_equal(X_frame, X_records, equal_nan=True)
    assert np.array_equal(X_frame[:1], X_one, equal_nan=True)
    for feature in ("weight_kg", "log_value_per_kg", "cod_x_risk_tier", "fragile",
                    "soft_pack_valuable"):  # fmt: skip
        assert np.isnan(X_frame[:, featurizer.column(feature)]).all(), feature
    for feature in ("goods_category", "log_value_usd", "dest_risk_tier", "channel_id"):
        assert not np.isnan(X_frame[:, featurizer.column(feature)]).any(), feature
    # the code of an absent categorical the model was trained with is a category of its
    # own: past every known value (1..n), not 0 (a value never seen in training)
    for field in ("packaging", "payment_method"):
        known = featurizer.categories_[field]
        codes = X_frame[:, featurizer.column(field)]
        assert (codes == len(known) + 1).all(), field
        present = featurizer.transform(rows)[:, featurizer.column(field)]
        assert ((present >= 1) & (present <= len(known))).all(), field
    odd = featurizer.transform_records([{**records[0], "duties_terms": "DDX"}])
    assert odd[0, featurizer.column("duties_terms")] == 0.0


def test_an_absent_categorical_the_model_never_saw_stays_nan(frame) -> None:
    featurizer = ShipmentFeaturizer().fit(frame.drop(columns=["packaging"]))
    X = featurizer.transform(frame.head(5).drop(columns=["packaging"]))
    assert np.isnan(X[:, featurizer.column("packaging")]).all()
    assert (X[:, featurizer.column("goods_category")] >= 1).all()


def test_a_model_records_the_fields_it_was_trained_with(frame) -> None:
    partial = frame.drop(columns=["weight_kg", "address_quality"])
    featurizer = ShipmentFeaturizer().fit(partial)
    assert "weight_kg" not in featurizer.fields_ and "address_quality" not in featurizer.fields_
    assert {"goods_category", "declared_value", "channel_id"} <= set(featurizer.fields_)
    assert "marketplace" not in featurizer.fields_
    state = featurizer.to_dict()
    assert ShipmentFeaturizer.from_dict(state).fields_ == featurizer.fields_
    legacy = {k: v for k, v in state.items() if k != "fields"}
    assert ShipmentFeaturizer.from_dict(legacy).fields_ == list(MODEL_FIELDS)
