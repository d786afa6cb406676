"""The reference catalogs load, are mutually consistent, and the vectorised helpers agree
with a plain per-shipment reading of the catalog."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from shiprisk.data.catalogs import (
    CHANNEL_TYPES,
    Channel,
    Currency,
    Destination,
    Eligibility,
    Insurance,
    ZonePrice,
    load_catalog,
    reference_dir,
)
from shiprisk.data.contract import CURRENCIES, GOODS_CATEGORIES

README = Path(__file__).resolve().parents[2] / "data" / "README.md"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_every_named_destination_exists(catalog):
    countries = set(catalog.countries)
    for ch in catalog.channels:
        listed = ch.eligibility.destinations
        named = [] if listed == "all" else list(listed)
        assert set(named) <= countries, ch.id
        assert set(ch.eligibility.excluded_destinations) <= countries, ch.id


def test_every_served_destination_is_priced(catalog):
    """A channel serves a country only if it prices the country's zone (and serves some)."""
    for j, ch in enumerate(catalog.channels):
        listed = ch.eligibility.destinations
        named = catalog.countries if listed == "all" else listed
        served = [c for c in named if c not in ch.eligibility.excluded_destinations]
        if listed != "all":
            for c in served:
                assert catalog.destination_by_country[c].zone in ch.zones, (ch.id, c)
        for c in served:
            i = catalog.country_index[c]
            priced = catalog.destination_by_country[c].zone in ch.zones
            assert catalog._serves[i, j] == priced, (ch.id, c)
        assert catalog._serves[:, j].any(), f"{ch.id} serves nobody"


def test_every_contract_currency_has_a_positive_rate(catalog):
    assert set(CURRENCIES) <= set(catalog.currencies)
    rates = catalog.usd_rate(list(CURRENCIES))
    assert np.all(np.isfinite(rates)) and np.all(rates > 0)
    assert catalog.currencies["USD"].usd_per_unit == 1.0


def test_catalog_covers_every_tier_and_channel_type(catalog):
    assert {d.risk_tier for d in catalog.destinations} == {1, 2, 3}
    assert {d.customs_tier for d in catalog.destinations} == {1, 2, 3}
    assert {c.channel_type for c in catalog.channels} == set(CHANNEL_TYPES)
    assert any(c.eligibility.cod for c in catalog.channels)


def _copy_reference(tmp_path: Path) -> Path:
    target = tmp_path / "reference"
    shutil.copytree(reference_dir(), target)
    return target


def test_unknown_destination_in_channel_catalog_is_refused(tmp_path):
    root = _copy_reference(tmp_path)
    raw = json.loads((root / "channels.json").read_text())
    epacket = next(c for c in raw["channels"] if c["id"] == "epacket")
    epacket["eligibility"]["destinations"].append("ZZ")
    (root / "channels.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="ZZ"):
        load_catalog(str(root))


def test_named_destination_without_price_is_refused(tmp_path):
    root = _copy_reference(tmp_path)
    raw = json.loads((root / "channels.json").read_text())
    tnt = next(c for c in raw["channels"] if c["id"] == "tnt_economy")
    tnt["eligibility"]["destinations"].append("US")  # zone 4, tnt prices zone 3 only
    (root / "channels.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="no price"):
        load_catalog(str(root))


def test_missing_currency_rate_is_refused(tmp_path):
    root = _copy_reference(tmp_path)
    path = root / "currencies.csv"
    lines = [x for x in path.read_text().splitlines() if not x.startswith("BRL,")]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="BRL"):
        load_catalog(str(root))


def _eligible_by_hand(ch: Channel, dest: Destination, weight, dims, goods, cod, value_usd):
    e = ch.eligibility
    longest = max(dims)
    girth = longest + 2 * (sum(dims) - longest)
    listed = e.destinations == "all" or dest.country in e.destinations
    return bool(
        weight <= e.max_weight_kg
        and longest <= e.max_length_cm
        and girth <= e.max_girth_cm
        and value_usd <= e.max_value_usd
        and listed
        and dest.country not in e.excluded_destinations
        and dest.zone in ch.zones
        and goods not in e.refused_goods
        and (e.cod or not cod)
    )


def test_vectorised_eligibility_price_and_transit_match_a_scalar_reading(catalog):
    rng = np.random.default_rng(5)
    n = 400
    weight = np.round(rng.lognormal(0.0, 1.2, n), 3)
    dims = tuple(np.round(rng.uniform(5, 130, n), 1) for _ in range(3))
    country = rng.integers(0, len(catalog.countries), n)
    goods = rng.integers(0, len(GOODS_CATEGORIES), n)
    cod = rng.random(n) < 0.3
    value = rng.lognormal(4.0, 1.5, n)
    elig = catalog.eligible(weight_kg=weight, dims_cm=dims, country_code=country,
                            goods_code=goods, is_cod=cod, value_usd=value)  # fmt: skip
    zone = catalog.zone_of(country)
    price = catalog.price_usd(weight, dims, zone)
    tmin, tmax = catalog.transit_days(zone)
    for i in range(n):
        dest = catalog.destinations[country[i]]
        d = (dims[0][i], dims[1][i], dims[2][i])
        for j, ch in enumerate(catalog.channels):
            expected = _eligible_by_hand(ch, dest, weight[i], d, GOODS_CATEGORIES[goods[i]],
                                         cod[i], value[i])  # fmt: skip
            assert elig[i, j] == expected, (i, ch.id)
            zp = ch.zones.get(dest.zone)
            if zp is None:
                assert np.isnan(price[i, j]) and np.isnan(tmin[i, j])
                continue
            volume = d[0] * d[1] * d[2]
            vol_kg = volume / ch.volumetric_divisor if ch.volumetric_divisor else 0.0
            billed = max(weight[i], vol_kg, ch.min_chargeable_kg)
            assert price[i, j] == pytest.approx(zp.base_usd + zp.per_kg_usd * billed)
            assert (tmin[i, j], tmax[i, j]) == tuple(zp.transit_days)
    assert elig.any() and not elig.all()


def test_unknown_country_uses_the_unknown_row(catalog):
    codes = catalog.country_codes(["US", "XX"])
    assert codes[0] == catalog.country_index["US"]
    assert codes[1] == len(catalog.countries)
    assert catalog.destination_column("risk_tier")[codes[1]] == 2


def test_readme_documents_every_reference_field():
    text = README.read_text()
    models = (Channel, ZonePrice, Insurance, Eligibility, Destination, Currency)
    names = [name for model in models for name in model.model_fields]
    with (reference_dir() / "destinations.csv").open(newline="") as fh:
        names += next(csv.reader(fh))
    missing = sorted({n for n in names if f"`{n}`" not in text})
    assert not missing, f"README lacks {missing}"
