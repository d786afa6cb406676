"""Acceptance 1 of issue 15: a seller's own catalog (4 channels the bundled catalog lacks,
destinations beyond its 53) goes history -> train -> promote -> serve.

Everything runs as a seller would run it, in a store of its own (its own SHIPRISK_HOME,
MLflow SQLite store and BentoML home, so the session champion is untouched): `shiprisk train
--catalog`, `shiprisk promote`, then a real BentoML server started with SHIPRISK_CATALOG_DIR.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shiprisk.data.catalogs import load_catalog
from shiprisk.data.contract import example_request
from tests.conftest import start_server
from tests.training.seller_world import (
    DHL,
    IMPORT_CHAMPION,
    SELLER_CATALOG,
    UPS,
    isolated_env,
    python_in,
    run_cli,
    seller_history,
    write_history,
)

ROWS = 12_000  # about 4,400 rows fall on the seller's 13 destinations


@pytest.fixture(scope="module")
def seller_server(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    home = tmp_path_factory.mktemp("seller")
    env = isolated_env(home)
    history = write_history(seller_history(ROWS, seed=3), home / "history.parquet")
    trained = run_cli(["train", "--data", str(history), "--catalog", str(SELLER_CATALOG)], env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    promoted = run_cli(["promote"], env)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    tag = python_in(env, IMPORT_CHAMPION)
    served = env | {"SHIPRISK_CATALOG_DIR": str(SELLER_CATALOG)}
    srv = start_server(tag, served, home / "server.log")
    try:
        yield srv.url, env
    finally:
        srv.stop()


def _score(url: str, **fields: object) -> dict:
    body = {**example_request(), **fields}
    answer = httpx.post(f"{url}/score", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_score_recommends_among_the_sellers_channels(seller_server) -> None:
    url, _ = seller_server
    seller = load_catalog(SELLER_CATALOG)
    assert not set(seller.channel_ids) & set(load_catalog().channel_ids)  # none bundled
    # Iceland and Greece are not among the bundled 53 destinations.
    assert {"IS", "GR"} <= set(seller.countries) - set(load_catalog().countries)
    for country in ("IS", "GR", "DE"):
        answer = _score(url, destination_country=country, weight_kg=0.3, declared_value=120.0)
        ids = [c["channel_id"] for c in answer["channels"]]
        assert set(ids) == set(seller.channel_ids), ids  # all four accept a 300 g parcel
        assert answer["recommendation"]["channel_id"] in seller.channel_ids
        assert answer["catalog"] == {"version": "acme-2026-11", "source": "seller", "origin": "US"}
        assert not [w for w in answer["warnings"] if "not in the" in w], answer["warnings"]
        # Priced from the seller's own table, at its zone for the country.
        zone = seller.destination_by_country[country].zone
        ups = next(c for c in answer["channels"] if c["channel_id"] == UPS)
        row = seller.channels[seller.channel_index[UPS]].zones[zone]
        billed = max(0.3, 30 * 20 * 10 / 5000, 0.5)  # example dims, volumetric divisor 5000
        assert ups["price_usd"] == pytest.approx(row.base_usd + row.per_kg_usd * billed, abs=0.01)


def test_probabilities_differ_where_the_outcomes_differed(seller_server) -> None:
    """DHL and UPS share type, tracking and liability; only DHL lost ~15% of its parcels:
    the served p_loss says so, for every destination asked about."""
    url, _ = seller_server
    for country in ("IS", "GR", "GB", "BR"):
        answer = _score(url, destination_country=country, weight_kg=0.3, declared_value=120.0)
        p = {c["channel_id"]: c["p_loss"] for c in answer["channels"]}
        assert p[DHL] > 3 * p[UPS], (country, p)
        assert answer["recommendation"]["channel_id"] != DHL, (country, p)


def test_a_bundled_channel_is_unknown_to_the_sellers_catalog(seller_server) -> None:
    url, _ = seller_server
    answer = _score(url, channel_id="cnpost_untracked", destination_country="GB")
    assert any("cnpost_untracked is not in the channel catalog" in w for w in answer["warnings"])
    assert answer["recommendation"]["channel_id"] in load_catalog(SELLER_CATALOG).channel_ids
