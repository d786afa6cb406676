"""The in-process request path and the value of its decisions against an oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiprisk.data.contract import SHIPMENT_FIELDS, example_request
from shiprisk.serving.schemas import ScoreRequest


def test_no_dataframe_is_built_on_the_request_path(scorer, monkeypatch) -> None:
    request = ScoreRequest.model_validate({**example_request(), "destination_country": "BR"})
    scorer.score(request)  # warm every lazy cache first

    def forbidden(*args, **kwargs):
        raise AssertionError("a DataFrame was built on the request path")

    monkeypatch.setattr(pd.DataFrame, "__init__", forbidden)
    monkeypatch.setattr(pd.Series, "__init__", forbidden)
    response = scorer.score(request)
    assert response.recommendation is not None and response.reasons


def test_fast_path_equals_the_batch_path(scorer, champion_model, sim_frame) -> None:
    for _, row in sim_frame.iloc[:20].iterrows():
        body = {f: row[f] for f in SHIPMENT_FIELDS}
        body["created_at"] = row["created_at"].isoformat()
        response = scorer.score(ScoreRequest.model_validate(body))
        ids = [c.channel_id for c in response.channels]
        frame = pd.DataFrame([{**row.to_dict(), "channel_id": c} for c in ids])
        batch = champion_model.predict_frame(frame)
        np.testing.assert_allclose(
            [c.p_loss for c in response.channels], batch["p_loss"], atol=1e-12
        )
        np.testing.assert_allclose(
            [c.p_reject for c in response.channels], batch["p_reject"], atol=1e-12
        )
