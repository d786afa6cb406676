"""The simulated world: contract-valid, eligible, deterministic, and calibrated to its own
true probabilities (observed rates within sampling error of mean(p_true))."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiprisk.data.catalogs import CHANNEL_TYPES, load_catalog
from shiprisk.data.contract import (
    GOODS_CATEGORIES,
    HISTORY_FIELDS,
    OUTCOMES,
    SHIPMENT_FIELDS,
    HistoryRow,
)
from shiprisk.data.physics import counterfactual_probabilities, true_probabilities
from shiprisk.data.simulator import TRUE_COLUMNS, generate_to_parquet, simulate
from shiprisk.data.world import WorldParams, default_world, shifted_world

ROWS = 150_000
README = Path(__file__).resolve().parents[2] / "data" / "README.md"


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture(scope="session")
def big(catalog) -> pd.DataFrame:
    """One large default-world history shared by the statistical tests."""
    frame = simulate(ROWS, seed=2024)
    frame["channel_type"] = frame["channel_id"].map(
        {c.id: c.channel_type for c in catalog.channels}
    )
    frame["risk_tier"] = frame["destination_country"].map(
        {d.country: d.risk_tier for d in catalog.destinations}
    )
    return frame


@pytest.fixture(scope="session")
def counterfactual(big, catalog):
    return counterfactual_probabilities(big, catalog=catalog)


def _history(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[*HISTORY_FIELDS, *TRUE_COLUMNS]]


# -- shape and contract -------------------------------------------------------------------


def test_columns_types_and_ids(big):
    frame = _history(big)
    assert list(frame.columns) == [*HISTORY_FIELDS, *TRUE_COLUMNS]
    assert frame["shipment_id"].is_unique
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert frame["created_at"].is_monotonic_increasing
    assert set(frame["outcome"].unique()) == set(OUTCOMES)
    assert all(isinstance(d, date) for d in frame["outcome_date"].iloc[:1000])
    created_day = frame["created_at"].dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    outcome_day = frame["outcome_date"].to_numpy().astype("datetime64[D]")
    assert (outcome_day >= created_day).all()
    assert (frame["buyer_prior_refusals"] <= frame["buyer_prior_orders"]).all()
    assert frame[list(TRUE_COLUMNS)].notna().all().all()


def test_time_range_covers_the_world(big):
    world = default_world()
    days = big["created_at"].dt.date
    assert days.min() >= world.start_date and days.max() <= world.end_date
    assert (days.max() - days.min()).days >= 360
    month = big["created_at"].dt.tz_localize(None).dt.to_period("M")
    per_day = month.value_counts() / month.value_counts().index.days_in_month
    assert per_day[pd.Period("2024-11")] > 1.6 * per_day[pd.Period("2024-02")]  # peak vs dip
    h1_2024 = sum(per_day[pd.Period(f"2024-{m:02d}")] for m in range(1, 7))
    h1_2025 = sum(per_day[pd.Period(f"2025-{m:02d}")] for m in range(1, 7))
    assert h1_2025 > 1.05 * h1_2024  # volume grows


def test_sample_rows_validate_with_the_contract(big):
    rows = _history(big).sample(300, random_state=1)[list(HISTORY_FIELDS)]
    for record in rows.to_dict(orient="records"):
        HistoryRow.model_validate(record)


def test_every_row_passes_the_vectorised_contract_validator(big):
    from shiprisk.data.validation import validate_frame

    result = validate_frame(_history(big), "history")
    assert result.valid_mask.all(), result.errors.head()


def test_probabilities_are_proper(big):
    p_loss, p_reject = big["true_p_loss"], big["true_p_reject"]
    assert (p_loss > 0).all() and (p_reject > 0).all()
    assert (p_loss + p_reject < 1).all()


def test_overall_rates_are_in_the_target_range(big):
    assert 0.008 <= big["true_p_loss"].mean() <= 0.015
    assert 0.06 <= big["true_p_reject"].mean() <= 0.12


# -- eligibility and channel support ----------------------------------------------------


def test_every_row_is_eligible_on_its_channel(big, catalog, counterfactual):
    """Check with the catalog directly, not through the simulator's own helper."""
    country = catalog.country_codes(big["destination_country"].to_numpy())
    goods = pd.Categorical(big["goods_category"], categories=GOODS_CATEGORIES).codes
    value_usd = big["declared_value"].to_numpy() * catalog.usd_rate(big["currency"].to_numpy())
    elig = catalog.eligible(
        weight_kg=big["weight_kg"].to_numpy(),
        dims_cm=tuple(big[c].to_numpy() for c in ("length_cm", "width_cm", "height_cm")),
        country_code=country,
        goods_code=goods,
        is_cod=(big["payment_method"] == "cod").to_numpy(),
        value_usd=value_usd,
    )
    chan = big["channel_id"].map(catalog.channel_index).to_numpy()
    assert elig[np.arange(len(big)), chan].all()
    np.testing.assert_array_equal(elig, counterfactual["eligible"])


