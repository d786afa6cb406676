"""The ``shiprisk`` command line: data, train, promote, serve, batch scoring, main job.

Each command imports its stage lazily so ``shiprisk --help`` stays fast and no stage does
work at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Simulated world and real histories.")
app.add_typer(data_app, name="data")
console = Console(stderr=True)


@data_app.command("generate")
def data_generate(
    rows: Annotated[int, typer.Option(min=1, help="shipments to draw")] = 200_000,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same file)")] = 7,
    output: Annotated[Path | None, typer.Option(help="Parquet file to write")] = None,
    world: Annotated[str, typer.Option(help="'default' or 'shifted'")] = "default",
) -> None:
    """Draw a simulated shipment history with known true probabilities."""
    from shiprisk.data.simulator import generate_to_parquet
    from shiprisk.settings import get_settings

    settings = get_settings()
    target = output or settings.default_dataset
    path = generate_to_parquet(rows=rows, seed=seed, output=target, world=world)
    console.print(f"wrote {rows:,} shipments to {path}")


@data_app.command("validate")
def data_validate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or Parquet")],
    mapping: Annotated[Path | None, typer.Option(help="column/value mapping (YAML)")] = None,
    report: Annotated[Path | None, typer.Option(help="write every invalid row here (CSV)")] = None,
    maturity_days: Annotated[int | None, typer.Option(help="outcome maturity window")] = None,
) -> None:
    """Check a seller's history export against the contract and report every bad row."""
    from shiprisk.data.loaders import load_history, print_report

    result = load_history(file, mapping=mapping, maturity_days=maturity_days)
    print_report(result, console=console, report_path=report)
    if result.n_invalid:
        raise typer.Exit(code=1)


@app.command("train")
def train_cmd(
    data: Annotated[
        Path | None, typer.Option(help="history file (default: the simulated dataset)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="training config (YAML)")] = None,
    mapping: Annotated[Path | None, typer.Option(help="column/value mapping for --data")] = None,
    rows: Annotated[int | None, typer.Option(help="rows to simulate if no dataset exists")] = None,
    seed: Annotated[int | None, typer.Option(help="seed for a simulated dataset")] = None,
) -> None:
    """Train LightGBM + baseline, log to MLflow, register the version as 'challenger'."""
    from shiprisk.training.train import TrainingDataError, train

    path = data or _ensure_dataset(rows, seed)
    try:
        result = train(path, config_file=config, mapping=mapping, console=console)
    except TrainingDataError as exc:
        console.print(f"[red]training refused:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    console.print(f"run {result.run_id}: version {result.version} is the challenger")


@app.command("promote")
def promote_cmd(
    max_ratio: Annotated[
        float | None, typer.Option(help="gate: challenger log loss <= ratio x champion's")
    ] = None,
) -> None:
    """Move 'champion' to the challenger if it passes the gate on the frozen set."""
    from shiprisk.models.registry import configure
    from shiprisk.training.config import load_config
    from shiprisk.training.promote import promote

    configure()
    ratio = max_ratio or load_config().promotion.max_log_loss_ratio
    decision = promote(ratio)
    for reason in decision.reasons:
        console.print(f"  {reason}")
    if decision.accepted:
        console.print(f"[green]accepted:[/green] version {decision.challenger} is champion")
    else:
        console.print(f"[yellow]refused:[/yellow] champion stays {decision.champion_before}")
        raise typer.Exit(code=1)


@app.command("rollback")
def rollback_cmd() -> None:
    """Restore the previous champion."""
    from shiprisk.models.registry import configure, rollback

    configure()
    try:
        before, after = rollback()
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=1) from exc
    console.print(f"champion moved back from version {before} to version {after}")


def _ensure_dataset(rows: int | None, seed: int | None) -> Path:
    """The default simulated dataset, generated on first use."""
    from shiprisk.data.simulator import generate_to_parquet
    from shiprisk.settings import get_settings

    settings = get_settings()
    path = settings.default_dataset
    if not path.exists():
        n = rows or settings.default_rows
        console.print(f"no dataset at {path}: simulating {n:,} shipments")
        generate_to_parquet(rows=n, seed=seed or settings.default_seed, output=path)
    return path


def main() -> None:  # pragma: no cover - console entry point
    app()
