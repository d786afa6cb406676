"""The contract's pydantic schemas and the vectorised table validator agree, field by field.

Invalid cases are derived from ``contract.SPECS`` (bounds, enums, patterns, kinds), so a new
field or a changed bound is covered without editing this file. Each case must be rejected by
every pydantic schema that has the field *and* by ``validate_frame`` (typed values and the
CSV text form), both naming the same field; a property test then checks both validators on
random mixes of valid and invalid rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shiprisk.data import contract
from shiprisk.data.contract import CROSS_FIELD_RULES, SCHEMA_FIELDS, SCHEMAS, SPECS
from shiprisk.data.validation import (
    DUPLICATE_ID,
    MISSING_COLUMN,
    describe_validation_error,
    validate_frame,
)

SCHEMA_NAMES = tuple(SCHEMA_FIELDS)
NOW = datetime.now(UTC)
DROP = object()
"""Case value meaning: leave the field out of the row."""
RULE_FIELDS = {field for rules in CROSS_FIELD_RULES.values() for field, _, _ in rules}


def valid_row(schema: str) -> dict[str, Any]:
    """contract.example_request() plus the examples of the schema's other fields."""
    row = contract.example_request()
    row.update({n: SPECS[n].example for n in SCHEMA_FIELDS[schema] if n not in row})
    return row


def required(schema: str, name: str) -> bool:
    return SCHEMAS[schema].model_fields[name].is_required()


