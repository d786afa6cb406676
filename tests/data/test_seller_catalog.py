"""A seller's own catalog goes through the same reader as the bundled one: its formats
(docs/catalog.md), its version, and one-line errors naming file, row, field and reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shiprisk.data.catalogs import CatalogError, load_catalog, reference_dir

EXAMPLE = Path(__file__).parents[2] / "examples" / "catalog"


@pytest.fixture
def seller(tmp_path: Path) -> Path:
    """A writable copy of the example seller catalog."""
    return Path(shutil.copytree(EXAMPLE, tmp_path / "catalog"))


def _channels(root: Path) -> dict:
    return json.loads((root / "channels.json").read_text())


def _write_channels(root: Path, raw: dict) -> None:
    (root / "channels.json").write_text(json.dumps(raw))


def _error(root: Path) -> str:
    with pytest.raises(CatalogError) as info:
        load_catalog(root)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_the_example_catalog_is_a_us_sellers_own() -> None:
    catalog = load_catalog(EXAMPLE)
    bundled = load_catalog(reference_dir())
    assert (catalog.source, catalog.origin, catalog.version) == ("seller", "US", "acme-2026-11")
    assert bundled.source == "bundled" and bundled.version.startswith("sha256:")
    assert len(catalog.channels) == 4
    assert not set(catalog.channel_ids) & set(bundled.channel_ids)
    beyond = set(catalog.countries) - set(bundled.countries)
    assert {"IS", "GR", "CZ", "RO", "KE"} <= beyond
    # Optional columns: the name comes from ISO, the rest from documented defaults.
    iceland = catalog.destination_by_country["IS"]
    assert iceland.name == "Iceland" and iceland.requires_tax_id is False
    assert catalog.usd_per_unit == bundled.usd_per_unit  # no currencies.csv: bundled rates


def test_the_sellers_zone_table_prices_a_country(seller: Path) -> None:
    import numpy as np

    catalog = load_catalog(seller)
    country = catalog.country_codes(["IS", "BR"])
    zone = catalog.zone_of(country)
    assert zone.tolist() == [2, 4]
    price = catalog.price_usd(np.array([1.0, 1.0]), (np.ones(2),) * 3, zone)
    dhl = catalog.channels[catalog.channel_index["dhl_express_worldwide"]]
    j = catalog.channel_index["dhl_express_worldwide"]
    assert price[0, j] == pytest.approx(dhl.zones[2].base_usd + dhl.zones[2].per_kg_usd)
    assert price[1, j] == pytest.approx(dhl.zones[4].base_usd + dhl.zones[4].per_kg_usd)


def test_version_is_declared_or_a_content_hash(seller: Path) -> None:
    raw = _channels(seller)
    del raw["version"]
    _write_channels(seller, raw)
    first = load_catalog(seller).version
    assert first.startswith("sha256:")
    raw["channels"][2]["zones"]["1"]["base_usd"] += 1.0  # a price change
    _write_channels(seller, raw)
    from shiprisk.data import catalogs

    catalogs._load.cache_clear()
    assert load_catalog(seller).version not in (first, "")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda root: (root / "destinations.csv").write_text(
                (root / "destinations.csv").read_text().replace("IS,europe", "ZZ,europe")
            ),
            "destinations.csv: line 7: country: ZZ is not an ISO 3166-1 alpha-2 country code",
        ),
        (
            lambda root: (root / "destinations.csv").write_text(
                (root / "destinations.csv").read_text().replace("KE,africa,5", "KE,africa,7")
            ),
            "destinations.csv: line 14: zone: Input should be less than or equal to 5",
        ),
        (
            lambda root: _edit_channel(root, 1, lambda c: c["zones"]["2"].pop("per_kg_usd")),
            "channels.json: channels[1] (id usps_fcpis): zones.2: base_usd and per_kg_usd "
            "are required unless pricing is 'quoted'",
        ),
        (
            lambda root: _edit_channel(root, 0, lambda c: c.update(tracking="some")),
            "channels.json: channels[0] (id usps_fcmi_flat): tracking: Input should be",
        ),
        (
            lambda root: _edit_channel(root, 3, lambda c: c.update(prior_loss_rate=1.5)),
            "channels.json: channels[3] (id dhl_express_worldwide): prior_loss_rate: Input "
            "should be less than or equal to 1",
        ),
        (
            lambda root: _edit_channel(root, 2, lambda c: c.update(colour="brown")),
            "(id ups_worldwide_saver): colour: Extra inputs are not permitted",
        ),
        (
            lambda root: _edit_channel(
                root, 2, lambda c: c["eligibility"].update(destinations=["IS", "NZ"])
            ),
            "channel ups_worldwide_saver: destination NZ is not in the catalog",
        ),
        (
            lambda root: _write_channels(root, {**_channels(root), "origin": "XX"}),
            "channels.json: origin: 'XX' is not an ISO 3166 alpha-2 country",
        ),
        (
            lambda root: (root / "channels.json").write_text('{"channels": [\n  {,}]}'),
            "channels.json: line 2: not valid JSON",
        ),
        (
            lambda root: (root / "destinations.csv").unlink(),
            "destinations.csv: missing (a catalog needs destinations.csv; docs/catalog.md)",
        ),
    ],
)
def test_a_broken_catalog_is_one_line_naming_file_row_field_reason(
    seller: Path, edit, expected: str
) -> None:
    edit(seller)
    assert expected in _error(seller)


def _edit_channel(root: Path, index: int, change) -> None:
    raw = _channels(root)
    change(raw["channels"][index])
    _write_channels(root, raw)


def test_a_quoted_channel_has_transit_but_no_list_price(seller: Path) -> None:
    import numpy as np

    raw = _channels(seller)
    dhl = raw["channels"][3]
    dhl["pricing"] = "quoted"
    dhl["zones"] = {z: {"transit_days": v["transit_days"]} for z, v in dhl["zones"].items()}
    _write_channels(seller, raw)
    catalog = load_catalog(seller)
    zone = catalog.zone_of(catalog.country_codes(["IS"]))
    price = catalog.price_usd(np.array([1.0]), (np.ones(1),) * 3, zone)[0]
    tmin, _ = catalog.transit_days(zone)
    j = catalog.channel_index["dhl_express_worldwide"]
    assert np.isnan(price[j]) and np.isfinite(np.delete(price, j)).all()
    assert tmin[0, j] == dhl["zones"]["2"]["transit_days"][0]


def test_cli_refuses_a_broken_catalog_in_one_line(seller: Path, tmp_path: Path) -> None:
    """`--catalog` on data validate; the same check runs for train, serve, run, score-open."""
    _edit_channel(seller, 0, lambda c: c.update(tracking="some"))
    history = Path(__file__).parents[2] / "examples" / "history.csv"
    shiprisk = str(Path(sys.executable).with_name("shiprisk"))
    env = {k: v for k, v in os.environ.items() if k != "SHIPRISK_CATALOG_DIR"}
    for args in (
        ["data", "validate", str(history), "--catalog", str(seller)],
        ["score-open", "--input", str(history), "--output", str(tmp_path / "o.csv")],
    ):
        run_env = env if "--catalog" in args else env | {"SHIPRISK_CATALOG_DIR": str(seller)}
        done = subprocess.run([shiprisk, *args], env=run_env, capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
        assert "cannot use the catalog" in lines[0]
        assert "channels.json: channels[0] (id usps_fcmi_flat): tracking:" in lines[0]