def test_cod_only_where_a_cod_channel_takes_it(big, catalog):
    cod = big[big["payment_method"] == "cod"]
    cod_channels = {c.id for c in catalog.channels if c.eligibility.cod}
    assert len(cod) > 0.05 * len(big)
    assert set(cod["channel_id"]) <= cod_channels
    tiers = cod["risk_tier"].value_counts(normalize=True)
    assert tiers.get(2, 0) + tiers.get(3, 0) > 0.9


def test_every_channel_and_type_gets_real_support(big, catalog):
    shares = big["channel_id"].value_counts(normalize=True)
    assert set(shares.index) == set(catalog.channel_ids)
    assert shares.min() > 0.005
    types = big["channel_type"].value_counts(normalize=True)
    assert set(types.index) == set(CHANNEL_TYPES) and types.min() > 0.05


def test_choice_is_confounded_with_value(big, catalog):
    """Valuable parcels go tracked and express (the history is not a randomised trial)."""
    prepaid = big[big["payment_method"] == "prepaid"]
    value = prepaid["declared_value"] * catalog.usd_rate(prepaid["currency"].to_numpy())
    quintile = pd.qcut(value, 5, labels=False)
    shares = pd.crosstab(quintile, prepaid["channel_type"], normalize="index")
    assert shares.loc[4, "postal_untracked"] < 0.25 * shares.loc[0, "postal_untracked"]
    assert shares.loc[4, "express"] > 1.5 * shares.loc[0, "express"]


# -- determinism --------------------------------------------------------------------------


def test_same_seed_same_frame_other_seed_other_frame():
    a = simulate(3_000, seed=11)
    pd.testing.assert_frame_equal(a, simulate(3_000, seed=11))
    b = simulate(3_000, seed=12)
    assert not a["declared_value"].equals(b["declared_value"])
    assert (a["channel_id"] != b["channel_id"]).mean() > 0.3


def test_chunked_draw_is_deterministic_across_chunks(monkeypatch):
    import shiprisk.data.simulator as sim

    monkeypatch.setattr(sim, "CHUNK_ROWS", 1_000)
    a = simulate(2_500, seed=3)
    pd.testing.assert_frame_equal(a, simulate(2_500, seed=3))
    assert a["shipment_id"].is_unique and len(a) == 2_500


# -- calibration: outcomes drawn from the stored true probabilities -----------------------


def _z(observed: pd.Series, p: pd.Series) -> float:
    sigma = np.sqrt((p * (1 - p)).sum()) / len(p)
    return abs(observed.mean() - p.mean()) / sigma


@pytest.mark.parametrize("by", [None, "risk_tier", "channel_type", "payment_method",
                                "address_quality"])  # fmt: skip
