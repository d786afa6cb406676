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
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="column/value mapping (YAML); `shiprisk data template` writes one, "
            "docs/history.md documents it, examples/history_mapping.yaml is one"
        ),
    ] = None,
    report: Annotated[Path | None, typer.Option(help="write every invalid row here (CSV)")] = None,
    maturity_days: Annotated[int | None, typer.Option(help="outcome maturity window")] = None,
    config: Annotated[Path | None, typer.Option(help="training config (YAML)")] = None,
    max_drop_share: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="invalid-row share train refuses above"),
    ] = None,
) -> None:
    """Check a history export and say what `train` will do with it (exit 1: it would refuse).

    Example: shiprisk data validate examples/history.csv --mapping examples/history_mapping.yaml
    """
    from rich.markup import escape

    from shiprisk.data.loaders import load_history, print_report
    from shiprisk.training.config import load_config
    from shiprisk.training.readiness import assess, print_readiness

    try:
        result = load_history(file, mapping=mapping, maturity_days=maturity_days)
        train_config = load_config(config)
    except (ValueError, OSError) as exc:  # unreadable file or bad mapping: say what, exit 2
        _one_line_error(f"cannot check {file}", exc)
    print_report(result, console=console, report_path=report)
    readiness = assess(result, train_config, max_drop_share=max_drop_share)
    print_readiness(readiness, console, result)
    if mapping is None and result.n_train == 0:
        console.print(
            f"hint: map the export's columns with --mapping {escape('<file.yaml>')} "
            "(`shiprisk data template` writes a commented one)"
        )
    if not readiness.ok:
        raise typer.Exit(code=1)


@data_app.command("template")
def data_template(
    output: Annotated[
        Path | None, typer.Argument(help="file to write (default: print it)", dir_okay=False)
    ] = None,
) -> None:
    """Write a commented example mapping (every option) to adapt to your export."""
    from shiprisk.data.mapping import template_text

    text = template_text()
    if output is None:
        typer.echo(text, nl=False)
        return
    if output.exists():
        console.print(f"[red]error:[/red] {output} exists: choose another name or remove it")
        raise typer.Exit(code=2)
    output.write_text(text, encoding="utf-8")
    console.print(f"wrote an example mapping to {output}")


