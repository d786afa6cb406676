"""Acceptance 3 of issue 15 (CI size): small sellers recalibrate a base model.

The base model here is the session champion (50,000 rows of the default world), saved as a
model directory and named by ``SHIPRISK_BASE_MODEL``, not the bundled 300,000-row base
(minutes to fit; benchmarks/small_seller.py runs that one over 20 seeds). Training goes to an
MLflow store of its own, so the session champion stays untouched.

- 300 shipments of a seller world (rejections x2 in Latin America, losses x0.5 on China Post
  untracked), seeds 0 and 1: ``train`` chooses the recalibrated base model, which beats a
  model of its own on fresh rows of that world (cross-entropy against the true
  probabilities) in both seeds and the plain base model in at least one; the version is
  registered with ``source.<outcome> = recalibrated`` and scores through the one path.
- 30,000 shipments (the benchmark's size and its first seed) of a world adding a goods x
  region interaction (``seller_with_interaction``: duty-attracting goods refused x4, everyday
  goods x0.25, in five regions): ``train`` chooses the seller's own model, by more than the
  one standard error its rule asks for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from shiprisk.data.seller_worlds import seller_history, seller_with_interaction, small_seller
from shiprisk.models import registry
from shiprisk.models.recalibrated import Recalibration
from shiprisk.models.risk_model import OUTCOMES, RiskModel, model_digest
from shiprisk.settings import CHALLENGER, get_settings
from shiprisk.training.config import load_config
from shiprisk.training.evaluate import binary_log_loss
from shiprisk.training.heads import trainable_heads
from shiprisk.training.readiness import MIN_EVENTS
from shiprisk.training.recalibrate import Base, recalibrate
from shiprisk.training.train import fit_risk_model, time_split, train

SMALL_ROWS, FRESH_ROWS, LARGE_ROWS, LARGE_SEED = 300, 20_000, 30_000, 500
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def base_store(champion_model: RiskModel, tmp_path_factory) -> Iterator[dict]:
    """The champion saved as the base model, and an MLflow store of this module's own."""
    home = tmp_path_factory.mktemp("recal")
    base_dir = champion_model.save(home / "base")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHIPRISK_BASE_MODEL", str(base_dir))
        # mlflow.set_tracking_uri also sets MLFLOW_TRACKING_URI: restored on exit.
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            if name in os.environ:
                mp.setenv(name, os.environ[name])
            else:
                mp.delenv(name, raising=False)
        get_settings.cache_clear()
        try:
            yield {
                "uri": uri,
                "base": Base(RiskModel.load(base_dir), "session champion"),
                "dir": base_dir,
            }
        finally:
            get_settings.cache_clear()
    get_settings.cache_clear()
    registry.configure()  # back to the session store


def _cross_entropy(model: RiskModel, fresh: pd.DataFrame) -> float:
    """Log loss against the true probabilities, summed over the outcomes."""
    probs = model.predict_matrix(model.featurizer.transform(fresh))
    return sum(binary_log_loss(fresh[f"true_p_{o}"].to_numpy(), probs[o]) for o in OUTCOMES)


@pytest.fixture(scope="module")
def small_runs(base_store: dict) -> list[dict]:
    config = load_config()
    runs = []
    for seed in SEEDS:
        history = seller_history(SMALL_ROWS, seed, small_seller())
        result = train(history, tracking_uri=base_store["uri"], with_baseline=False)
        splits = time_split(history, config)
        heads, _ = trainable_heads(splits.train, MIN_EVENTS)
        own = fit_risk_model(splits, config, heads)  # the heads it allows, priors else
        recal = recalibrate(base_store["base"], pd.concat([splits.train, splits.calibration]))
        fresh = seller_history(FRESH_ROWS, 1000 + seed, small_seller())
        runs.append(
            {
                "result": result,
                "base": _cross_entropy(base_store["base"].model, fresh),
                "own": _cross_entropy(own, fresh),
                "recalibrated": _cross_entropy(recal, fresh),
                "fresh": fresh,
            }
        )
    return runs


def test_train_chooses_the_recalibrated_base_for_300_shipments(
    small_runs: list[dict], base_store: dict
) -> None:
    for run in small_runs:
        assert run["result"].path == "recalibrated"
        logged = mlflow.get_run(run["result"].run_id).data
        assert logged.params["path"] == "recalibrated"
        assert "choice/log_loss_recalibrated" in logged.metrics
        assert "choice/log_loss_base" in logged.metrics
        assert logged.tags["recalibrated_from"] == f"base {model_digest(base_store['dir'])}"


