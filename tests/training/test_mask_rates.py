"""``missing.mask_rate_by_head``: a head trained on rows masked at its own rate;
``missing.masked_copies_by_head``: a head trained on every row plus masked copies."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from shiprisk.features import masking
from shiprisk.models.risk_model import OUTCOMES
from shiprisk.training.config import MissingConfig, load_config
from shiprisk.training.train import fit_risk_model, time_split

QUICK = {
    o: {"num_boost_round": 30, "early_stopping_rounds": 10, "num_leaves": 7, "num_threads": 1}
    for o in OUTCOMES
}


@pytest.fixture
def seen(monkeypatch) -> list[tuple[float, int]]:
    """(rate, rows) of every ``mask_optional`` call while the test trains."""
    calls: list[tuple[float, int]] = []
    real = masking.mask_optional

    def recording(frame, rate, seed):
        calls.append((rate, len(frame)))
        return real(frame, rate, seed)

    monkeypatch.setattr(masking, "mask_optional", recording)
    return calls


def test_each_head_is_fitted_on_rows_masked_at_its_own_rate(sim_frame, seen) -> None:
    config = load_config()
    missing = config.missing.model_copy(
        update={"mask_rate_by_head": {"reject": 0.5}, "masked_copies_by_head": {}}
    )
    config = config.model_copy(update={"lightgbm": QUICK, "missing": missing})
    splits = time_split(sim_frame.iloc[:12_000], config)
    model = fit_risk_model(splits, config)
    sizes = (len(splits.train), len(splits.calibration))
    # the default rate first (it fits the pipeline), then the reject head's own
    assert [r for r, _ in seen] == [0.25, 0.25, 0.5, 0.5]
    assert [n for _, n in seen] == [*sizes, *sizes]
    assert set(model.boosters) == set(OUTCOMES) == set(model.calibrators)
    assert set(model.info["trees"]) == set(OUTCOMES)
    probs = model.predict_frame(splits.test)
    assert np.isfinite(probs.to_numpy()).all() and (probs.to_numpy() > 0).all()


def test_masked_copies_keep_every_row_as_recorded_and_add_masked_twins(sim_frame) -> None:
    frame = sim_frame.iloc[:4_000].sort_values("created_at", kind="stable")
    both = masking.with_masked_copies(frame, 0.5, 1.0, seed=3)
    assert len(both) == 2 * len(frame)
    assert both["created_at"].is_monotonic_increasing
    field = "goods_category"
    # each shipment appears twice: once as recorded, once with fields blanked at ~50 %
    twins = both.groupby("shipment_id")[field].agg(lambda v: int(v.isna().sum()))
    assert set(twins.index) == set(frame["shipment_id"]) and twins.max() <= 1
    assert 0.4 < twins.mean() < 0.6
    recorded = both.drop_duplicates("shipment_id", keep=False)
    assert recorded.empty
    half = masking.with_masked_copies(frame, 0.5, 0.5, seed=3)
    assert 1.4 * len(frame) < len(half) < 1.6 * len(frame)
    with pytest.raises(ValueError, match="share of masked copies"):
        masking.with_masked_copies(frame, 0.5, 0.0)


def test_a_head_with_masked_copies_trains_on_them_and_support_counts_each_row_once(
    sim_frame, seen
) -> None:
    config = load_config()
    missing = config.missing.model_copy(
        update={"mask_rate_by_head": {}, "masked_copies_by_head": {"loss": 1.0}}
    )
    config = config.model_copy(update={"lightgbm": QUICK, "missing": missing})
    splits = time_split(sim_frame.iloc[:12_000], config)
    model = fit_risk_model(splits, config)
    sizes = (len(splits.train), len(splits.calibration))
    # the reject head on rows masked in place (it fits the pipeline), the loss head on every
    # row plus a masked copy of each (share 1.0)
    assert seen == [(0.25, sizes[0]), (0.25, sizes[1])] * 2
    assert set(model.boosters) == set(OUTCOMES)
    assert sum(model.support.values()) == len(splits.train)


def test_a_head_rate_outside_zero_to_one_is_refused() -> None:
    assert MissingConfig(mask_rate_by_head={"reject": 0.12}).rate("reject") == 0.12
    assert MissingConfig(mask_rate_by_head={"reject": 0.12}).rate("loss") == 0.25
    with pytest.raises(ValidationError, match="less than 1"):
        MissingConfig(mask_rate_by_head={"reject": 1.0})


def test_a_bad_training_config_is_one_line_before_any_data_is_drawn(tmp_path, monkeypatch) -> None:
    """`shiprisk train --config` with a value out of range, an unknown key, broken YAML or a
    misspelt feature in a head's constraints (which would constrain nothing): one line naming
    the key, exit 2, no traceback, nothing simulated."""
    from typer.testing import CliRunner

    from shiprisk.cli import app
    from shiprisk.settings import get_settings
    from shiprisk.training.config import DEFAULT_CONFIG

    monkeypatch.setenv("SHIPRISK_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    text = DEFAULT_CONFIG.read_text()
    cases = {
        "range.yaml": (
            text.replace("    reject: 0.12", "    reject: 1.5"),
            "mask_rate_by_head.reject",
        ),
        "key.yaml": (text.replace("  seed: 0", "  seed: 0\n  mask_rat: 3"), "missing.mask_rat"),
        "yaml.yaml": ("version: [1\n", "not valid YAML"),
        "cause.yaml": (
            text.replace("goods_category, soft_pack", "goods_categry, soft_pack"),
            "reject.two_causes.0.exclude: unknown feature 'goods_categry'",
        ),
        "monotone.yaml": (
            text.replace("      address_risk: 1", "      adress_risk: 1"),
            "loss.monotone: unknown feature 'adress_risk'",
        ),
    }
    for name, (body, named) in cases.items():
        (tmp_path / name).write_text(body)
        result = CliRunner().invoke(app, ["train", "--config", str(tmp_path / name)])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2, result.output
        assert len(lines) == 1 and "training config refused" in lines[0] and named in lines[0]
        assert "Traceback" not in result.output
    assert not (tmp_path / "home" / "data").exists()
    get_settings.cache_clear()


def test_heads_are_grouped_by_their_masking_with_the_default_way_first() -> None:
    missing = MissingConfig(mask_rate_by_head={"reject": 0.12}, masked_copies_by_head={"loss": 1})
    ways = missing.ways(("loss", "reject"))
    # the default way comes first even without a head: it fits the feature pipeline
    assert list(ways.items()) == [
        ((0.25, 0.0), []),
        ((0.25, 1.0), ["loss"]),
        ((0.12, 0.0), ["reject"]),
    ]
    assert MissingConfig().ways(("loss", "reject"), ["reject"]) == {(0.25, 0.0): ["reject"]}
    with pytest.raises(ValidationError):
        MissingConfig(masked_copies_by_head={"loss": 1.5})