def test_observed_rates_match_true_probabilities(big, by):
    groups = [("all", big)] if by is None else list(big.groupby(by))
    for name, g in groups:
        assert len(g) > 1_000, name
        z_loss = _z(g["outcome"] == "lost", g["true_p_loss"])
        z_reject = _z(g["outcome"] == "rejected", g["true_p_reject"])
        assert z_loss <= 4 and z_reject <= 4, (by, name, z_loss, z_reject)


def test_outcome_dates_follow_the_outcome(big, catalog):
    world = default_world()
    days = (
        big["outcome_date"].to_numpy().astype("datetime64[D]")
        - big["created_at"].dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    ).astype(int)
    lost = (big["outcome"] == "lost").to_numpy()
    lo, hi = world.lost_declared_days
    assert days[lost].min() >= lo and days[lost].max() <= hi
    hold = big["destination_country"].map(
        {d.country: d.customs_hold_days for d in catalog.destinations}
    )
    zone = catalog.zone_of(catalog.country_codes(big["destination_country"].to_numpy()))
    tmin, tmax = catalog.transit_days(zone)
    chan = big["channel_id"].map(catalog.channel_index).to_numpy()
    rows = np.arange(len(big))
    lo_t = tmin[rows, chan] + hold.to_numpy()
    hi_t = tmax[rows, chan] + hold.to_numpy()
    delivered = (big["outcome"] == "delivered").to_numpy()
    assert (days[delivered] >= lo_t[delivered]).all() and (days[delivered] <= hi_t[delivered]).all()
    rejected = (big["outcome"] == "rejected").to_numpy()
    r_lo, r_hi = world.return_days
    assert (days[rejected] >= lo_t[rejected] + r_lo).all()
    assert (days[rejected] <= hi_t[rejected] + r_hi).all()


# -- true and counterfactual probabilities ------------------------------------------------


def test_true_probabilities_reproduce_the_stored_ones_from_contract_fields(big, catalog):
    sample = big.sample(20_000, random_state=3)
    fields_only = sample[[*SHIPMENT_FIELDS, "channel_id"]].iloc[:, ::-1].reset_index(drop=True)
    p_loss, p_reject = true_probabilities(fields_only, catalog=catalog)
    np.testing.assert_allclose(p_loss, sample["true_p_loss"], rtol=1e-12)
    np.testing.assert_allclose(p_reject, sample["true_p_reject"], rtol=1e-12)


def test_counterfactual_at_the_historical_channel_equals_the_stored(big, counterfactual, catalog):
    chan = big["channel_id"].map(catalog.channel_index).to_numpy()
    rows = np.arange(len(big))
    n, c = len(big), len(catalog.channel_ids)
    for key in ("eligible", "p_loss", "p_reject"):
        assert counterfactual[key].shape == (n, c)
    np.testing.assert_allclose(counterfactual["p_loss"][rows, chan], big["true_p_loss"])
    np.testing.assert_allclose(counterfactual["p_reject"][rows, chan], big["true_p_reject"])
    elig = counterfactual["eligible"]
    assert np.isnan(counterfactual["p_loss"][~elig]).all()
    assert np.isfinite(counterfactual["p_reject"][elig]).all()


def test_true_probabilities_on_other_channels_match_counterfactual(big, counterfactual, catalog):
    rows = np.arange(5_000)
    sub = big.iloc[rows]
    dhl = catalog.channel_index["dhl_express"]
    p_loss, p_reject = true_probabilities(sub, channel_ids=["dhl_express"] * len(sub))
    ok = counterfactual["eligible"][rows, dhl]
    assert ok.mean() > 0.8 and np.isfinite(p_loss).all()  # COD rows cannot go by DHL
    np.testing.assert_allclose(p_loss[ok], counterfactual["p_loss"][rows, dhl][ok])
    np.testing.assert_allclose(p_reject[ok], counterfactual["p_reject"][rows, dhl][ok])


