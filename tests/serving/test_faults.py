"""Faults on the way to serving: corrupt model files, a missing alias, an empty store, bad
training data and a worse challenger. Nothing broken or unvetted is ever served.

Corruption is real: one byte of a COPY of the session model (or of a throw-away challenger's
artifact in the MLflow store) is flipped on disk. The session champion is never modified.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.models import registry
from shiprisk.models.risk_model import ModelIntegrityError, RiskModel
from shiprisk.serving import model_store
from shiprisk.serving.model_store import (
    BENTO_MODEL_NAME,
    NoVerifiedModelError,
    last_verified,
    resolve,
    verify_model_dir,
)
from shiprisk.serving.schemas import ModelRef
from shiprisk.serving.scorer import Scorer
from shiprisk.settings import CHALLENGER, CHAMPION
from shiprisk.training.promote import promote
from shiprisk.training.train import TrainingDataError, train

pytestmark = pytest.mark.slow

BOOSTER = "booster_loss.txt"
BLINDED = ("payment_method", "address_quality", "destination_country", "channel_id")
WEAK_ROWS = 8_000


def flip_one_byte(path: Path) -> None:
    """Bit rot: one byte in the middle of the file changes (XOR 1), its size does not."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _versions() -> list[str]:
    found = registry.client().search_model_versions(f"name='{registry.model_name()}'")
    return sorted(str(v.version) for v in found)


# -- checksums and the last verified import ------------------------------------------------------


def test_corrupt_copy_is_refused_by_every_loader(served_tag: str, tmp_path: Path) -> None:
    bentoml = model_store._bentoml()
    stored = Path(bentoml.models.get(served_tag).path)
    copy = shutil.copytree(stored, tmp_path / "copy")
    digest = verify_model_dir(copy)  # the intact copy verifies...
    assert served_tag.endswith(digest[:12])

    flip_one_byte(copy / BOOSTER)
    with pytest.raises(ModelIntegrityError, match=BOOSTER):
        verify_model_dir(copy)
    with pytest.raises(ModelIntegrityError):
        RiskModel.load(copy)
    with pytest.raises(ModelIntegrityError):
        Scorer.from_directory(copy, ModelRef(name="x", version="x", digest="x"))
    verify_model_dir(stored)  # ...and the original is untouched


@pytest.fixture
def corrupt_newer_import(served_tag: str) -> Iterator[str]:
    """A newer, labelled-verified copy of the served model in the BentoML store, rotted on
    disk after the import (what `last_verified` must notice); removed afterwards."""
    bentoml = model_store._bentoml()
    source = bentoml.models.get(served_tag)
    tag = f"{BENTO_MODEL_NAME}:vrotten-{os.getpid()}"
    with bentoml.models.create(tag, labels=dict(source.info.labels)) as model:
        for file in Path(source.path).iterdir():
            if file.name != "model.yaml":
                shutil.copy2(file, Path(model.path) / file.name)
    flip_one_byte(Path(bentoml.models.get(tag).path) / BOOSTER)
    try:
        yield tag
    finally:
        bentoml.models.delete(tag)


def test_last_verified_skips_a_rotten_newer_import(served_tag: str, corrupt_newer_import: str):
    bentoml = model_store._bentoml()
    newest = max(bentoml.models.list(BENTO_MODEL_NAME), key=lambda m: m.info.creation_time)
    assert str(newest.tag) == corrupt_newer_import  # the rotten copy is the newest entry

    chosen = last_verified()
    assert chosen is not None and chosen.tag != corrupt_newer_import
    verify_model_dir(Path(bentoml.models.get(chosen.tag).path))
    assert chosen.source == "fallback"


def test_missing_alias_never_falls_back_to_the_newest_import(served_tag, corrupt_newer_import):
    """An alias the registry never named here has no version to fall back to: the newest
    verified import is not a stand-in for it."""
    with pytest.raises(NoVerifiedModelError) as refused:
        resolve("nope")
    message = str(refused.value)
    assert "no model version has the alias 'nope'" in message
    assert message.endswith("the registry was never read for 'nope' here")
    assert "\n" not in message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _empty_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SHIPRISK_MODEL_TAG"}
    env.update(
        SHIPRISK_HOME=str(root / "home"),
        BENTOML_HOME=str(root / "bentoml"),
        MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}",
        BENTOML_DO_NOT_TRACK="true",
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    return env


