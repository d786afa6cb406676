"""``missing.mask_rate_by_head``: a head trained on rows masked at its own rate."""

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


def test_each_head_is_fitted_on_rows_masked_at_its_own_rate(sim_frame, monkeypatch) -> None:
    seen: list[tuple[float, int]] = []
    real = masking.mask_optional

    def recording(frame, rate, seed):
        seen.append((rate, len(frame)))
        return real(frame, rate, seed)

    monkeypatch.setattr(masking, "mask_optional", recording)
    config = load_config()
    missing = config.missing.model_copy(update={"mask_rate_by_head": {"reject": 0.5}})
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


def test_a_head_rate_outside_zero_to_one_is_refused() -> None:
    assert MissingConfig(mask_rate_by_head={"reject": 0.12}).rate("reject") == 0.12
    assert MissingConfig(mask_rate_by_head={"reject": 0.12}).rate("loss") == 0.25
    with pytest.raises(ValidationError, match="less than 1"):
        MissingConfig(mask_rate_by_head={"reject": 1.0})
