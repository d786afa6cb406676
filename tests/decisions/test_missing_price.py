"""Price and eligibility without weight or size: minimum chargeable weight, no size check."""

from __future__ import annotations

import numpy as np

from shiprisk.data.catalogs import load_catalog
from shiprisk.data.contract import example_request
from shiprisk.decisions.candidates import candidates_for_shipment
from shiprisk.decisions.costs import SellerCosts

SIZE = ("weight_kg", "length_cm", "width_cm", "height_cm")


def test_without_weight_and_size_a_channel_is_priced_at_its_minimum_chargeable_weight() -> None:
    catalog = load_catalog()
    record = {**example_request(), **dict.fromkeys(SIZE)}
    table, ids = candidates_for_shipment(catalog, record, SellerCosts())
    assert ids
    j = np.array([catalog.channel_index[c] for c in ids])
    minimum = catalog.channel_column("min_chargeable_kg")[j]
    zone = catalog.zone_of(catalog.country_codes([record["destination_country"]]))
    at_minimum = catalog.price_usd(minimum[:1] * 0 + 1e-9, (np.ones(1),) * 3, zone)[0, j]
    assert np.isfinite(table.price_usd[0]).all()
    assert np.allclose(table.price_usd[0], at_minimum)  # 1e-9 kg bills the minimum
    assert np.isfinite(table.liability_usd[0]).all()


def test_an_oversize_parcel_is_refused_but_an_unknown_size_is_not_checked() -> None:
    catalog = load_catalog()
    big = {**example_request(), "length_cm": 390.0, "width_cm": 300.0, "height_cm": 300.0}
    unknown = {**example_request(), "length_cm": None, "width_cm": None, "height_cm": None}
    _, refused = candidates_for_shipment(catalog, big, SellerCosts())
    _, open_ = candidates_for_shipment(catalog, unknown, SellerCosts())
    assert len(open_) > len(refused)


def test_unknown_goods_and_payment_skip_their_checks() -> None:
    catalog = load_catalog()
    batteries = {**example_request(), "goods_category": "batteries", "payment_method": "cod"}
    unknown = {**example_request(), "goods_category": None, "payment_method": None}
    _, refused = candidates_for_shipment(catalog, batteries, SellerCosts())
    _, open_ = candidates_for_shipment(catalog, unknown, SellerCosts())
    assert set(refused) < set(open_)