@pytest.fixture(scope="module")
def serve_with_nothing(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess:
    """`shiprisk serve` with an empty registry and an empty BentoML store (never serves)."""
    root = tmp_path_factory.mktemp("empty-stores")
    shiprisk = str(Path(sys.executable).with_name("shiprisk"))
    return subprocess.run(
        [shiprisk, "serve", "--host", "127.0.0.1", "--port", str(_free_port())],
        cwd=root,
        env=_empty_env(root),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_serve_with_nothing_verified_exits_3_with_the_reason(serve_with_nothing) -> None:
    result = serve_with_nothing
    assert result.returncode == 3, (result.stdout[-1000:], result.stderr[-2000:])
    output = " ".join((result.stdout + result.stderr).split())
    assert "cannot serve: cannot import 'champion'" in output
    assert "no verified model is in the store" in output
    assert "Traceback" not in result.stderr


def test_serve_with_nothing_verified_gives_a_one_line_reason(serve_with_nothing) -> None:
    lines = [line for line in serve_with_nothing.stderr.splitlines() if line.strip()]
    last = lines[-1]
    assert last.startswith("cannot serve:") and "no verified model is in the store" in last
    assert last.endswith("the registry was never read for 'champion' here")


# -- training on bad data ---------------------------------------------------------------------


def _garbage_csv(path: Path) -> Path:
    path.write_text("colour,size\n" + "red,3\n" * 2000)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty", "only 0 valid, mature rows"),
        # No fixed row minimum: too few events for a head, and (base model off in tests)
        # no recalibration either.
        ("tiny", "nor can it recalibrate the bundled base model"),
        ("no-events", "only 0 'lost' outcomes.*only 0 'rejected' outcomes"),
        ("garbage-file", "only 0 valid, mature rows"),
    ],
)
def test_bad_training_data_is_refused_and_registers_nothing(
    trained, sim_frame: pd.DataFrame, tmp_path: Path, case: str, message: str
) -> None:
    data = {
        "empty": lambda: sim_frame.head(0),
        "tiny": lambda: sim_frame.head(100),
        # One outcome alone trains (the other from its prior); neither is refused.
        "no-events": lambda: sim_frame[sim_frame["outcome"] == "delivered"].head(5_000),
        "garbage-file": lambda: _garbage_csv(tmp_path / "garbage.csv"),
    }[case]()
    before = _versions()
    with pytest.raises(TrainingDataError, match=message):
        train(data)
    assert _versions() == before


def test_cli_train_on_garbage_exits_2_with_the_reason(trained, tmp_path: Path) -> None:
    before = _versions()
    result = CliRunner().invoke(app, ["train", "--data", str(_garbage_csv(tmp_path / "g.csv"))])
    assert result.exit_code == 2
    assert "training refused" in result.output and "valid, mature rows" in result.output
    assert _versions() == before


# -- the promotion gate -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def weak_challenger(trained, sim_frame: pd.DataFrame) -> Iterator[str]:
    """A cheaper, blinded model registered as the challenger; the alias is restored after."""
    before = registry.get_version(CHALLENGER)
    result = train(sim_frame.head(WEAK_ROWS), drop_features=BLINDED, with_baseline=False)
    try:
        yield result.version
    finally:
        if before is not None:
            registry.set_alias(CHALLENGER, before.version)
        else:
            registry.client().delete_registered_model_alias(registry.model_name(), CHALLENGER)


def test_promotion_refuses_a_worse_challenger(weak_challenger: str) -> None:
    champion = str(registry.get_version(CHAMPION).version)
    history = registry.champion_history()
    assert str(registry.get_version(CHALLENGER).version) == weak_challenger != champion

    decision = promote()
    assert not decision.accepted
    assert str(decision.challenger) == weak_challenger
    assert str(decision.champion_before) == champion
    chal, ref = decision.log_loss["challenger"], decision.log_loss["reference"]
    assert any(chal[o] > 1.005 * ref[o] for o in chal), decision.log_loss  # really worse
    assert any(" > " in r for r in decision.reasons), decision.reasons
    assert str(registry.get_version(CHAMPION).version) == champion
    assert registry.champion_history() == history
    tags = registry.client().get_model_version(registry.model_name(), weak_challenger).tags
    assert tags["gate"] == "failed"


def _artifact_dir(version: str) -> Path:
    """Where the MLflow store keeps a version's risk-model files (local file artifacts)."""
    mv = registry.client().get_model_version(registry.model_name(), version)
    logged = registry.client().get_logged_model(mv.source.removeprefix("models:/"))
    return Path(urlparse(logged.artifact_location).path) / "artifacts" / "risk_model"


def test_corrupt_registry_artifact_is_never_imported_or_promoted(
    weak_challenger: str, served_tag: str
) -> None:
    flip_one_byte(_artifact_dir(weak_challenger) / BOOSTER)
    champion = registry.get_version(CHAMPION).version

    decision = promote()
    assert not decision.accepted
    assert any("failed verification" in r for r in decision.reasons), decision.reasons
    assert registry.get_version(CHAMPION).version == champion

    with pytest.raises(ModelIntegrityError):
        model_store.import_version(CHALLENGER)
    # The registry names the corrupt version as 'challenger': nothing else stands in for it.
    with pytest.raises(NoVerifiedModelError, match="ModelIntegrityError") as refused:
        resolve(CHALLENGER)
    assert f"version {weak_challenger}, last read as '{CHALLENGER}'" in str(refused.value)
    assert last_verified(CHALLENGER) is None
