"""Time: the calibration's trend stays inside the history; an old history is flagged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shiprisk.data.loaders import load_history
from shiprisk.models.risk_model import PlattCalibrator
from shiprisk.training.config import load_config
from shiprisk.training.readiness import assess

EXAMPLE = Path(__file__).parents[2] / "examples"


def _drifting_calibrator() -> PlattCalibrator:
    """Fitted on months 100..124 where the event rate rises with time (c > 0)."""
    rng = np.random.default_rng(3)
    months = rng.integers(100, 125, size=20_000).astype(float)
    raw = rng.normal(size=months.size)
    p = 1 / (1 + np.exp(-(raw - 3 + 0.08 * (months - 112))))
    y = rng.random(months.size) < p
    return PlattCalibrator().fit(raw, y, months)


def test_the_time_trend_never_extrapolates_beyond_the_history() -> None:
    cal = _drifting_calibrator()
    assert cal.c > 0.5 and (cal.t_min, cal.t_max) == (100.0, 124.0)
    raw = np.zeros(4)
    inside = cal(raw, np.array([100.0, 100.0, 124.0, 124.0]))
    outside = cal(raw, np.array([40.0, 99.0, 125.0, 400.0]))
    np.testing.assert_array_equal(outside, inside)  # older: oldest level; newer: newest
    assert cal(raw[:1], np.array([112.0]))[0] < inside[2]  # the trend acts within the range


def test_a_model_saved_before_t_min_keeps_its_behaviour() -> None:
    cal = _drifting_calibrator()
    legacy = PlattCalibrator(a=cal.a, b=cal.b, c=cal.c, t_ref=cal.t_ref, t_max=cal.t_max)
    assert legacy.t_min is None
    low = legacy(np.zeros(1), np.array([40.0]))[0]
    assert low < cal(np.zeros(1), np.array([40.0]))[0]  # unclamped below, as it was fitted


def test_an_old_history_is_flagged() -> None:
    loaded = load_history(EXAMPLE / "history.csv", mapping=EXAMPLE / "history_mapping.yaml")
    config = load_config()
    newest = loaded.train["outcome_date"].max().to_pydatetime().replace(tzinfo=UTC)
    soon = datetime(newest.year, newest.month, newest.day, tzinfo=UTC)
    young = assess(loaded, config, max_age_days=30, now=soon)
    old = assess(loaded, config, max_age_days=30, now=soon.replace(year=soon.year + 1))
    assert not any("days old" in w for w in young.warnings)
    flagged = [w for w in old.warnings if "days old" in w]
    assert len(flagged) == 1 and "more than 30" in flagged[0]
    assert old.ok and young.ok  # a warning, not a refusal