def as_text(value: Any) -> str:
    """A value as a CSV cell would hold it (what read_table hands the validator)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True)
class Case:
    """One invalid value (or several), the field it must be blamed on, and where it applies."""

    id: str
    changes: dict[str, Any]
    field: str
    text_form: bool = True  # False: the value is only wrong as a typed value (e.g. int id)

    def applies(self, schema: str) -> bool:
        names = SCHEMA_FIELDS[schema]
        if not all(n in names for n in self.changes):
            return False
        # an empty cell (or a typed NaN) is how a table spells "no value": fine for an
        # optional field, which is then unknown
        value = self.changes.get(self.field, 0)
        blank = value in (DROP, None, "") or (isinstance(value, float) and math.isnan(value))
        return not (blank and not required(schema, self.field))


def _cases() -> list[Case]:
    cases: list[Case] = []
    future = NOW + contract.MAX_FUTURE + timedelta(days=1)
    early = contract.EARLIEST_CREATED_AT - timedelta(days=30)
    for name, spec in SPECS.items():
        add = lambda tag, value, text=True, n=name: cases.append(  # noqa: E731
            Case(f"{n}-{tag}", {n: value}, n, text)
        )
        add("missing", DROP)
        add("null", None)
        if spec.kind == "enum":
            add("unknown", f"not_a_{name}")
            add("wrong-case", str(spec.values[0]).swapcase())
        elif spec.kind in ("int", "float"):
            if spec.ge is not None:
                add("below-min", spec.ge - 1)
            if spec.gt is not None:
                add("zero", spec.gt)
                add("negative", spec.gt - 1)
            if spec.le is not None:
                add("too-large", spec.le * 10)
            add("word", "abc")
            if spec.kind == "float":
                add("nan", math.nan)
                add("inf", math.inf)
            else:
                add("fraction", 1.5)
        elif spec.kind == "bool":
            add("word", "maybe")
            add("two", 2)
        elif spec.kind == "str":
            add("empty", "")
            add("bad-pattern", str(spec.example)[:-1] + "!")
            add("number", 123, text=False)
            if spec.max_length is not None:
                add("too-long", "A" * (spec.max_length + 1))
        elif spec.kind == "datetime":
            add("word", "yesterday")
            add("future", future.isoformat())
            add("before-2000", early.isoformat())
        elif spec.kind == "date":
            add("word", "soon")
            add("with-time", f"{spec.example}T10:30:00")
    cases.append(
        Case(
            "refusals-exceed-orders",
            {"buyer_prior_orders": 1, "buyer_prior_refusals": 2},
            "buyer_prior_refusals",
        )
    )
    created = datetime.fromisoformat(SPECS["created_at"].example)
    cases.append(
        Case(
            "outcome-before-created",
            {"outcome_date": (created - timedelta(days=1)).date().isoformat()},
            "outcome_date",
        )
    )
    return cases


CASES = _cases()
SCHEMA_CASES = [
    pytest.param(schema, case, id=f"{schema}-{case.id}")
    for schema in SCHEMA_NAMES
    for case in CASES
    if case.applies(schema)
]


def apply(row: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name, value in changes.items():
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def pydantic_fields(schema: str, row: dict[str, Any]) -> set[str]:
    """Fields pydantic blames; an empty text cell is sent as null (table semantics)."""
    row = {k: None if v == "" or _is_nan(v) else v for k, v in row.items()}
    try:
        SCHEMAS[schema].model_validate(row)
    except ValidationError as exc:
        return {e["field"] for e in describe_validation_error(exc)}
    return set()


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def frame_fields(schema: str, rows: list[dict[str, Any]]) -> list[set[str]]:
    result = validate_frame(pd.DataFrame(rows), schema, unique_ids=False)
    per_row: list[set[str]] = [set() for _ in rows]
    for row, field in zip(result.errors["row"], result.errors["field"], strict=True):
        per_row[row - 1].add(field)
    assert (result.valid_mask == [not f for f in per_row]).all()
    return per_row


# -- valid rows ---------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", SCHEMA_NAMES)
def test_example_row_is_accepted_everywhere(schema: str) -> None:
    row = valid_row(schema)
    model = SCHEMAS[schema].model_validate(row)
    assert model.created_at.tzinfo is not None
    for rows in ([row], [{k: as_text(v) for k, v in row.items()}]):
        result = validate_frame(pd.DataFrame(rows), schema)
        assert result.errors.empty, result.errors
        assert result.n_invalid == 0 and result.valid_mask.tolist() == [True]
        assert list(result.valid.columns) == list(SCHEMA_FIELDS[schema])
        got = result.valid.iloc[0]
        for name in SCHEMA_FIELDS[schema]:
            expected = getattr(model, name)
            if SPECS[name].kind == "date":
                assert got[name] == pd.Timestamp(expected)
            else:
                assert got[name] == expected, name


@pytest.mark.parametrize("schema", SCHEMA_NAMES)
def test_valid_frame_has_contract_dtypes(schema: str) -> None:
    rows = [{k: as_text(v) for k, v in valid_row(schema).items()}]
    valid = validate_frame(pd.DataFrame(rows), schema).valid
    for name in SCHEMA_FIELDS[schema]:
        dtype, kind = valid[name].dtype, SPECS[name].kind
        if kind == "datetime":
            assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"
        elif kind == "date":
            assert dtype == np.dtype("datetime64[ns]")
        elif kind == "int":
            assert dtype == np.int64
        elif kind == "float":
            assert dtype == np.float64
        elif kind == "bool":
            assert dtype == np.bool_
        else:
            assert pd.api.types.is_string_dtype(dtype), (name, dtype)


# -- each invalid value, field by field -------------------------------------------------------


@pytest.mark.parametrize(("schema", "case"), SCHEMA_CASES)
def test_pydantic_rejects_and_names_the_field(schema: str, case: Case) -> None:
    row = apply(valid_row(schema), case.changes)
    with pytest.raises(ValidationError) as info:
        SCHEMAS[schema].model_validate(row)
    described = describe_validation_error(info.value)
    assert {e["field"] for e in described} == {case.field}
    assert all(e["reason"] for e in described)


@pytest.fixture(scope="module")
def case_batches() -> dict[tuple[str, str], tuple[pd.DataFrame, dict[str, int]]]:
    """Per schema and form (typed / CSV text): every case validated in one frame.

    Cases alternate with valid rows, so a check that leaked onto a neighbour would show;
    one validate_frame call per batch keeps the file fast. Maps each case id to its row.
    """
    out = {}
    for schema, form in ((s, f) for s in SCHEMA_NAMES for f in ("typed", "text")):
        good = valid_row(schema)
        batch, rows_of = [good], {}
        for case in CASES:
            if case.applies(schema) and (form == "typed" or case.text_form):
                batch += [apply(good, case.changes), good]
                rows_of[case.id] = len(batch) - 1  # 1-based row number of the case
        if form == "text":
            batch = [{k: as_text(v) for k, v in r.items()} for r in batch]
        result = validate_frame(pd.DataFrame(batch), schema, unique_ids=False)
        assert result.valid_mask[::2].all() and not result.valid_mask[1::2].any()
        assert len(result.valid) == len(batch) - result.n_invalid == len(rows_of) + 1
        out[schema, form] = (result.errors, rows_of)
    return out


@pytest.mark.parametrize(("schema", "case"), SCHEMA_CASES)
def test_validate_frame_rejects_and_names_the_same_field(
    schema: str, case: Case, case_batches: dict[tuple[str, str], tuple[pd.DataFrame, dict]]
) -> None:
    for form in ("typed", "text") if case.text_form else ("typed",):
        errors, rows_of = case_batches[schema, form]
        mine = errors[errors["row"] == rows_of[case.id]]
        assert set(mine["field"]) == {case.field}, (form, mine)


@pytest.mark.parametrize("schema", SCHEMA_NAMES)
def test_unknown_field_pydantic_rejects_frame_ignores(schema: str) -> None:
    row = dict(valid_row(schema), buyer_name="Jane Doe")
    with pytest.raises(ValidationError) as info:
        SCHEMAS[schema].model_validate(row)
    assert describe_validation_error(info.value) == [
        {"field": "buyer_name", "reason": "Extra inputs are not permitted"}
    ]
    result = validate_frame(pd.DataFrame([row]), schema)
    assert result.errors.empty and "buyer_name" not in result.valid.columns


def test_nested_candidate_error_names_dotted_path() -> None:
    row = dict(valid_row("request"), candidates=[{"channel_id": "epacket"}, {"channel_id": "X!"}])
    with pytest.raises(ValidationError) as info:
        SCHEMAS["request"].model_validate(row)
    assert [e["field"] for e in describe_validation_error(info.value)] == [
        "candidates.1.channel_id"
    ]


def test_cross_field_reason_is_the_rules_reason() -> None:
    row = apply(valid_row("history"), {"buyer_prior_orders": 0, "buyer_prior_refusals": 1})
    with pytest.raises(ValidationError) as info:
        SCHEMAS["history"].model_validate(row)
    (err,) = describe_validation_error(info.value)
    (rule_field, rule_reason, _) = CROSS_FIELD_RULES["request"][0]
    assert err == {"field": rule_field, "reason": rule_reason}
    errors = validate_frame(pd.DataFrame([row]), "history").errors
    assert errors[["field", "reason"]].values.tolist() == [[rule_field, rule_reason]]


# -- table behaviour ----------------------------------------------------------------------------


def test_missing_required_column_is_an_error_on_every_row() -> None:
    rows = [valid_row("history") for _ in range(4)]
    for i, r in enumerate(rows):
        r["shipment_id"] = f"SH-{i}"
    frame = pd.DataFrame(rows).drop(columns=["declared_value"])
    result = validate_frame(frame, "history")
    assert result.errors["row"].tolist() == [1, 2, 3, 4]
    assert set(result.errors["field"]) == {"declared_value"}
    assert set(result.errors["reason"]) == {MISSING_COLUMN}
    assert result.valid.empty and result.n_invalid == 4


def test_optional_channel_may_be_absent_in_requests() -> None:
    frame = pd.DataFrame([valid_row("request")]).drop(columns=["channel_id"])
    result = validate_frame(frame, "request")
    assert result.errors.empty and "channel_id" not in result.valid.columns


def test_only_core_fields_are_required() -> None:
    """Every schema requires exactly the core fields it has; the rest may be absent."""
    for schema, names in SCHEMA_FIELDS.items():
        needed = {n for n in names if required(schema, n)}
        expected = {n for n in names if SPECS[n].core}
        if schema == "request":  # checkout may leave the channel to the recommendation
            expected.discard("channel_id")
        assert needed == expected, schema
    assert set(contract.CORE_FIELDS) >= {"created_at", "destination_country", "channel_id"}


def test_absent_optional_fields_stay_absent_and_unknown() -> None:
    """A history without weight, packaging and buyer history validates; those columns are
    not made up (absent), and a blank optional cell is unknown (NaN), not an error."""
    rows = [dict(valid_row("history"), shipment_id=f"S{i}") for i in range(3)]
    frame = pd.DataFrame(rows).drop(columns=["weight_kg", "packaging", "buyer_prior_orders"])
    frame["fragile"] = ["true", "", "false"]
    frame["buyer_prior_refusals"] = ["1", "", "0"]
    result = validate_frame(frame, "history")
    assert result.errors.empty, result.errors
    assert not {"weight_kg", "packaging", "buyer_prior_orders"} & set(result.valid.columns)
    assert result.valid["fragile"].isna().tolist() == [False, True, False]
    assert result.valid["buyer_prior_refusals"].tolist()[::2] == [1.0, 0.0]
    # the refusals rule needs both counts: with orders unknown it does not apply
    row = {k: v for k, v in valid_row("request").items() if k != "buyer_prior_orders"}
    assert contract.ShipmentRequest.model_validate(dict(row, buyer_prior_refusals=5))


def test_duplicate_ids_blame_every_later_occurrence() -> None:
    ids = ["A", "B", "A", "C", "A", "B"]
    frame = pd.DataFrame([dict(valid_row("open"), shipment_id=i) for i in ids])
    result = validate_frame(frame, "open", row_numbers=np.arange(101, 107))
    assert result.errors["row"].tolist() == [103, 105, 106]
    assert set(result.errors["reason"]) == {DUPLICATE_ID}
    assert result.valid["shipment_id"].tolist() == ["A", "B", "C"]
    assert validate_frame(frame, "open", unique_ids=False).errors.empty


def test_every_error_of_a_row_is_reported_and_index_is_kept() -> None:
    bad = apply(valid_row("history"), {"currency": "XYZ", "weight_kg": -1, "fragile": "perhaps"})
    frame = pd.DataFrame([valid_row("history"), bad], index=[10, 20])
    frame["shipment_id"] = ["S1", "S2"]
    frame["note"] = ["kept out", "of valid"]
    result = validate_frame(frame, "history")
    assert sorted(result.errors["field"]) == ["currency", "fragile", "weight_kg"]
    assert set(result.errors["row"]) == {2}
    assert result.valid.index.tolist() == [10] and "note" not in result.valid.columns


@pytest.mark.parametrize(
    ("spelling", "value"),
    [("TRUE", True), ("yes", True), ("Yes", True), ("1", True), ("false", False), ("NO", False),
     ("0", False)],
)  # fmt: skip
def test_boolean_spellings(spelling: str, value: bool) -> None:
    row = {k: as_text(v) for k, v in valid_row("request").items()}
    row["fragile"] = spelling
    result = validate_frame(pd.DataFrame([row]), "request")
    assert result.errors.empty and bool(result.valid["fragile"].iloc[0]) is value
    assert SCHEMAS["request"].model_validate(row).fragile is value


def test_naive_times_are_utc_unless_a_zone_is_given() -> None:
    row = {k: as_text(v) for k, v in valid_row("request").items()}
    row["created_at"] = "2025-03-01 08:00:00"
    utc = validate_frame(pd.DataFrame([row]), "request").valid["created_at"].iloc[0]
    local = validate_frame(pd.DataFrame([row]), "request", timezone="Asia/Shanghai").valid
    assert utc == pd.Timestamp("2025-03-01T08:00:00Z")
    assert local["created_at"].iloc[0] == pd.Timestamp("2025-03-01T00:00:00Z")


def test_now_bounds_the_future() -> None:
    row = valid_row("request")  # created 2025-11-03T09:30Z
    early_clock = datetime(2025, 10, 1, tzinfo=UTC)
    errors = validate_frame(pd.DataFrame([row]), "request", now=early_clock).errors
    assert errors[["field", "reason"]].values.tolist() == [["created_at", "is in the future"]]


# -- agreement on random mixes of valid and invalid rows --------------------------------------


def _valid_value(name: str) -> st.SearchStrategy[Any]:
    spec = SPECS[name]
    if spec.kind == "enum":
        return st.sampled_from(spec.values)
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "int":
        low = int(spec.ge if spec.ge is not None else spec.gt + 1)
        return st.integers(min_value=low, max_value=int(spec.le))
    if spec.kind == "float":
        low = spec.ge if spec.ge is not None else spec.gt
        return st.floats(
            min_value=low, max_value=spec.le, exclude_min=spec.gt is not None, allow_nan=False
        )
    if spec.kind == "datetime":
        latest = NOW.replace(tzinfo=None) - timedelta(days=1)
        return st.datetimes(datetime(2000, 1, 2), latest, timezones=st.just(UTC))
    if spec.kind == "str":
        return st.from_regex(spec.pattern, fullmatch=True)
    raise AssertionError(f"no strategy for {spec.kind}")


@st.composite
def rows(draw: st.DrawFn, schema: str) -> dict[str, Any]:
    names = SCHEMA_FIELDS[schema]
    row = {n: draw(_valid_value(n)) for n in names if SPECS[n].kind != "date"}
    if draw(st.booleans()):  # half the rows respect refusals <= orders
        row["buyer_prior_refusals"] = min(row["buyer_prior_refusals"], row["buyer_prior_orders"])
    if "outcome_date" in names:
        row["outcome_date"] = row["created_at"].date() + timedelta(draw(st.integers(0, 120)))
    cases = [c for c in CASES if c.applies(schema)]
    injected = draw(st.lists(st.sampled_from(cases), min_size=1, max_size=2))
    for case in injected if draw(st.booleans()) else ():
        row.update({k: None if v is DROP else v for k, v in case.changes.items()})
    return row


@pytest.mark.parametrize("schema", SCHEMA_NAMES)
@settings(max_examples=15, deadline=None, derandomize=True)
@given(data=st.data())
def test_frame_and_pydantic_agree_on_random_rows(schema: str, data: st.DataObject) -> None:
    batch = data.draw(st.lists(rows(schema), min_size=5, max_size=20))
    text_batch = [{k: as_text(v) for k, v in r.items()} for r in batch]
    for form in (batch, text_batch):
        by_frame = frame_fields(schema, form)
        for row, frame_says in zip(form, by_frame, strict=True):
            pydantic_says = pydantic_fields(schema, row)
            assert bool(pydantic_says) == bool(frame_says), (row, pydantic_says, frame_says)
            # pydantic skips cross-field rules once a field fails; the frame still checks a
            # rule whose inputs are valid, so it may name a rule's field in addition
            assert pydantic_says <= frame_says, (row, pydantic_says, frame_says)
            assert frame_says - pydantic_says <= RULE_FIELDS, (row, pydantic_says, frame_says)


NUMERIC = [f.name for f in contract.FIELDS if f.kind in ("int", "float")]


@pytest.mark.parametrize("name", NUMERIC)
def test_booleans_are_not_numbers(name: str) -> None:
    """JSON true/false in a numeric field is refused and named (lax pydantic reads 1/0)."""
    import json

    body = {**contract.example_request(), name: True}
    with pytest.raises(ValidationError) as caught:
        contract.ShipmentRequest.model_validate_json(json.dumps(body))
    assert [e["loc"] for e in caught.value.errors()] == [(name,)]
    assert "not true or false" in str(caught.value)


def test_json_schema_bounds_are_json_schema_keywords() -> None:
    """Bounds show as minimum/maximum (never pydantic's raw ge/le): fuzzers and clients
    generate requests from this document."""
    from shiprisk.decisions.costs import Constraints, SellerCosts

    def raw_bounds(node: object, path: str = "") -> list[str]:
        if isinstance(node, dict):
            found = [f"{path}.{k}" for k in node if k in ("ge", "gt", "le", "lt")]
            return found + [p for k, v in node.items() for p in raw_bounds(v, f"{path}.{k}")]
        if isinstance(node, list):
            return [p for i, v in enumerate(node) for p in raw_bounds(v, f"{path}[{i}]")]
        return []

    models = [*contract.SCHEMAS.values(), contract.CandidateChannel, SellerCosts, Constraints]
    for model in models:
        assert not raw_bounds(model.model_json_schema()), model.__name__