def test_the_recalibrated_base_beats_own_and_plain_base_on_fresh_rows(
    small_runs: list[dict],
) -> None:
    assert all(r["recalibrated"] < r["own"] for r in small_runs), small_runs
    assert sum(r["recalibrated"] < r["base"] for r in small_runs) >= 1, small_runs


def test_the_registered_recalibration_scores_through_the_one_path(
    small_runs: list[dict], base_store: dict, tmp_path: Path
) -> None:
    from shiprisk.data.catalogs import load_catalog
    from shiprisk.decisions.costs import SellerCosts
    from shiprisk.decisions.scoring import score

    version = registry.get_version(CHALLENGER)
    assert str(version.version) == small_runs[-1]["result"].version
    assert version.tags["path"] == "recalibrated"
    assert {version.tags[f"source.{o}"] for o in OUTCOMES} == {"recalibrated"}
    model = RiskModel.load(registry.download_risk_model(version, tmp_path / "m"))
    assert model.sources == dict.fromkeys(OUTCOMES, "recalibrated")
    assert all(isinstance(r, Recalibration) for r in model.recalibration.values())
    rows = small_runs[-1]["fresh"].head(50)
    scored = score(model, load_catalog(), rows, SellerCosts(), chosen=list(rows["channel_id"]))
    direct = model.predict_frame(rows)
    base = base_store["base"].model.predict_frame(rows)
    assert scored.chosen_unknown is None  # every chosen channel is in the catalog
    for o in OUTCOMES:
        column = scored.channel_ids == rows["channel_id"].to_numpy()[:, None]
        on_chosen = np.where(column, scored.probs[o], np.nan)
        np.testing.assert_allclose(np.nanmax(on_chosen, axis=1), direct[f"p_{o}"], rtol=1e-6)
        assert not np.allclose(direct[f"p_{o}"], base[f"p_{o}"])  # it did move


def test_a_large_history_with_an_interaction_chooses_its_own_model(base_store: dict) -> None:
    history = seller_history(LARGE_ROWS, LARGE_SEED, seller_with_interaction())
    result = train(history, tracking_uri=base_store["uri"], with_baseline=False, register=False)
    logged = mlflow.get_run(result.run_id).data
    assert result.path == "own", logged.tags.get("choice")
    gap = logged.metrics["choice/log_loss_recalibrated"] - logged.metrics["choice/log_loss_own"]
    assert gap > logged.metrics["choice/log_loss_difference_se"], logged.tags.get("choice")


def test_validate_says_what_train_does(base_store: dict) -> None:
    from shiprisk.data.loaders import load_history
    from shiprisk.training.readiness import assess

    ready = assess(load_history(seller_history(SMALL_ROWS, 0, small_seller())), load_config())
    assert ready.ok, ready.refusals
    assert any("recalibrates the bundled base model" in w for w in ready.warnings)


def test_offsets_move_where_the_data_allow() -> None:
    """Many rows: a region's doubled odds are found; few rows: shrunk toward the base."""
    from shiprisk.models.recalibrated import fit_recalibration

    rng = np.random.default_rng(3)
    for rows, low, high in ((40_000, 0.55, 0.85), (60, -0.35, 0.35)):
        regions = rng.choice(["a", "b"], rows)
        p_base = np.full(rows, 0.1)
        odds = np.where(regions == "a", 2 * 0.1 / 0.9, 0.1 / 0.9)
        y = rng.random(rows) < odds / (1 + odds)
        fitted = fit_recalibration(p_base, y, regions, np.ones(rows), {"1": "a", "2": "b"})
        gap = fitted.by_destination["1"] - fitted.by_destination["2"]
        assert low < gap < high, (rows, gap)


def test_a_base_model_setting_that_is_not_a_model_is_one_line_not_a_traceback(
    tmp_path: Path,
) -> None:
    """A wrong ``SHIPRISK_BASE_MODEL`` stops ``train`` before any fit: exit 2, one line that
    names the setting and what to set it to."""
    from tests.training.seller_world import isolated_env, run_cli, write_history

    history = write_history(seller_history(SMALL_ROWS, 0, small_seller()), tmp_path / "h.parquet")
    env = isolated_env(tmp_path) | {"SHIPRISK_BASE_MODEL": str(tmp_path / "no_model_here")}
    done = run_cli(["train", "--data", str(history)], env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert "SHIPRISK_BASE_MODEL=" in said and "'auto'" in said and "'off'" in said
