"""Model integrity end to end: the registry's recorded digest, the champion last read, a dead
registry and a rotten local copy.

Real stores, real files, real `shiprisk serve` subprocesses; nothing is mocked. The tampered
model is a fresh copy logged in its own run (the session champion's files are never changed);
the rotten local copy lives in a BentoML store of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.models import registry
from shiprisk.models.risk_model import CALIBRATION_FILE, MANIFEST, ModelIntegrityError, RiskModel
from shiprisk.serving import model_store
from shiprisk.serving.model_store import (
    BENTO_MODEL_NAME,
    NoVerifiedModelError,
    import_version,
    resolve,
    verify_model_dir,
)
from shiprisk.settings import CHALLENGER, CHAMPION
from shiprisk.training.promote import promote
from tests.conftest import free_port
from tests.serving.test_faults import BOOSTER, _artifact_dir, flip_one_byte

pytestmark = pytest.mark.slow

OUTAGE_BUDGET_S = 10.0


# -- 1. the registry's recorded digest ------------------------------------------------------


def _tamper(directory: Path) -> None:
    """What an attacker with write access to the artifact store does: raise the loss
    calibration AND rewrite its SHA-256 in the manifest, so the checksums still match."""
    calibration = json.loads((directory / CALIBRATION_FILE).read_text())
    calibration["loss"]["b"] += 4.0
    (directory / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=1))
    manifest = json.loads((directory / MANIFEST).read_text())
    digest = hashlib.sha256((directory / CALIBRATION_FILE).read_bytes()).hexdigest()
    manifest["files"][CALIBRATION_FILE] = digest
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))


@pytest.fixture(scope="module")
def tampered_version(trained, champion_model, sim_frame) -> Iterator[str]:
    """The champion's model logged again in its own run and registered, then tampered in the
    artifact store; 'challenger' points at it for the test and is restored after."""
    before = registry.get_version(CHALLENGER)
    registry.ensure_experiment("shiprisk-integrity-tests")
    with mlflow.start_run():
        info = registry.log_risk_model(champion_model, sim_frame.head(200))
    version = str(registry.register(info.model_uri).version)
    _tamper(_artifact_dir(version))
    registry.set_alias(CHALLENGER, version)
    try:
        yield version
    finally:
        if before is not None:
            registry.set_alias(CHALLENGER, before.version)


def test_tampered_model_passes_its_manifest_but_not_the_registry(
    tampered_version: str, champion_model: RiskModel, sim_frame
) -> None:
    artifact = _artifact_dir(tampered_version)
    verify_model_dir(artifact)  # the checksums alone are fooled...
    rows = sim_frame.head(200)
    tampered = RiskModel.load(artifact).predict_frame(rows)["p_loss"].mean()
    assert tampered > 5 * champion_model.predict_frame(rows)["p_loss"].mean()  # ...and it bites

    version = registry.client().get_model_version(registry.model_name(), tampered_version)
    recorded = mlflow.get_run(version.run_id).data.tags["model_digest"]  # set at logging
    with pytest.raises(ModelIntegrityError, match=rf"recorded model_digest {recorded[:12]}"):
        registry.fetch_verified(version, refresh=True)
    with pytest.raises(ModelIntegrityError, match="differs from the registry's recorded"):
        registry.fetch_verified(version)  # the reuse path checks the record too


def test_tampered_model_is_never_imported_served_or_promoted(
    tampered_version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_exec(*args: object) -> None:  # if serve ever chose a model, never exec pytest away
        raise AssertionError(f"serve would exec {args[1]}")

    monkeypatch.setattr(os, "execve", no_exec)
    champion = str(registry.get_version(CHAMPION).version)
    with pytest.raises(ModelIntegrityError, match="differs from the registry's recorded"):
        import_version(CHALLENGER)
    with pytest.raises(NoVerifiedModelError, match="ModelIntegrityError"):
        resolve(CHALLENGER)  # the version last read as 'challenger' was never verified
    bentoml = model_store._bentoml()
    try:
        tags = [str(m.tag) for m in bentoml.models.list(BENTO_MODEL_NAME)]
    except bentoml.exceptions.NotFound:  # nothing imported yet in this session's store
        tags = []
    assert not [t for t in tags if t.startswith(f"{BENTO_MODEL_NAME}:v{tampered_version}-")]

    result = CliRunner().invoke(app, ["serve", "--alias", CHALLENGER])
    assert result.exit_code == 3, result.output
    assert "differs from the registry's recorded" in " ".join(result.output.split())

    decision = promote()
    assert not decision.accepted
    assert any("failed verification" in r and "recorded" in r for r in decision.reasons)
    assert str(registry.get_version(CHAMPION).version) == champion


# -- 2. a dead registry: the champion last read, fast, with the real reason ---------------------


@pytest.fixture(scope="module")
def rolled_back(trained, served_tag: str) -> Iterator[dict[str, str]]:
    """Champion -> a newer copy (imported: the newest import in the store) -> rolled back
    and read again, as `shiprisk serve` would. Yields the versions and tags."""
    original = str(registry.get_version(CHAMPION).version)
    source = registry.client().get_model_version(registry.model_name(), original).source
    newer = str(registry.register(source).version)
    registry.make_champion(newer)
    newer_tag = import_version(CHAMPION).tag
    assert registry.rollback() == (newer, original)
    original_tag = import_version(CHAMPION).tag
    assert original_tag == served_tag != newer_tag
    yield {"original": original, "original_tag": original_tag, "newer_tag": newer_tag}


@pytest.fixture
def dead_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLFLOW_TRACKING_URI -> a closed loopback port; the session store is restored after."""
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    try:
        yield url
    finally:
        monkeypatch.undo()
        registry.configure()


