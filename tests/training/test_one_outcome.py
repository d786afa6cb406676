"""Acceptance 2 of issue 15: a history with only one outcome trains the head it has labels
for; the other outcome is scored from the documented prior, and every answer, batch row,
MLflow run and registry version says so.

Two real pipelines, each in a store of its own (history -> `shiprisk train` -> `promote` ->
a real BentoML server): a rejection-only history on the example seller catalog (its USPS
untracked row gives `prior_loss_rate`), and a loss-only history on the bundled catalog.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shiprisk.data.contract import example_request
from shiprisk.training.heads import world_rates
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

CASES = {
    # name: (catalog or None for the bundled one, keep losses, keep rejections, prior outcome)
    "rejections-only": (SELLER_CATALOG, False, True, "loss"),
    "losses-only": (None, True, False, "reject"),
}
SOURCE_TAG = (
    "from shiprisk.models import registry; from shiprisk.settings import CHAMPION; "
    "registry.configure(); v = registry.get_version(CHAMPION); "
    "print(v.tags.get('source.loss'), v.tags.get('source.reject'))"
)


def _history(name: str, home: Path) -> Path:
    catalog, losses, rejections, _ = CASES[name]
    if catalog is not None:
        frame = seller_history(12_000, seed=4, losses=losses, rejections=rejections)
    else:
        from shiprisk.data.simulator import simulate

        frame = simulate(6_000, seed=4).drop(columns=["true_p_loss", "true_p_reject"])
        frame.loc[frame["outcome"] == "rejected", "outcome"] = "delivered"
    return write_history(frame, home / f"{name}.parquet")


@pytest.fixture(scope="module", params=list(CASES))
def pipeline(request, tmp_path_factory) -> Iterator[dict]:
    name = request.param
    catalog, _, _, prior = CASES[name]
    home = tmp_path_factory.mktemp(name)
    env = isolated_env(home)
    if catalog is not None:
        env["SHIPRISK_CATALOG_DIR"] = str(catalog)
    history = _history(name, home)
    validated = run_cli(["data", "validate", str(history)], env)
    trained = run_cli(["train", "--data", str(history)], env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    promoted = run_cli(["promote"], env)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    tags = python_in(env, SOURCE_TAG)
    srv = start_server(python_in(env, IMPORT_CHAMPION), env, home / "server.log")
    try:
        yield {
            "name": name,
            "prior": prior,
            "url": srv.url,
            "validated": validated,
            "trained": trained,
            "promoted": promoted,
            "tags": tags,
        }
    finally:
        srv.stop()


def _flat(text: str) -> str:
    return " ".join(text.split())


def _score(url: str, **fields: object) -> dict:
    answer = httpx.post(f"{url}/score", json={**example_request(), **fields}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_validate_warns_and_train_says_where_the_outcome_comes_from(pipeline) -> None:
    prior = pipeline["prior"]
    assert pipeline["validated"].returncode == 0, pipeline["validated"].stderr
    assert "scored from its prior" in _flat(pipeline["validated"].stderr)
    assert f"p_{prior} comes from the prior" in _flat(pipeline["trained"].stderr)
    gate = _flat(pipeline["promoted"].stdout + pipeline["promoted"].stderr)
    assert f"{prior}: not gated: the challenger has no head for it" in gate
    trained = "reject" if prior == "loss" else "loss"
    assert f"{trained}: passed" in gate
    expected = {"loss": "prior", "reject": "model"} if prior == "loss" else {}
    expected = expected or {"loss": "model", "reject": "prior"}
    assert pipeline["tags"] == f"{expected['loss']} {expected['reject']}"  # registry tags


def test_responses_say_which_outcome_came_from_the_prior(pipeline) -> None:
    prior = pipeline["prior"]
    trained = "reject" if prior == "loss" else "loss"
    answers = [
        _score(pipeline["url"], destination_country=c, declared_value=value)
        for c, value in (("GB", 120.0), ("MX", 300.0), ("BR", 60.0))
    ]
    for answer in answers:
        assert answer["sources"] == {prior: "prior", trained: "model"}
        assert answer["recommendation"] is not None
    # The trained head reacts to the shipment; the prior depends on the channel only.
    rows = [{c["channel_id"]: c for c in a["channels"]} for a in answers]
    common = set.intersection(*(set(r) for r in rows))
    assert common
    for cid in common:
        assert len({r[cid][f"p_{prior}"] for r in rows}) == 1, cid
    assert len({r[cid][f"p_{trained}"] for r in rows for cid in common}) > len(common)


def test_the_prior_is_the_catalog_rows_rate_else_its_types(pipeline) -> None:
    """Rejections-only (seller catalog): USPS untracked has its own prior_loss_rate, UPS and
    DHL get the world's express/full rate. Losses-only (bundled): every channel gets the
    world's reject rate of its type and tracking level."""
    prior = pipeline["prior"]
    answer = _score(pipeline["url"], destination_country="GB", weight_kg=0.3)
    p = {c["channel_id"]: c[f"p_{prior}"] for c in answer["channels"]}
    table = world_rates()[prior]["by_type_tracking"]
    if pipeline["name"] == "rejections-only":
        assert p["usps_fcmi_flat"] == pytest.approx(0.02)  # its catalog row's prior_loss_rate
        assert p[UPS] == p[DHL] == pytest.approx(table["4/2"])  # express (code 4), full (2)
    else:
        from shiprisk.data.catalogs import CHANNEL_TYPES, TRACKING_LEVELS, load_catalog

        catalog = load_catalog()
        for cid, value in p.items():
            ch = catalog.channels[catalog.channel_index[cid]]
            key = f"{CHANNEL_TYPES.index(ch.channel_type) + 1}/{TRACKING_LEVELS[ch.tracking]}"
            assert value == pytest.approx(table[key]), cid
        assert len(set(p.values())) > 1  # not one rate for every channel
