"""The mapping's options on small real files, and every bad-file case from both commands.

Each bad file or mapping must give one actionable line (exit 2, no traceback) from
``shiprisk data validate`` and from ``shiprisk train``; unmapped values make both refuse and
name the values and the option to add them under.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.data.countries import to_alpha2
from shiprisk.data.loaders import load_history
from shiprisk.data.mapping import HistoryFileError, Mapping, load_mapping, map_frame
from tests.data.foreign_export import build_export, write_export

EXAMPLE_MAPPING = Path(__file__).parents[2] / "examples" / "history_mapping.yaml"


@pytest.fixture(scope="module")
def small_sim():
    from shiprisk.data.simulator import simulate

    return simulate(400, seed=5)


@pytest.fixture(scope="module")
def export_path(small_sim, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export") / "pedidos.csv"
    return write_export(build_export(small_sim, seed=5, cancelled=7), path)


def _mapping_without(tmp_path: Path, *drop_lines: str) -> Path:
    """The example mapping with some lines taken out (a mapping a user got wrong)."""
    lines = EXAMPLE_MAPPING.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not any(d in line for d in drop_lines)]
    path = tmp_path / "mapping.yaml"
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


# -- what each option does ---------------------------------------------------------------------


def test_the_foreign_export_maps_back_onto_the_simulated_rows(small_sim, export_path) -> None:
    loaded = load_history(export_path, mapping=EXAMPLE_MAPPING, maturity_days=0)
    assert loaded.errors.empty, loaded.errors.head()
    assert (loaded.n_rows, loaded.n_excluded, loaded.n_train) == (407, 7, 400)
    assert dict(loaded.excluded_by) == {"outcome = Anulado": 7}
    got = loaded.train.sort_index()
    want = small_sim.reset_index(drop=True)
    for name in ("destination_country", "payment_method", "marketplace", "outcome", "fragile"):
        assert got[name].tolist() == want[name].tolist(), name
    # grams -> kg (to the gram), decimal commas, US dates to the minute, d/m/Y outcome dates
    assert np.abs(got["weight_kg"].to_numpy() - want["weight_kg"].to_numpy()).max() <= 0.0005
    np.testing.assert_allclose(got["declared_value"], want["declared_value"].round(2))
    minutes = want["created_at"].dt.floor("min").dt.tz_convert("UTC")
    assert (got["created_at"].to_numpy() == minutes.to_numpy()).all()
    outcome_days = pd.to_datetime(want["outcome_date"]).to_numpy()
    assert (got["outcome_date"].to_numpy() == outcome_days).all()


def test_country_names_in_many_languages_become_iso_codes() -> None:
    names = ["Japón", "Allemagne", "Estados Unidos", "Deutschland", "DEU", "México", "Narnia"]
    codes = to_alpha2(names)
    assert [codes[n] for n in names] == ["JP", "DE", "US", "DE", "DE", "MX", None]


def test_one_column_feeds_several_fields_and_dates_derive() -> None:
    mapping = Mapping.model_validate(
        {
            "columns": {"Ref": ["order_id", "shipment_id"], "Fecha": "created_at"},
            "formats": {"created_at": "%d.%m.%Y %H:%M"},
            "derived": {"outcome_date": {"from": "created_at", "add_days": 14}},
            "units": {"weight_kg": "lb", "length_cm": "in"},
        }
    )
    frame = pd.DataFrame(
        {"Ref": ["A1"], "Fecha": ["31.12.2024 23:30"], "weight_kg": ["2"], "length_cm": ["10"]}
    )
    out = map_frame(frame, mapping).frame
    assert out.loc[0, "order_id"] == out.loc[0, "shipment_id"] == "A1"
    assert out.loc[0, "created_at"] == pd.Timestamp("2024-12-31 23:30")
    assert out.loc[0, "outcome_date"] == pd.Timestamp("2025-01-14")
    assert out.loc[0, "weight_kg"] == pytest.approx(0.90718474)
    assert out.loc[0, "length_cm"] == pytest.approx(25.4)


def test_values_ignore_case_then_patterns_then_exclude() -> None:
    mapping = Mapping.model_validate(
        {
            "values": {"outcome": {"delivered OK": "delivered", "cancelled": "exclude"}},
            "patterns": {"outcome": {"^return": "rejected", "lost|missing": "lost"}},
        }
    )
    cells = ["DELIVERED ok", "Returned to origin", "RETURN", "Missing parcel", "Cancelled", "?"]
    mapped = map_frame(pd.DataFrame({"outcome": cells}), mapping)
    assert mapped.frame["outcome"].tolist()[:4] == ["delivered", "rejected", "rejected", "lost"]
    assert mapped.excluded.tolist() == [False, False, False, False, True, False]
    assert dict(mapped.unmapped["outcome"]) == {"?": 1}


def test_an_unreadable_date_gets_one_error_naming_the_format(tmp_path: Path) -> None:
    frame = pd.DataFrame({"created_at": ["13/45/2024 10:00"], "outcome_date": ["someday"]})
    path = tmp_path / "h.csv"
    frame.to_csv(path, index=False)
    mapping = Mapping(formats={"created_at": "%m/%d/%Y %H:%M"})
    errors = load_history(path, mapping=mapping).errors
    dates = errors[errors["field"].isin(["created_at", "outcome_date"])]
    assert dates.groupby("field").size().to_dict() == {"created_at": 1, "outcome_date": 1}
    reasons = dict(zip(dates["field"], dates["reason"], strict=True))
    assert "%m/%d/%Y %H:%M" in reasons["created_at"]
    assert "formats.outcome_date" in reasons["outcome_date"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"units": {"weight_kg": "stone"}}, "stone"),
        ({"units": {"item_count": "g"}}, "has no unit"),
        ({"formats": {"currency": "%Y"}}, "not a date"),
        ({"patterns": {"outcome": {"([": "lost"}}}, "not a regex"),
        ({"derived": {"outcome_date": {"from": "weight_kg"}}}, "not a date"),
        ({"file": {"encoding": "klingon"}}, "klingon"),
        ({"file": {"delimeter": ";"}}, "delimeter"),
        ({"columns": {"A": ["order_id", "weight"]}}, "weight"),
    ],
)
def test_bad_options_are_refused(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Mapping.model_validate(raw)


# -- every bad-file case: one line, exit 2, from validate and from train -----------------------


def _bad_case(case: str, export: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(history file, mapping file) for a named user mistake."""
    if case == "wrong encoding":
        return export, _mapping_without(tmp_path, "encoding:")
    if case == "wrong delimiter":
        return export, _mapping_without(tmp_path, "delimiter:")
    if case == "empty file":
        (tmp_path / "empty.csv").write_bytes(b"")
        return tmp_path / "empty.csv", EXAMPLE_MAPPING
    if case == "header only":
        header = export.read_bytes().splitlines()[0] + b"\n"
        (tmp_path / "header.csv").write_bytes(header)
        return tmp_path / "header.csv", EXAMPLE_MAPPING
    mapping = tmp_path / "bad.yaml"
    if case == "YAML error":
        mapping.write_text("columns:\n  Estado: outcome\n   Fecha: created_at\n")
    else:  # unknown mapping target
        mapping.write_text("columns:\n  Estado: status\n")
    return export, mapping