def _one_line_error(what: str, exc: BaseException) -> None:
    """A user's file or mapping problem: one line on stderr, exit 2, never a traceback."""
    from rich.markup import escape

    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    console.print(f"[red]{escape(what)}:[/] {escape(text)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2) from None


@app.command("train")
def train_cmd(
    data: Annotated[
        Path | None, typer.Option(help="history file (default: the simulated dataset)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="training config (YAML)")] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(help="column/value mapping for --data (docs/history.md, examples/)"),
    ] = None,
    rows: Annotated[int | None, typer.Option(help="rows to simulate if no dataset exists")] = None,
    seed: Annotated[int | None, typer.Option(help="seed for a simulated dataset")] = None,
    max_drop_share: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="refuse above this share of invalid rows"),
    ] = None,
) -> None:
    """Train LightGBM + baseline, log to MLflow, register the version as 'challenger'.

    Check a history first with `shiprisk data validate` (it says what train will do).
    """
    from shiprisk.data.mapping import HistoryFileError
    from shiprisk.training.train import TrainingDataError, train

    path = data or _ensure_dataset(rows, seed)
    try:
        result = train(
            path,
            config_file=config,
            mapping=mapping,
            console=console,
            max_drop_share=max_drop_share,
        )
    except TrainingDataError as exc:
        console.print(f"[red]training refused:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from exc
    except (HistoryFileError, FileNotFoundError, IsADirectoryError) as exc:
        _one_line_error(f"cannot train on {path}", exc)
    console.print(f"run {result.run_id}: version {result.version} is the challenger")


@app.command("promote")
def promote_cmd(
    max_ratio: Annotated[
        float | None, typer.Option(help="gate: challenger log loss <= ratio x champion's")
    ] = None,
) -> None:
    """Move 'champion' to the challenger if it passes the gate on the frozen set."""
    from shiprisk.models.registry import configure
    from shiprisk.training.promote import promote

    configure()
    decision = promote(max_ratio)
    if decision.evaluated_on:
        console.print(f"  {decision.evaluated_on}", highlight=False, soft_wrap=True)
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


@app.command("serve")
def serve_cmd(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
    alias: Annotated[str, typer.Option(help="MLflow alias to serve")] = "champion",
) -> None:
    """Import the champion into the BentoML store, pin its tag, and serve it."""
    _serve(host, port, workers, alias)


@app.command("run")
def run_cmd(
    rows: Annotated[int | None, typer.Option(help="rows to simulate if no dataset")] = None,
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """The main job: simulate data and train a champion if none exists, then serve."""
    from shiprisk.models import registry
    from shiprisk.settings import CHAMPION, get_settings
    from shiprisk.training.promote import promote
    from shiprisk.training.train import train

    settings = get_settings()
    _check_port_free(host or settings.host, port or settings.port)  # before minutes of work
    registry.configure()
    if registry.get_version(CHAMPION) is None:
        path = _ensure_dataset(rows, None)
        console.print("no champion in the registry: training one")
        train(path, console=console)
        decision = promote()
        for reason in decision.reasons:
            console.print(f"  {reason}")
        if not decision.accepted:
            console.print("[red]the trained model failed the gate: nothing to serve[/red]")
            raise typer.Exit(code=1)
    else:
        console.print(f"champion is version {registry.get_version(CHAMPION).version}")
    _serve(host, port, None, CHAMPION)


def _check_port_free(host: str, port: int) -> None:
    """Exit 2 with one line naming SHIPRISK_PORT when the port is taken."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            console.print(
                f"[red]error:[/red] cannot serve on {host}:{port} ({exc.strerror}): "
                f"choose another port with SHIPRISK_PORT=<port> or --port",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(code=2) from None


def _serve(host: str | None, port: int | None, workers: int | None, alias: str) -> None:
    """Resolve a verified model (fresh import or last verified), then exec bentoml serve."""
    import os
    import sys

    from rich.markup import escape

    from shiprisk.serving.model_store import NoVerifiedModelError, pin, resolve
    from shiprisk.settings import get_settings

    settings = get_settings()
    try:
        resolved = resolve(alias)
    except NoVerifiedModelError as exc:  # the reason may hold "[Errno ..]": not rich markup
        console.print(f"[red]cannot serve:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(code=3) from exc
    _check_loadable(resolved.tag)
    pin(resolved.tag)
    console.print(
        f"serving {resolved.tag} (MLflow version {resolved.mlflow_version}): "
        f"{escape(resolved.message)}",
        soft_wrap=True,
    )
    env = dict(os.environ, SHIPRISK_MODEL_TAG=resolved.tag, BENTOML_DO_NOT_TRACK="true")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("BENTOML_HOME", str(settings.bentoml_home.resolve()))
    if workers:
        env["SHIPRISK_WORKERS"] = str(workers)
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    args = [
        bentoml,
        "serve",
        "shiprisk.serving.service:ShipRisk",
        "--host",
        host or settings.host,
        "--port",
        str(port or settings.port),
    ]
    os.execve(bentoml, args, env)


def _check_loadable(tag: str) -> None:
    """Load and score once before starting workers, so a broken model fails here, clearly."""
    from shiprisk.serving.model_store import _bentoml
    from shiprisk.serving.schemas import ModelRef
    from shiprisk.serving.scorer import Scorer

    stored = _bentoml().models.get(tag)
    labels = stored.info.labels
    ref = ModelRef(name=tag, version=labels.get("mlflow_version", "?"), digest="?")
    try:
        Scorer.from_directory(Path(stored.path), ref)
    except Exception as exc:
        console.print(f"[red]cannot serve {tag}:[/red] {type(exc).__name__}: {exc}", soft_wrap=True)
        raise typer.Exit(code=3) from exc


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


@app.command("score-open")
def score_open_cmd(
    input_file: Annotated[
        Path | None, typer.Option("--input", help="open shipments (Parquet or CSV)")
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output", help="scores file (Parquet or CSV)")
    ] = None,
    input_sql: Annotated[
        str | None, typer.Option(help="input database (SQLAlchemy URL or SQLite file)")
    ] = None,
    input_table: Annotated[str | None, typer.Option(help="input table")] = None,
    output_sql: Annotated[
        str | None, typer.Option(help="output database (SQLAlchemy URL or SQLite file)")
    ] = None,
    output_table: Annotated[str | None, typer.Option(help="output table (replaced)")] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="saved model (default: the registry's champion)")
    ] = None,
    costs: Annotated[Path | None, typer.Option(help="seller cost overrides (YAML)")] = None,
    mapping: Annotated[Path | None, typer.Option(help="column/value mapping (YAML)")] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows per chunk")] = 50_000,
    workers: Annotated[int, typer.Option(min=1, help="scoring processes (1: in-process)")] = 2,
    progress: Annotated[bool, typer.Option(help="progress bar / per-chunk lines")] = True,
    allow_empty: Annotated[
        bool, typer.Option(help="an input without rows writes an empty output (else exit 1)")
    ] = False,
) -> None:
    """Batch-score open shipments: risk on the chosen channel, insurance, a better channel."""
    import signal
    import time

    from shiprisk.serving.batch import SqlTable, champion_model_dir, load_costs, score_open

    def endpoint(path: Path | None, url: str | None, table: str | None, what: str):
        if (path is None) == (url is None):
            raise typer.BadParameter(f"give either --{what} FILE or --{what}-sql URL")
        if url is not None and not table:
            raise typer.BadParameter(f"--{what}-sql needs --{what}-table")
        return path if url is None else SqlTable(url, table)  # type: ignore[arg-type]

    source = endpoint(input_file, input_sql, input_table, "input")
    destination = endpoint(output_file, output_sql, output_table, "output")

    def stop(signum: int, frame: object) -> None:  # SIGTERM: clean up like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    started = time.perf_counter()
    try:
        seller_costs = load_costs(costs) if costs else None
        model = model_dir or champion_model_dir()
        summary = score_open(
            source,
            destination,
            model=model,
            costs=seller_costs,
            chunk_rows=chunk_rows,
            workers=workers,
            progress=progress,
            mapping=mapping,
            console=console,
            allow_empty=allow_empty,
        )
    except KeyboardInterrupt as exc:
        console.print("[red]score-open interrupted:[/red] no output written")
        raise typer.Exit(code=130) from exc
    except Exception as exc:  # the CLI boundary: report, never a traceback for ops
        seconds = time.perf_counter() - started
        console.print(f"[red]score-open failed after {seconds:.1f} s:[/red] {exc}", soft_wrap=True)
        console.print("no output written (a previous output, if any, is unchanged)")
        raise typer.Exit(code=1) from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(
        f"rows {summary.rows:,} | scored {summary.scored:,} | errors {summary.errors:,} | "
        f"{summary.seconds:.1f} s | {summary.rows_per_s:,.0f} rows/s "
        f"({summary.pairs_per_s:,.0f} shipment-channel rows/s) -> {summary.destination}",
        highlight=False,
        soft_wrap=True,
    )
    for field_name, count in list(summary.errors_by_field.items())[:10]:
        console.print(f"  errors on {field_name}: {count:,}", highlight=False)


def main() -> None:
    """The ``shiprisk`` command: a broken outcome spec is one line, not a traceback."""
    from shiprisk.settings import OutcomeSpecError

    try:
        app()
    except OutcomeSpecError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