def _mean_cf(frame: pd.DataFrame, catalog, **changes) -> tuple[float, float]:
    p_loss, p_reject = true_probabilities(frame.assign(**changes), catalog=catalog)
    return float(np.mean(p_loss)), float(np.mean(p_reject))


def test_effects_point_the_documented_way(big, catalog):
    """Counterfactual edits of one field move the truth in the documented direction."""
    sub = big[big["channel_type"] == "postal_tracked"].head(5_000)
    verified = _mean_cf(sub, catalog, address_quality="verified")
    unverified = _mean_cf(sub, catalog, address_quality="unverified")
    assert unverified[0] > 1.3 * verified[0] and unverified[1] > 1.3 * verified[1]
    nov = _mean_cf(sub, catalog, created_at=pd.Timestamp("2024-11-15", tz="UTC"))
    oct_ = _mean_cf(sub, catalog, created_at=pd.Timestamp("2024-10-15", tz="UTC"))
    assert nov[0] == pytest.approx(1.4 * oct_[0], rel=0.02)
    us = _mean_cf(sub, catalog, destination_country="US")
    india = _mean_cf(sub, catalog, destination_country="IN")
    assert india[0] > 1.8 * us[0] and india[1] > 2.0 * us[1]
    cod_rows = big[big["payment_method"] == "cod"].head(3_000)
    prepaid = _mean_cf(cod_rows, catalog, payment_method="prepaid")
    cod = _mean_cf(cod_rows, catalog, payment_method="cod")
    assert cod[1] > 3 * prepaid[1]
    untracked = true_probabilities(sub, channel_ids=["cnpost_untracked"] * len(sub))[0]
    express = true_probabilities(sub, channel_ids=["dhl_express"] * len(sub))[0]
    assert np.mean(untracked) > 4 * np.mean(express)


def test_unknown_channel_is_an_error(big):
    with pytest.raises(ValueError, match="channel_id"):
        true_probabilities(big.head(3), channel_ids=["teleport"] * 3)


# -- worlds and files ---------------------------------------------------------------------


def test_world_params_are_documented_and_validated():
    text = README.read_text()
    for f in dataclasses.fields(WorldParams):
        assert f.metadata.get("doc") and f.metadata.get("source"), f.name
        assert f"`{f.name}`" in text, f"README does not document {f.name}"
    with pytest.raises(ValueError, match="one year"):
        WorldParams(end_date=date(2024, 6, 30))


def test_shifted_world_moves_time_destinations_and_channels(catalog):
    base, shifted = default_world(), shifted_world()
    assert shifted.start_date > base.end_date
    a = simulate(30_000, seed=5)
    b = simulate(30_000, seed=5, world=shifted)
    assert b["created_at"].min().date() >= shifted.start_date
    tiers = {d.country: d.risk_tier for d in catalog.destinations}
    share_a = (a["destination_country"].map(tiers) > 1).mean()
    share_b = (b["destination_country"].map(tiers) > 1).mean()
    assert share_b > share_a + 0.1
    mix_a = a["channel_id"].value_counts(normalize=True)
    mix_b = b["channel_id"].value_counts(normalize=True)
    assert 0.5 * mix_a.sub(mix_b, fill_value=0).abs().sum() > 0.05


def test_generate_to_parquet_round_trips(tmp_path):
    target = tmp_path / "nested" / "dir" / "shipments.parquet"
    path = generate_to_parquet(rows=4_000, seed=9, output=target)
    assert path == target and path.exists()
    assert [p.name for p in target.parent.iterdir()] == ["shipments.parquet"]  # no temp left
    pd.testing.assert_frame_equal(pd.read_parquet(path), simulate(4_000, seed=9))
    shifted = generate_to_parquet(rows=1_000, seed=9, output=target, world="shifted")
    assert pd.read_parquet(shifted)["created_at"].min().year == 2025
    with pytest.raises(ValueError, match="unknown world"):
        generate_to_parquet(rows=10, seed=1, output=target, world="nowhere")
