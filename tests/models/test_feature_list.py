"""Models carry their own feature list, against the real registry and real model files.

A code change is simulated by patching the code's feature tuple (and, to add a feature,
its formula): a model registered before a feature was added still loads, scores the same
and can be rolled back to; a model needing a feature the code no longer computes is refused
at promote, serve and load with the missing feature named, never at request time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import typer

from shiprisk.data.contract import example_request
from shiprisk.features import pipeline
from shiprisk.models import registry
from shiprisk.models.risk_model import (
    OUTCOMES,
    IncompatibleModelError,
    ModelIntegrityError,
    RiskModel,
)
from shiprisk.serving.schemas import ModelRef, ScoreRequest
from shiprisk.serving.scorer import Scorer
from shiprisk.settings import CHALLENGER, CHAMPION

ADDED = "log_weight"
DROPPED = "longest_cm"
SMALL = {
    o: {"num_boost_round": 40, "early_stopping_rounds": 10, "num_leaves": 7, "num_threads": 1}
    for o in OUTCOMES
}
"""A small, quick model: these tests need real registered versions, not good ones."""


def _add_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """The code change "one new derived feature": its name in FEATURES and its formula."""
    monkeypatch.setattr(pipeline, "FEATURES", (*pipeline.FEATURES, ADDED))
    monkeypatch.setitem(pipeline.DERIVED_FEATURES, ADDED, lambda v: np.log1p(v["weight_kg"]))


def _drop_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """The code change "a feature is removed" (every stored model so far uses it)."""
    monkeypatch.setattr(pipeline, "FEATURES", tuple(f for f in pipeline.FEATURES if f != DROPPED))


def _register_small(sim_frame: pd.DataFrame) -> tuple[RiskModel, str]:
    """Fit a small model with the code as it is now; log and register it (a real version)."""
    train, calibration = sim_frame.iloc[:10_000], sim_frame.iloc[10_000:14_000]
    model = RiskModel.fit(train, calibration, SMALL)
    with mlflow.start_run():
        info = registry.log_risk_model(model, train)
    return model, str(registry.register(info.model_uri).version)


@contextmanager
def _challenger(version: str) -> Iterator[None]:
    """Point 'challenger' at ``version`` for the block; the session's alias comes back."""
    before = registry.get_version(CHALLENGER)
    registry.set_alias(CHALLENGER, version)
    try:
        yield
    finally:
        if before is not None:
            registry.set_alias(CHALLENGER, before.version)


def _ref() -> ModelRef:
    return ModelRef(name="t", version="t", digest="t")


def _request() -> ScoreRequest:
    return ScoreRequest.model_validate({**example_request(), "destination_country": "BR"})


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text
    return text


def test_a_model_registered_before_a_feature_is_added_scores_the_same_and_rolls_back(
    trained, sim_frame, monkeypatch
) -> None:
    champion = str(registry.get_version(CHAMPION).version)
    path = registry.fetch_verified(registry.get_version(CHAMPION))
    rows = sim_frame.iloc[20_000:20_500]
    before = RiskModel.load(path).predict_frame(rows)
    response_before = Scorer.from_directory(path, _ref(), compile_trees=False).score(_request())

    _add_feature(monkeypatch)
    grown, version = _register_small(sim_frame)
    assert grown.featurizer.feature_names_[-1] == ADDED
    registry.make_champion(version)  # the grown model was promoted...
    assert registry.rollback() == (version, champion)  # ...and is rolled back

    restored = registry.fetch_verified(registry.get_version(CHAMPION))
    model = RiskModel.load(restored)
    assert ADDED not in model.featurizer.feature_names_
    np.testing.assert_array_equal(model.predict_frame(rows).to_numpy(), before.to_numpy())

    record = {**rows.iloc[0].to_dict()}
    ids = ["epacket", "dhl_express", "cnpost_untracked", "brand_new_line"]
    online = model.featurizer.encode_channels(record, ids)
    batch = model.featurizer.transform(pd.DataFrame([{**record, "channel_id": c} for c in ids]))
    assert online.shape == (len(ids), len(model.featurizer.feature_names_))
    np.testing.assert_array_equal(online, batch)

    scorer = Scorer.from_directory(restored, _ref(), compile_trees=False)
    response = scorer.score(_request())
    assert [c.p_loss for c in response.channels] == [c.p_loss for c in response_before.channels]
    assert [c.p_reject for c in response.channels] == [c.p_reject for c in response_before.channels]
    assert response.reasons and response.reasons == response_before.reasons


