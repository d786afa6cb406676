"""What `shiprisk train` and `shiprisk promote` print: step progress, the metrics table with
its legend, and one labelled summary at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from shiprisk.settings import CHALLENGER


class Steps:
    """Progress through the training steps: a spinner on a terminal, and one line per
    finished step with its duration (so a log shows where the minutes went)."""

    def __init__(self, console: Any, total: int) -> None:
        self.console = console
        self.total = total
        self.done = 0

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        if self.console is None:
            yield
            return
        self.done += 1
        label = f"[{self.done}/{self.total}] {text}"
        started = time.perf_counter()
        if self.console.is_terminal:
            with self.console.status(f"{label} ..."):
                yield
        else:
            yield
        seconds = time.perf_counter() - started
        self.console.print(f"{label}: done in {seconds:.1f} s", highlight=False)


def short_count(n: int) -> str:
    """300000 -> '300k', 1500000 -> '1.5M', 950 -> '950' (for run names)."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.3g}M"
    if n >= 1_000:
        return f"{n / 1_000:.3g}k"
    return str(n)


def print_metrics(console: Any, results: Mapping[str, Any]) -> None:
    """The metrics table and a one-line legend per metric shown."""
    from shiprisk.training.evaluate import METRIC_LEGEND, metrics_table

    console.print(metrics_table(results, title="Test metrics (newest slice of the history)"))
    shown = {n for r in results.values() for m in r.values() for n in m}
    console.print("legend:", highlight=False)
    for name, text in METRIC_LEGEND.items():
        if name in shown:
            console.print(f"  {name:<19} {text}", highlight=False, soft_wrap=True)


def training_summary(
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    counts: Mapping[str, int],
    splits: Mapping[str, int],
    run_name: str,
    run_id: str,
    version: str,
) -> list[str]:
    """The labelled summary at the end of a training run."""
    used = counts.get("rows_used", sum(splits.values()))
    lines = [
        "training summary",
        f"  data:     {counts.get('rows_read', used):,} rows read, {used:,} used "
        f"(train {splits['train']:,}, calibration {splits['calibration']:,}, "
        f"test {splits['test']:,})",
    ]
    for model, per_outcome in results.items():
        parts = []
        for outcome, m in per_outcome.items():
            if "gain_captured" in m:
                parts.append(f"{outcome} gain captured {m['gain_captured']:.3f}")
            else:
                parts.append(
                    f"{outcome} log loss {m['log_loss']:.5f} (base rate {m['ll_prior']:.5f})"
                )
        lines.append(f"  {model + ':':<9} " + ", ".join(parts))
    lines.append(f"  MLflow:   run {run_name} ({run_id})")
    if version != "-":
        lines.append(
            f"  registry: version {version} is the {CHALLENGER}; "
            "`shiprisk promote` decides whether it becomes champion"
        )
    return lines


def promotion_summary(decision: Any) -> list[str]:
    """The gate result per outcome and the outcome of the promotion, labelled."""
    lines = ["promotion gate (log loss on the frozen evaluation set, lower is better)"]
    if getattr(decision, "evaluated_on", ""):
        lines.append(f"  {decision.evaluated_on}")
    for reason in decision.reasons:
        outcome = reason.split(":", 1)[0]
        if outcome in decision.passed:
            verdict = "passed" if decision.passed[outcome] else "FAILED"
            lines.append(f"  {outcome}: {verdict}: {reason.split(':', 1)[1].strip()}")
        else:
            lines.append(f"  {reason}")
    if decision.accepted:
        lines.append(f"result: version {decision.challenger} is champion")
    else:
        stays = decision.champion_before
        lines.append(
            f"result: refused; the champion stays version {stays}"
            if stays
            else "result: refused; there is no champion yet"
        )
    return lines
