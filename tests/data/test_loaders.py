"""Loading real seller histories: mapping, validation, maturity/open split, report, CLI.

``fixtures/seller_export.csv`` is a 24-row export with the seller's own column names and
spellings, mapped by ``fixtures/seller_mapping.yaml`` (naive times in Asia/Shanghai). It holds
ten bad rows of different kinds, two open shipments and two immature ones; the expected
problems below are the fixture's ground truth, written down by hand when it was made.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from shiprisk.cli import app
from shiprisk.data.contract import SCHEMA_FIELDS
from shiprisk.data.loaders import (
    Mapping,
    apply_mapping,
    load_history,
    load_mapping,
    print_report,
    read_table,
)

FIXTURES = Path(__file__).parent / "fixtures"
EXPORT = FIXTURES / "seller_export.csv"
MAPPING = FIXTURES / "seller_mapping.yaml"
AS_OF = datetime(2025, 12, 31, tzinfo=UTC)

EXPECTED_PROBLEMS = {
    (3, "payment_method"),  # "Bitcoin": no mapping, not a contract value
    (5, "weight_kg"),  # -0.5
    (7, "destination_country"),  # "USA"
    (9, "created_at"),  # 2099: in the future
    (11, "buyer_prior_refusals"),  # 5 refusals of 2 orders
    (13, "outcome_date"),  # before created_at
    (15, "shipment_id"),  # LP001 again (row 1 keeps it)
    (17, "item_count"),  # "two"
    (17, "currency"),  # "XYZ"
    (19, "channel_id"),  # "DHL Express!" on an open shipment: still checked
    (22, "fragile"),  # "maybe"
}
BAD_ROWS = {row for row, _ in EXPECTED_PROBLEMS}
OPEN_ROWS = {20, 21}  # "In transit" (mapped to null) and an empty status
IMMATURE_ROWS = {18, 23}  # created within 60 days of AS_OF
TRAIN_ROWS = set(range(1, 25)) - BAD_ROWS - OPEN_ROWS - IMMATURE_ROWS


def problems(errors: pd.DataFrame) -> set[tuple[int, str]]:
    return set(zip(errors["row"].tolist(), errors["field"].tolist(), strict=True))


@pytest.fixture(scope="module")
def loaded():
    return load_history(EXPORT, mapping=MAPPING, maturity_days=60, as_of=AS_OF)


def test_every_bad_row_is_reported_with_its_field(loaded) -> None:
    assert problems(loaded.errors) == EXPECTED_PROBLEMS
    assert loaded.n_invalid == len(BAD_ROWS) == 10
    by_key = loaded.errors.set_index(["row", "field"])
    assert by_key.loc[(3, "payment_method"), "value"] == "Bitcoin"
    assert by_key.loc[(15, "shipment_id"), "reason"] == "duplicate shipment_id"
    assert list(loaded.errors.columns[:3]) == ["row", "field", "reason"]


def test_rows_split_into_train_open_immature(loaded) -> None:
    assert loaded.n_rows == 24
    assert (loaded.n_open, loaded.n_immature) == (len(OPEN_ROWS), len(IMMATURE_ROWS))
    assert set((loaded.train.index + 1).tolist()) == TRAIN_ROWS
    assert loaded.n_rows == loaded.n_train + loaded.n_invalid + loaded.n_open + loaded.n_immature
    assert loaded.as_of == AS_OF


def test_mapping_translates_names_spellings_and_defaults(loaded) -> None:
    train = loaded.train
    assert list(train.columns[: len(SCHEMA_FIELDS["history"])]) == list(SCHEMA_FIELDS["history"])
    row4 = train.loc[3]  # SO-1004: COD, Yes, Returned, Namibia ("NA" is not missing)
    assert (row4["payment_method"], row4["outcome"], row4["destination_country"]) == (
        "cod",
        "rejected",
        "NA",
    )
    assert row4["fragile"] and row4["remote_area"]
    assert row4["address_quality"] == "unverified"
    assert set(train["duties_terms"]) == {"DDU"}  # default for the missing column
    assert train.loc[23, "payment_method"] == "prepaid"  # " Prepaid " padded in the file
    assert train["Note"].loc[3] == "Namibia"  # non-contract column kept
    # naive "2025-06-02 09:15:00" is Shanghai time -> 01:15 UTC
    assert train.loc[0, "created_at"] == pd.Timestamp("2025-06-02T01:15:00Z")
    assert train["item_count"].dtype == np.int64 and train["fragile"].dtype == np.bool_


def test_timezone_of_naive_times_matters_for_maturity() -> None:
    # SO-1012 was created 2025-11-01 06:00 in Shanghai = 2025-10-31 22:00 UTC: just mature.
    mapping = load_mapping(MAPPING)
    as_utc = mapping.model_copy(update={"timezone": "UTC"})
    shanghai = load_history(EXPORT, mapping=mapping, maturity_days=60, as_of=AS_OF)
    utc = load_history(EXPORT, mapping=as_utc, maturity_days=60, as_of=AS_OF)
    assert 11 in shanghai.train.index and 11 not in utc.train.index
    assert utc.n_immature == shanghai.n_immature + 1


@pytest.mark.parametrize(
    ("maturity_days", "as_of", "n_immature"),
    [
        (0, AS_OF, 0),
        (60, AS_OF, 2),
        (400, AS_OF, len(TRAIN_ROWS) + 2),  # every valid history row is too young
        (0, datetime(2025, 12, 1, tzinfo=UTC), 2),  # 18 (outcome 12-02) and 23 lie ahead
    ],
)
def test_maturity_window(maturity_days: int, as_of: datetime, n_immature: int) -> None:
    result = load_history(EXPORT, mapping=MAPPING, maturity_days=maturity_days, as_of=as_of)
    assert result.n_immature == n_immature
    assert result.n_train == len(TRAIN_ROWS) + len(IMMATURE_ROWS) - n_immature
    assert result.n_open == len(OPEN_ROWS) and problems(result.errors) == EXPECTED_PROBLEMS


def test_parquet_input_gives_the_same_result(tmp_path: Path, loaded) -> None:
    text_parquet = tmp_path / "export.parquet"
    read_table(EXPORT).to_parquet(text_parquet, index=False)
    again = load_history(text_parquet, mapping=MAPPING, maturity_days=60, as_of=AS_OF)
    assert problems(again.errors) == EXPECTED_PROBLEMS
    assert (again.n_open, again.n_immature, again.n_train) == (2, 2, loaded.n_train)

    typed = tmp_path / "typed.parquet"  # typed columns (datetimes, bools, ints) round trip
    loaded.train.to_parquet(typed)
    clean = load_history(typed, maturity_days=60, as_of=AS_OF)
    assert clean.errors.empty and clean.n_train == loaded.n_train
    pd.testing.assert_frame_equal(
        clean.train.reset_index(drop=True),
        loaded.train.reset_index(drop=True),
        check_dtype=False,
    )


def test_dataframe_input_keeps_extra_columns(sim_frame: pd.DataFrame) -> None:
    frame = sim_frame.head(3000)
    result = load_history(frame, maturity_days=0, as_of=datetime.now(UTC))
    assert result.errors.empty and result.n_train == len(frame)
    for extra in ("true_p_loss", "true_p_reject"):
        np.testing.assert_array_equal(result.train[extra].to_numpy(), frame[extra].to_numpy())
    assert sim_frame.columns.tolist() == frame.columns.tolist()  # input not modified


def test_read_table_rejects_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "export.xlsx"
    path.write_bytes(b"not really excel")
    with pytest.raises(ValueError, match=r"\.csv.*\.parquet"):
        read_table(path)


def test_csv_is_read_as_text() -> None:
    frame = read_table(EXPORT)
    assert all(pd.api.types.is_string_dtype(t) for t in frame.dtypes)
    assert frame.loc[3, "Country"] == "NA" and frame.loc[0, "Note"] == ""


def test_mapping_file_keeps_yes_no_as_spellings() -> None:
    mapping = load_mapping(MAPPING)
    assert mapping.values["fragile"] == {"Yes": True, "No": False}
    assert mapping.values["outcome"]["In transit"] is None
    assert mapping.defaults == {"duties_terms": "DDU"}


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("columns: {Weight: weight}\n", "weight"),
        ("values: {payment_method: {COD: cash}}\n", "cash"),
        ("values: {fragile: {Yes: sometimes}}\n", "fragile"),
        ("defaults: {duties_terms: DAP}\n", "DAP"),
        ("columns: {A: order_id, B: order_id}\n", "order_id"),
        ("timezone: Mars/Olympus\n", "Mars/Olympus"),
        ("colums: {A: order_id}\n", "colums"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_bad_mapping_files_are_refused(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ValueError, match=message):
        load_mapping(path)


def test_mapping_onto_an_existing_column_is_refused() -> None:
    frame = pd.DataFrame({"order_id": ["A"], "Order No": ["B"]})
    with pytest.raises(ValueError, match="order_id"):
        apply_mapping(frame, Mapping(columns={"Order No": "order_id"}))


def test_report_writes_every_error_atomically(tmp_path: Path, loaded) -> None:
    report = tmp_path / "out" / "errors.csv"
    console = Console(record=True, width=200)
    print_report(loaded, console=console, report_path=report)
    written = pd.read_csv(report, dtype={"value": str}, keep_default_na=False)
    assert problems(written) == EXPECTED_PROBLEMS and len(written) == len(loaded.errors)
    assert sorted(p.name for p in report.parent.iterdir()) == ["errors.csv"]  # no temp left
    text = console.export_text()
    assert "rows read" in text and "payment_method" in text and "^[a-z0-9_]{1,40}$" in text


# -- the CLI ------------------------------------------------------------------------------------


def _without_rows(rows: set[int], target: Path) -> Path:
    with EXPORT.open(newline="") as f:
        lines = list(csv.reader(f))
    kept = [lines[0]] + [line for i, line in enumerate(lines[1:], start=1) if i not in rows]
    with target.open("w", newline="") as f:
        csv.writer(f).writerows(kept)
    return target


def test_cli_validate_bad_file_exits_1_and_reports(tmp_path: Path) -> None:
    report = tmp_path / "problems.csv"
    args = ["data", "validate", str(EXPORT), "--mapping", str(MAPPING), "--report", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "10 invalid row(s)" in result.output
    assert problems(pd.read_csv(report)) == EXPECTED_PROBLEMS


def test_cli_validate_clean_but_small_file_says_train_would_refuse(tmp_path: Path) -> None:
    clean = _without_rows(BAD_ROWS, tmp_path / "clean.csv")
    result = CliRunner().invoke(app, ["data", "validate", str(clean), "--mapping", str(MAPPING)])
    assert result.exit_code == 1, result.output  # valid rows, but too few for train
    assert "no invalid rows" in result.output
    assert "train would refuse: only 12 valid, mature rows" in " ".join(result.output.split())


def test_cli_validate_bad_mapping_exits_2(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("columns: {Qty: quantity}\n")
    result = CliRunner().invoke(app, ["data", "validate", str(EXPORT), "--mapping", str(mapping)])
    assert result.exit_code == 2 and "quantity" in result.output