def test_a_challenger_needing_a_feature_the_code_dropped_is_refused_at_promote(
    trained, sim_frame, monkeypatch
) -> None:
    from shiprisk.training.promote import promote

    with monkeypatch.context() as code_with_the_feature:
        _add_feature(code_with_the_feature)
        _, version = _register_small(sim_frame)
    assert ADDED not in pipeline.FEATURES  # the code no longer computes it
    champion = str(registry.get_version(CHAMPION).version)
    with _challenger(version):
        decision = promote()
    assert not decision.accepted
    assert decision.reasons == [
        f"refused: challenger is incompatible with this code (model v{version} needs "
        f"feature(s) this code does not compute: {ADDED})"
    ]
    tags = registry.client().get_model_version(registry.model_name(), version).tags
    assert tags["gate"] == "failed" and ADDED in tags["gate_reason"]
    assert str(registry.get_version(CHAMPION).version) == champion

    path = registry.fetch_verified(
        registry.client().get_model_version(registry.model_name(), version)
    )
    with pytest.raises(IncompatibleModelError, match=ADDED) as refused:
        RiskModel.load(path)
    assert isinstance(refused.value, ModelIntegrityError)
    _one_line(refused.value)
    with pytest.raises(IncompatibleModelError, match=ADDED):
        Scorer.from_directory(path, _ref(), compile_trees=False)  # at load, not per request


def test_serve_and_load_refuse_a_champion_needing_a_dropped_feature(
    trained, monkeypatch, capsys
) -> None:
    from shiprisk.cli import _serve
    from shiprisk.serving.model_store import pinned_tag

    path = registry.fetch_verified(registry.get_version(CHAMPION))
    pinned = pinned_tag()
    _drop_feature(monkeypatch)

    def never(*args: object) -> None:  # a safety net: serving would replace pytest
        raise AssertionError(f"serve went on to exec {args[:2]}")

    monkeypatch.setattr("os.execve", never)
    capsys.readouterr()
    with pytest.raises(typer.Exit) as stopped:
        _serve(None, None, None, CHAMPION)
    assert stopped.value.exit_code == 3
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("cannot serve:") and "IncompatibleModelError" in lines[0]
    assert f"this code does not compute: {DROPPED}" in lines[0]
    assert pinned_tag() == pinned

    with pytest.raises(IncompatibleModelError, match=DROPPED) as refused:
        RiskModel.load(path)
    assert _one_line(refused.value).endswith(f"this code does not compute: {DROPPED}")


def test_a_champion_the_code_cannot_run_no_longer_sets_the_bar(
    trained, sim_frame, monkeypatch
) -> None:
    """After a feature is removed, a challenger trained without it is gated against the
    base-rate prior (the old champion cannot be served by this code any more)."""
    from shiprisk.training.promote import decide

    _drop_feature(monkeypatch)
    model, version = _register_small(sim_frame)
    assert DROPPED not in model.featurizer.feature_names_
    champion = str(registry.get_version(CHAMPION).version)
    with _challenger(version):
        decision = decide()
    assert decision.reasons[0].startswith(f"champion v{champion} cannot run on this code")
    assert DROPPED in decision.reasons[0]
    assert all("base-rate prior" in r for r in decision.reasons[1:]) and decision.log_loss
    assert str(registry.get_version(CHAMPION).version) == champion


def test_a_booster_reading_another_width_is_refused_at_load(champion_model, tmp_path) -> None:
    """The boosters and the stored feature list must describe the same columns."""
    import json

    from shiprisk.models.risk_model import MANIFEST, PIPELINE_FILE
    from shiprisk.models.storage import sha256_file

    directory = champion_model.save(Path(tmp_path) / "m")
    state = json.loads((directory / PIPELINE_FILE).read_text())
    state["feature_names"] = state["feature_names"][:-1]
    state["reference"] = state["reference"][:-1]
    (directory / PIPELINE_FILE).write_text(json.dumps(state))
    manifest = json.loads((directory / MANIFEST).read_text())
    manifest["files"][PIPELINE_FILE] = sha256_file(directory / PIPELINE_FILE)
    (directory / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match="booster_loss reads"):
        RiskModel.load(directory)
