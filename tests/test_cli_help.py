"""`shiprisk ... --help` is written for users: every option shows its default (or says it is
required), no developer notes, no type artefacts, and the documented formats exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEVELOPER_NOTES = ("lazily", "import time", "stays fast", "``", "TODO", "XXX")


def _commands() -> list[list[str]]:
    """Every command path, e.g. ['data', 'generate'], found by walking the click tree."""
    root = typer.main.get_command(app)
    out: list[list[str]] = [[]]

    def walk(cmd: object, path: list[str]) -> None:
        for name, sub in getattr(cmd, "commands", {}).items():
            out.append([*path, name])
            walk(sub, [*path, name])

    walk(root, [])
    return out


COMMANDS = _commands()


def _help(path: list[str]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_covered():
    names = {" ".join(p) for p in COMMANDS}
    assert {"run", "serve", "train", "promote", "score-open", "data generate"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "shiprisk")
def test_help_is_for_users(path: list[str]):
    text = _help(path)
    for note in DEVELOPER_NOTES:
        assert note not in text, f"developer note {note!r} in `{' '.join(path)} --help`"
    assert "<bool>" not in text
    assert "..." not in text.split("Commands:")[-1] or "Commands:" not in text  # not truncated
    # Every option other than --help states a default or that it is required.
    options = re.split(r"\n  (?=--)", text.split("Options:", 1)[1]) if "Options:" in text else []
    for block in options:
        name = block.split()[0] if block.strip() else ""
        if not name.startswith("--") or name == "--help":
            continue
        flat = " ".join(block.split())
        assert "[default:" in flat or "[required" in flat, f"{name}: no default in {flat!r}"


def test_defaults_come_from_the_settings():
    """One home per number: help shows what Settings says, and data generate draws it."""
    rows = Settings.model_fields["default_rows"].default
    generate = " ".join(_help(["data", "generate"]).split())
    assert f"[default: {rows:,};" in generate
    assert f"[default: {rows:,};" in " ".join(_help(["run"]).split())
    port = Settings.model_fields["port"].default
    assert f"[default: {port};" in " ".join(_help(["serve"]).split())
    days = Settings.model_fields["maturity_days"].default
    assert f"[default: {days};" in " ".join(_help(["data", "validate"]).split())


def test_linked_formats_exist():
    """The --costs example loads as the batch run loads it; --mapping links the history doc."""
    from shiprisk.decisions.costs import SellerCosts
    from shiprisk.serving.batch import load_costs

    text = " ".join(_help(["score-open"]).split())
    assert "examples/costs.yaml" in text and "docs/history.md" in text
    costs = load_costs(ROOT / "examples" / "costs.yaml")
    assert costs != SellerCosts()  # the example really overrides something
    assert "examples/open_shipments.csv" in text
    assert (ROOT / "examples" / "open_shipments.csv").is_file()
