"""A foreign seller export goes validate -> train -> promote through its mapping alone, and a
changed mapping gets a frozen evaluation set of its own (never the stale one).

The export is built from the simulated world (``tests/data/foreign_export.py``): Spanish
column names, Spanish and French country names, grams, ``4/1/2016 21:05`` dates, a
four-value payment column, decimal commas, ``;`` and Latin-1. The session champion (trained
on the simulated Parquet file) stays champion and challenger aliases are restored after.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.data.loaders import load_history
from shiprisk.models import registry
from shiprisk.settings import CHALLENGER, CHAMPION
from shiprisk.training.promote import decide
from shiprisk.training.train import DATA_KEY_TAG, frozen_eval_uri, train
from tests.data.foreign_export import build_export, write_export

EXAMPLE_MAPPING = Path(__file__).parents[2] / "examples" / "history_mapping.yaml"
ROWS = 6000


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def restore_aliases(trained) -> Iterator[None]:
    """Put champion and challenger back where the session had them."""
    before = {a: registry.get_version(a) for a in (CHAMPION, CHALLENGER)}
    yield
    for alias, version in before.items():
        if version is not None:
            registry.set_alias(alias, version.version)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    from shiprisk.data.simulator import simulate

    frame = simulate(ROWS, seed=23)
    path = tmp_path_factory.mktemp("foreign") / "pedidos_2024.csv"
    return write_export(build_export(frame, seed=23, cancelled=40), path)


@pytest.fixture(scope="module")
def cli_run(export: Path, restore_aliases) -> dict[str, object]:
    """validate, train and promote through the CLI, as a seller would run them."""
    runner = CliRunner()
    mapping = str(EXAMPLE_MAPPING)
    validated = runner.invoke(app, ["data", "validate", str(export), "--mapping", mapping])
    trained = runner.invoke(app, ["train", "--data", str(export), "--mapping", mapping])
    challenger = registry.get_version(CHALLENGER)
    promoted = runner.invoke(app, ["promote"])
    return {
        "validate": validated,
        "train": trained,
        "promote": promoted,
        "challenger": challenger,
    }


def test_the_raw_export_uses_nothing_the_contract_knows(export: Path) -> None:
    raw = export.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("latin-1")
    header = text.splitlines()[0]
    assert ";" in header and "destination_country" not in header
    assert "Japón" in text or "Allemagne" in text
    assert "Allemagne" in text and "Alemania" in text  # both languages
    assert "CASH" in text and "DEBIT" in text


def test_validate_train_promote_through_the_mapping_alone(cli_run, export: Path) -> None:
    validated = cli_run["validate"]
    assert validated.exit_code == 0, validated.output
    assert "train would accept this history" in validated.output
    assert "outcome = Anulado" in _flat(validated.output)  # 40 cancelled rows, counted

    trained = cli_run["train"]
    assert trained.exit_code == 0, trained.output
    out = _flat(trained.output)
    assert f"{ROWS:,} of {ROWS + 40:,} rows used" in out
    assert "left out 40: excluded by the mapping: outcome = Anulado" in out

    challenger = cli_run["challenger"]
    key = challenger.tags[DATA_KEY_TAG]
    assert f"version {challenger.version} is the challenger" in out
    assert f"frozen evaluation set {key}" in out

    promoted = cli_run["promote"]
    assert promoted.exit_code in (0, 1), promoted.output  # accepted or refused, both judged
    said = _flat(promoted.output)
    assert f"scored on the challenger's frozen evaluation set {key}" in said
    assert "loss: " in said and "challenger log loss" in said and "Traceback" not in said


def test_the_export_has_its_own_frozen_set(cli_run, trained) -> None:
    key = cli_run["challenger"].tags[DATA_KEY_TAG]
    session = registry.client().get_model_version(registry.model_name(), trained.version)
    assert session.tags[DATA_KEY_TAG] != key
    assert frozen_eval_uri(key) != frozen_eval_uri(session.tags[DATA_KEY_TAG])
    assert cli_run["challenger"].tags["run_id"] in frozen_eval_uri(key)


def test_a_changed_mapping_never_compares_on_the_old_frozen_set(
    cli_run, export: Path, tmp_path: Path
) -> None:
    old_key = cli_run["challenger"].tags[DATA_KEY_TAG]
    old_set = frozen_eval_uri(old_key)
    changed = tmp_path / "mapping_v2.yaml"  # the seller now reads times as Madrid time
    changed.write_text(
        EXAMPLE_MAPPING.read_text(encoding="utf-8").replace(
            "timezone: UTC", "timezone: Europe/Madrid"
        ),
        encoding="utf-8",
    )
    new_key = load_history(export, mapping=changed).key
    assert new_key != old_key

    result = train(export, mapping=changed, with_baseline=False)
    version = registry.client().get_model_version(registry.model_name(), result.version)
    assert version.tags[DATA_KEY_TAG] == new_key
    new_set = frozen_eval_uri(new_key)
    assert new_set is not None and new_set != old_set and result.run_id in new_set

    decision = decide()
    assert decision.challenger == result.version
    assert decision.frozen_set == new_set != old_set
    assert f"the challenger's frozen evaluation set {new_key}" in decision.evaluated_on
    assert frozen_eval_uri(old_key) == old_set  # the old set is kept for the old mapping
