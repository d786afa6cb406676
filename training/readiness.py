"""Will ``train`` accept this history, and what will it learn from? One answer for both.

``shiprisk data validate`` prints :func:`assess`'s answer and exits non-zero when it lists a
refusal; ``shiprisk train`` runs the same function and refuses with the same reasons, so a
file that validates is a file that trains. The answer holds the rows used and dropped (and
why), events per outcome overall and per time slice (the split ``train`` makes), fields
missing or constant, destinations and channels the catalog does not know, and how old the
newest outcome is.

There is no fixed row minimum: ``train`` accepts what the data supports (docs/history.md,
"Three paths"). A model of its own needs ``MIN_EVENTS`` events of some outcome in the training
slice; a history of fewer than ``RECAL_MAX_ROWS`` rows with at least ``MIN_RECAL_EVENTS``
events of some outcome in the training and calibration slices recalibrates the bundled base
model (training/recalibrate.py; unless ``SHIPRISK_BASE_MODEL=off``). A history that supports
neither is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from shiprisk.data.catalogs import load_catalog
from shiprisk.data.contract import HISTORY_FIELDS, SHIPMENT_FIELDS, SPECS
from shiprisk.data.loaders import HistoryLoad
from shiprisk.models.risk_model import OUTCOME_LABEL, OUTCOMES
from shiprisk.training.config import TrainConfig
from shiprisk.training.recalibrate import MIN_RECAL_EVENTS, RECAL_MAX_ROWS

MIN_EVENTS = 20
TOP_UNMAPPED = 5


@dataclass
class Readiness:
    """What ``train`` would do with a loaded history."""

    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    """Reason -> rows left out (invalid, excluded by the mapping, open, immature)."""
    drop_share: float = 0.0
    """Invalid rows / rows read: the share ``train`` refuses above ``max_drop_share``."""
    events: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Rows and events per outcome: overall and in each time slice of the split."""
    constant: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "0%"