def test_newest_import_is_the_rolled_back_version(rolled_back: dict[str, str]) -> None:
    models = model_store._bentoml().models.list(BENTO_MODEL_NAME)
    newest = max(models, key=lambda m: m.info.creation_time)
    assert str(newest.tag) == rolled_back["newer_tag"]  # the trap the fallback must avoid
    read = model_store.last_read(CHAMPION)
    assert read is not None and read["version"] == rolled_back["original"]


def test_dead_registry_serves_the_champion_last_read_fast_with_the_real_reason(
    rolled_back: dict[str, str], dead_registry: str
) -> None:
    started = time.monotonic()
    resolved = resolve(CHAMPION)
    seconds = time.monotonic() - started
    assert resolved.tag == rolled_back["original_tag"] != rolled_back["newer_tag"]
    assert resolved.source == "fallback"
    assert f"MLflow registry unreachable at {dead_registry}: connection refused" in (
        resolved.message
    )
    assert "no model version has the alias" not in resolved.message
    assert seconds < OUTAGE_BUDGET_S, seconds


def test_fail_fast_settings_do_not_leak_out_of_the_serve_path(dead_registry: str) -> None:
    before = {k: os.environ.get(k) for k in registry.FAIL_FAST_ENV}
    with pytest.raises(NoVerifiedModelError, match="never read for 'never-read'"):
        resolve("never-read")
    assert {k: os.environ.get(k) for k in registry.FAIL_FAST_ENV} == before


# -- real `shiprisk serve` subprocesses --------------------------------------------------------


def serve_until_chosen(env: dict[str, str], cwd: Path, timeout: float = 120.0) -> dict:
    """Start `shiprisk serve`, return once it printed which model it serves (or exited):
    seconds from start, its stderr lines, its exit code (None if still running). The
    server it execs is stopped here."""
    shiprisk = str(Path(sys.executable).with_name("shiprisk"))
    full_env = dict(env, SHIPRISK_COMPILED_TREES="false", SHIPRISK_WORKERS="1", COLUMNS="400")
    full_env.pop("SHIPRISK_MODEL_TAG", None)
    started = time.monotonic()
    proc = subprocess.Popen(
        [shiprisk, "serve", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    chosen_at = None
    try:
        while chosen_at is None and time.monotonic() - started < timeout:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            seen.append(line)
            if line.startswith(("serving ", "cannot serve")):
                chosen_at = time.monotonic() - started
    finally:
        if seen and seen[-1].startswith("cannot serve"):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)  # it is exiting by itself: keep its exit code
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    code = proc.returncode if chosen_at is None or seen[-1].startswith("cannot") else None
    return {"seconds": chosen_at, "lines": seen, "returncode": code}


def test_cli_serve_with_a_dead_registry_picks_the_champion_last_read(
    rolled_back: dict[str, str], session_home: Path
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=dead)
    got = serve_until_chosen(env, session_home)
    served = [line for line in got["lines"] if line.startswith("serving ")]
    assert served, got
    assert served[0].startswith(f"serving {rolled_back['original_tag']} "), got
    assert f"MLflow registry unreachable at {dead}: connection refused" in served[0]
    assert got["seconds"] < OUTAGE_BUDGET_S, got
    print(f"\nserve chose {rolled_back['original_tag']} in {got['seconds']:.1f} s")


# -- 3. a rotten local copy, a healthy registry -------------------------------------------------


def test_cli_serve_reimports_a_rotten_local_copy_from_a_healthy_registry(
    served_tag: str, tmp_path: Path
) -> None:
    """A BentoML store of its own holding only the champion's import, rotted on disk; the
    session's MLflow store is healthy. `serve` must re-import, not exit 3."""
    source = Path(model_store._bentoml().models.get(served_tag).path)
    name, version = served_tag.split(":")
    copy = tmp_path / "bentoml" / "models" / name / version
    shutil.copytree(source, copy)
    (copy.parent / "latest").write_text(version)
    flip_one_byte(copy / BOOSTER)
    env = dict(
        os.environ, SHIPRISK_HOME=str(tmp_path / "home"), BENTOML_HOME=str(tmp_path / "bentoml")
    )
    got = serve_until_chosen(env, tmp_path)
    served = [line for line in got["lines"] if line.startswith("serving ")]
    assert got["returncode"] is None and served, got
    assert served[0].startswith(f"serving {served_tag} "), got
    assert "re-imported (the local copy failed verification" in served[0]
    assert served_tag.endswith(verify_model_dir(copy)[:12])  # the store copy is whole again
