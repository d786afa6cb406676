"""docs/history.md documents every contract field and mapping option; the template and the
examples are real, loadable files, and the example history validates with its mapping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.data.contract import FIELDS, SPECS
from shiprisk.data.mapping import EXCLUDE, UNITS, Derived, FileOptions, Mapping, load_mapping

REPO = Path(__file__).parents[2]
DOC = (REPO / "docs" / "history.md").read_text(encoding="utf-8")
EXAMPLES = REPO / "examples"


def _documented_fields() -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", DOC, flags=re.MULTILINE))


def test_every_contract_field_is_documented_once() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \|", DOC, flags=re.MULTILINE)
    assert {f.name for f in FIELDS} <= set(rows)
    assert set(SPECS) <= _documented_fields()  # channel, ids and the outcome too
    assert len(rows) == len(set(rows))
    for spec in SPECS.values():  # every allowed value of a fixed-value field is listed
        row = re.search(rf"^\| `{spec.name}` \|.*$", DOC, flags=re.MULTILINE).group(0)
        for value in spec.values or ():
            assert value in row, (spec.name, value)


def test_every_mapping_option_is_documented() -> None:
    options = [*Mapping.model_fields, *FileOptions.model_fields, "from", "add_days", EXCLUDE]
    missing = [o for o in options if f"`{o}`" not in DOC]
    assert not missing
    missing_units = [u for units in UNITS.values() for u in units if u not in DOC]
    assert not missing_units
    assert "FIELD_" not in DOC and "DATACO_FIGURES" not in DOC  # no placeholder left


def test_data_template_writes_a_mapping_with_every_option(tmp_path: Path) -> None:
    target = tmp_path / "mapping.yaml"
    result = CliRunner().invoke(app, ["data", "template", str(target)])
    assert result.exit_code == 0, result.output
    mapping = load_mapping(target)
    text = target.read_text(encoding="utf-8")
    for option in (*Mapping.model_fields, *FileOptions.model_fields, *Derived.model_fields):
        key = "from" if option == "source" else option
        assert re.search(rf"(?<![\w#]){key}:", text), option
    assert mapping.values["outcome"]["Cancelled"] == EXCLUDE
    again = CliRunner().invoke(app, ["data", "template", str(target)])
    assert again.exit_code == 2 and "exists" in again.output  # never overwrites


def test_the_example_history_validates_and_would_train() -> None:
    args = [
        "data",
        "validate",
        str(EXAMPLES / "history.csv"),
        "--mapping",
        str(EXAMPLES / "history_mapping.yaml"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "no invalid rows" in result.output
    assert "train would accept this history" in result.output


@pytest.mark.parametrize("name", ["history_mapping.yaml", "dataco_mapping.yaml"])
def test_example_mappings_load(name: str) -> None:
    assert load_mapping(EXAMPLES / name).columns


def test_readme_and_help_point_to_the_docs_and_examples() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for link in ("docs/history.md", "examples/history.csv", "examples/history_mapping.yaml"):
        assert link in readme, link
    help_text = " ".join(CliRunner().invoke(app, ["data", "validate", "--help"]).output.split())
    assert "examples/history_mapping.yaml" in help_text and "docs/history.md" in help_text