def events_by_slice(frame: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """Rows and events per outcome in the whole history and in each slice of the split."""
    from shiprisk.training.train import time_split

    splits = time_split(frame, config) if len(frame) else None
    parts = {"all": frame}
    if splits is not None:
        parts |= {"train": splits.train, "calibration": splits.calibration, "test": splits.test}
    rows = {}
    for name, part in parts.items():
        counts = {"rows": len(part)}
        for outcome in OUTCOMES:
            counts[OUTCOME_LABEL[outcome]] = int((part["outcome"] == OUTCOME_LABEL[outcome]).sum())
        if len(part):
            counts["from"] = str(part["created_at"].min().date())
            counts["to"] = str(part["created_at"].max().date())
        rows[name] = counts
    return pd.DataFrame(rows).T


def assess(
    loaded: HistoryLoad,
    config: TrainConfig,
    *,
    max_drop_share: float | None = None,
    max_age_days: int | None = None,
    now: datetime | None = None,
) -> Readiness:
    """The refusals ``train`` would raise and the warnings it would print for ``loaded``."""
    from shiprisk.settings import get_settings

    settings = get_settings()
    max_drop_share = settings.max_drop_share if max_drop_share is None else max_drop_share
    max_age_days = settings.max_history_age_days if max_age_days is None else max_age_days
    out = Readiness()
    frame = loaded.train
    n = loaded.n_rows
    out.dropped = _dropped(loaded)
    out.drop_share = loaded.n_invalid / n if n else 0.0

    if frame.empty:
        out.refusals.append("only 0 valid, mature rows")
    if out.drop_share > max_drop_share:
        cause = _unmapped(loaded) or _top_problem(loaded)
        out.refusals.append(
            f"{loaded.n_invalid:,} of {n:,} rows ({out.drop_share:.1%}) are invalid, above "
            f"the {max_drop_share:.0%} allowed (SHIPRISK_MAX_DROP_SHARE or --max-drop-share); "
            f"most: {cause[0] if cause else 'see the problems'}"
        )
    out.events = events_by_slice(frame, config)
    # Heads where the labels allow (training/heads.py): an outcome with too few events is
    # scored from its prior, as long as another outcome trains a head.
    short: list[str] = []
    for outcome in OUTCOMES:
        label = OUTCOME_LABEL[outcome]
        events = int(out.events.loc["all", label])
        if events < MIN_EVENTS:
            hint = (
                " (the export records no such outcome: the mapping maps none of its values to it)"
                if events == 0
                else ""
            )
            short.append(f"only {events} '{label}' outcomes; at least {MIN_EVENTS} needed{hint}")
        elif int(out.events.loc["train", label]) < MIN_EVENTS:
            short.append(
                f"only {int(out.events.loc['train', label])} '{label}' outcomes in the "
                f"training slice; at least {MIN_EVENTS} needed"
            )
        elif "test" in out.events.index and int(out.events.loc["test", label]) == 0:
            out.warnings.append(f"no '{label}' outcome in the test slice: its metrics are void")
    recalibrates = _recalibrates(frame, config)
    if recalibrates:
        out.warnings.append(
            f"{len(frame):,} rows (fewer than {RECAL_MAX_ROWS:,}): train also recalibrates the "
            "bundled base model to this history and keeps whichever of it and a model of its "
            "own has the lower held-out log loss (docs/history.md, 'Three paths')"
        )
    if len(short) == len(OUTCOMES) and not recalibrates and len(frame):
        out.refusals += short
        out.refusals.append(_neither(frame))
    elif len(short) == len(OUTCOMES) and len(frame):
        out.warnings.append(
            f"too few events for a model of its own (at least {MIN_EVENTS} of one outcome in "
            "the training slice): train recalibrates the bundled base model only"
        )
    else:
        out.warnings += [
            f"{line}: that outcome gets no head and is scored from its prior "
            "(docs/history.md, 'Heads where the labels allow')"
            for line in short
        ]

    out.missing = [f for f in HISTORY_FIELDS if f not in loaded.columns and not SPECS[f].core]
    if len(frame):
        out.constant = [
            f for f in SHIPMENT_FIELDS if f in frame.columns and frame[f].nunique(dropna=False) <= 1
        ]
    if out.constant:
        out.warnings.append(
            f"{len(out.constant)} field(s) hold one value in every usable row, so the model "
            f"learns nothing from them: {', '.join(out.constant)}"
        )
    out.warnings += _catalog_gaps(frame)
    out.warnings += _unmapped(loaded)
    age = _outcome_age(frame, now or datetime.now(UTC))
    # A simulated history (it carries the true probabilities) is a fixed world with its own
    # calendar, not a seller's stale export: its age says nothing.
    simulated = any(str(c).startswith("true_") for c in frame.columns)
    if age is not None and age > max_age_days and not simulated:
        newest = frame["outcome_date"].max().date()
        out.warnings.append(
            f"the newest outcome ({newest}) is {age:,} days old, more than {max_age_days:,} "
            "(SHIPRISK_MAX_HISTORY_AGE_DAYS): the model learns the rates of that time, and "
            "its time trend stays at their last level"
        )
    return out


def _recalibrates(frame: pd.DataFrame, config: TrainConfig) -> bool:
    """Whether ``train`` will recalibrate the base model for this history."""
    from shiprisk.training.recalibrate import can_recalibrate, recalibration_considered
    from shiprisk.training.train import time_split

    if frame.empty or not recalibration_considered(len(frame)):
        return False
    splits = time_split(frame, config)
    return can_recalibrate(pd.concat([splits.train, splits.calibration]))


def _neither(frame: pd.DataFrame) -> str:
    from shiprisk.training.recalibrate import recalibration_considered

    if recalibration_considered(len(frame)):
        why = f"fewer than {MIN_RECAL_EVENTS} of any outcome in the training and calibration slices"
    elif len(frame) >= RECAL_MAX_ROWS:
        why = f"{len(frame):,} rows: only histories under {RECAL_MAX_ROWS:,} rows recalibrate"
    else:
        why = "recalibration is off (SHIPRISK_BASE_MODEL=off)"
    return (
        f"only {len(frame):,} valid, mature rows: too few events for a model of its own, nor "
        f"can it recalibrate the bundled base model: {why} (docs/history.md, 'Three paths')"
    )


def _dropped(loaded: HistoryLoad) -> dict[str, int]:
    dropped: dict[str, int] = {}
    if loaded.n_invalid:
        dropped["invalid (see the problems)"] = loaded.n_invalid
    for reason, count in loaded.excluded_by.most_common():
        dropped[f"excluded by the mapping: {reason}"] = count
    if loaded.n_open:
        dropped["open: no outcome yet"] = loaded.n_open
    if loaded.n_immature:
        dropped[f"immature: younger than {loaded.maturity_days} days"] = loaded.n_immature
    return dropped


def _catalog_gaps(frame: pd.DataFrame) -> list[str]:
    """Destinations and channels the catalog lacks: they all fall into 'unknown'."""
    if frame.empty:
        return []
    catalog = load_catalog()
    found = []
    for name, known, what in (
        ("destination_country", set(catalog.countries), "unknown destination"),
        ("channel_id", set(catalog.channel_ids), "unknown channel"),
    ):
        if name not in frame.columns:
            continue
        outside = ~frame[name].isin(known)
        count = int(outside.sum())
        if count:
            top = frame.loc[outside, name].value_counts().head(TOP_UNMAPPED)
            examples = ", ".join(f"{k} ({v})" for k, v in top.items())
            found.append(
                f"{count:,} usable rows ({_share(count, len(frame))}) have a {name} the "
                f"catalog lacks ({frame.loc[outside, name].nunique()} values, e.g. "
                f"{examples}): the model treats them as one '{what}'"
            )
    return found


def _unmapped(loaded: HistoryLoad) -> list[str]:
    lines = []
    for name, counts in loaded.unmapped.items():
        rows = sum(counts.values())
        top = ", ".join(f"{k!r} ({v})" for k, v in counts.most_common(TOP_UNMAPPED))
        more = f" and {len(counts) - TOP_UNMAPPED} more" if len(counts) > TOP_UNMAPPED else ""
        lines.append(
            f"{name}: {len(counts)} value(s) in {rows:,} rows no mapping covers: {top}{more}; "
            f"add them under values.{name} (or map them to exclude)"
        )
    return lines


def _top_problem(loaded: HistoryLoad) -> list[str]:
    if loaded.errors.empty:
        return []
    top = loaded.errors.groupby(["field", "reason"]).size().sort_values(ascending=False)
    (name, reason), count = next(iter(top.items()))
    return [f"{name} {reason} ({count:,} rows; `shiprisk data validate --report` lists all)"]


def _outcome_age(frame: pd.DataFrame, now: datetime) -> int | None:
    if frame.empty or "outcome_date" not in frame.columns:
        return None
    newest = frame["outcome_date"].max()
    if pd.isna(newest):
        return None
    return int((pd.Timestamp(now.replace(tzinfo=None)) - newest).days)


def print_readiness(readiness: Readiness, console: Any, loaded: HistoryLoad) -> None:
    """The answer as two tables and one line per warning and refusal."""
    kept = Table(title="What train will do with it", show_header=False)
    kept.add_column("what")
    kept.add_column("rows", justify="right")
    kept.add_row("[green]rows to train on[/]", f"{loaded.n_train:,}")
    for reason, count in readiness.dropped.items():
        kept.add_row(f"left out: {escape(reason)}", f"{count:,} ({_share(count, loaded.n_rows)})")
    console.print(kept)
    if len(readiness.events):
        table = Table(title="Rows and events per time slice (train splits by created_at)")
        table.add_column("slice")
        for column in readiness.events.columns:
            table.add_column(str(column), justify="right")
        for name, row in readiness.events.iterrows():
            table.add_row(str(name), *(_cell(v) for v in row.tolist()))
        console.print(table)
    if readiness.missing:
        console.print(
            f"optional fields the history lacks (unknown: the model will not use them): "
            f"{', '.join(readiness.missing)}"
        )
    for warning in readiness.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    for refusal in readiness.refusals:
        console.print(f"[red]train would refuse:[/] {escape(refusal)}", soft_wrap=True)
    if readiness.ok:
        console.print("[green]train would accept this history[/]")


def _cell(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and not pd.isna(value):
        return f"{int(value):,}"
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
