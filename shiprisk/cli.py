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


def main() -> None:  # pragma: no cover - console entry point
    app()
