"""One scoring path: /score_batch, score-open's chunks and the decision evaluation each make
one call to ``decisions.scoring.score`` (which calls the model once), whatever the number of
shipments."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from shiprisk.data.contract import OPEN_FIELDS, example_request
from shiprisk.decisions import action_savings, scoring
from shiprisk.decisions.costs import SellerCosts
from shiprisk.serving import batch_chunks
from shiprisk.serving import scorer as scorer_mod
from shiprisk.serving.schemas import ScoreRequest
from shiprisk.training import decision_eval

pytestmark = pytest.mark.slow


class Counting:
    """Wraps ``score`` and ``RiskModel.predict_matrix``; counts the calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module, model) -> None:
        self.paths = self.predictions = 0
        real_score, real_predict = scoring.score, model.predict_matrix

        def score(*args, **kwargs):
            self.paths += 1
            return real_score(*args, **kwargs)

        def predict(*args, **kwargs):
            self.predictions += 1
            return real_predict(*args, **kwargs)

        monkeypatch.setattr(module, "score", score)
        monkeypatch.setattr(model, "predict_matrix", predict)


def count_calls(monkeypatch: pytest.MonkeyPatch, module, name: str) -> list[int]:
    """Counts the calls of ``module.name`` (in a one-item list, read after the calls)."""
    calls, real = [0], getattr(module, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_score_batch_is_one_call_of_the_scoring_path(scorer, monkeypatch) -> None:
    body = example_request()
    requests = [
        ScoreRequest.model_validate({**body, "order_id": f"SO-{i}", "declared_value": 10 + i})
        for i in range(7)
    ]
    alone = [scorer.score(r) for r in requests]
    count = Counting(monkeypatch, scorer_mod, scorer.model)
    measured = count_calls(monkeypatch, action_savings, "score")
    together = scorer.score_many(requests)
    # One model call, one for the actions of every order (each applicable change re-scored:
    # the example is DDU, so ship_ddp applies), plus one for the alternatives of every order
    # not shipped as is (issue 16: cheap orders here lose money), whatever the number.
    needs_alternatives = any(a.verdict != "ship" for a in together)
    assert (count.paths, measured[0]) == (1, 1)
    assert count.predictions == 2 + needs_alternatives
    for a, b in zip(alone, together, strict=True):  # same answers as one at a time
        assert a.recommendation == b.recommendation
        assert a.actions == b.actions
        for x, y in zip(a.channels, b.channels, strict=True):
            assert x.channel_id == y.channel_id
            assert x.p_loss == pytest.approx(y.p_loss, abs=1e-12)
            assert x.p_reject == pytest.approx(y.p_reject, abs=1e-12)


def test_different_cost_overrides_are_decided_apart(scorer) -> None:
    body = example_request()
    cheap = ScoreRequest.model_validate(body)
    costly = ScoreRequest.model_validate({**body, "costs": {"goods_cost_ratio": 1.0}})
    both = scorer.score_many([cheap, costly])
    assert both[0].recommendation == scorer.score(cheap).recommendation
    assert both[1].recommendation == scorer.score(costly).recommendation
    assert both[1].recommendation.expected_cost_usd != both[0].recommendation.expected_cost_usd


def test_a_batch_chunk_is_one_call_of_the_scoring_path(
    champion_model, sim_frame, monkeypatch
) -> None:
    frame = sim_frame.head(300)[list(OPEN_FIELDS)].reset_index(drop=True)
    chunk = batch_chunks.Chunk(0, 1, frame, np.zeros(len(frame), dtype=bool))
    chunks = batch_chunks.ChunkScorer(
        champion_model, SellerCosts(), None, timezone="UTC", now=datetime.now(UTC)
    )
    count = Counting(monkeypatch, batch_chunks, champion_model)
    result = chunks(chunk)
    assert (count.paths, count.predictions) == (1, 1)
    assert result.scored == len(frame)
    # With --explain, the chunk's actions: every applicable change of every row, one call.
    explained = batch_chunks.ChunkScorer(
        champion_model, SellerCosts(), None, timezone="UTC", now=datetime.now(UTC), explain=True
    )
    measured = count_calls(monkeypatch, action_savings, "score")
    explained(chunk)
    assert (count.paths, measured[0]) == (2, 1)


def test_the_decision_evaluation_uses_the_same_path(champion_model, sim_frame, monkeypatch) -> None:
    count = Counting(monkeypatch, decision_eval, champion_model)
    report = decision_eval.evaluate_decisions(sim_frame.head(500), champion_model)
    assert (count.paths, count.predictions) == (1, 1)
    assert report.n > 0