BAD_CASES = {
    "wrong encoding": ("line 1 is not valid utf-8", "encoding: latin-1"),
    "wrong delimiter": ("';'-separated", 'delimiter: ";"'),
    "empty file": ("the file is empty", "empty.csv"),
    "header only": ("no data rows", "header.csv"),
    "YAML error": ("not valid YAML at line 3", "bad.yaml"),
    "unknown mapping target": ("status not contract fields", "bad.yaml"),
}


@pytest.mark.parametrize("command", ["validate", "train"])
@pytest.mark.parametrize("case", list(BAD_CASES))
def test_a_bad_file_is_one_actionable_line(
    export_path: Path, tmp_path: Path, case: str, command: str
) -> None:
    history, mapping = _bad_case(case, export_path, tmp_path)
    args = {
        "validate": ["data", "validate", str(history), "--mapping", str(mapping)],
        "train": ["train", "--data", str(history), "--mapping", str(mapping)],
    }[command]
    result = CliRunner().invoke(app, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in BAD_CASES[case]:
        assert needle in lines[0], lines[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_unmapped_values_are_named_by_validate_and_train(export_path, tmp_path: Path) -> None:
    mapping = _mapping_without(tmp_path, "payment_method: {")
    validate = CliRunner().invoke(
        app, ["data", "validate", str(export_path), "--mapping", str(mapping)]
    )
    assert validate.exit_code == 1, validate.output
    flat = " ".join(validate.output.split())
    assert "payment_method: 4 value(s)" in flat and "values.payment_method" in flat
    train = CliRunner().invoke(
        app, ["train", "--data", str(export_path), "--mapping", str(mapping)]
    )
    assert train.exit_code == 2, train.output
    refused = [line for line in train.output.splitlines() if "training refused" in line]
    assert len(refused) == 1 and "values.payment_method" in refused[0], train.output
    assert "'DEBIT'" in refused[0] and "Traceback" not in train.output


def test_mapping_errors_are_one_line_and_name_the_option(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("file:\n  encodng: latin-1\ncolumns: {A: order_id, B: order_id}\n")
    with pytest.raises(HistoryFileError) as caught:
        load_mapping(path)
    text = str(caught.value)
    assert "\n" not in text and "m.yaml" in text and "file.encodng: unknown option" in text
