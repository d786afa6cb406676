"""shiprisk: shipment risk scoring. Simulate or load a shipment history, train and
promote a model, serve it over HTTP, and score open shipments in batch.

Start with `shiprisk run` (simulate, train, promote, serve); the README walks through the rest.
"""

# Developer note: each command imports its stage inside the function, so --help stays fast.

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shiprisk.settings import BATCH_CHUNK_ROWS

# Plain click help (rich_markup_mode=None): typer's rich panels print a "<bool>" type after
# --help and every flag. Defaults of options that come from settings are written in the help
# text (see _default), since their declared default is None (None: use the setting).
app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, rich_markup_mode=None)
data_app = typer.Typer(
    no_args_is_help=True, help="Simulate a shipment history, or check a seller's own history."
)
app.add_typer(data_app, name="data")
console = Console(stderr=True)

MAPPING_HELP = (
    "column/value mapping of your export onto the contract (YAML; format: docs/history.md)"
)
COSTS_HELP = "seller cost overrides (YAML; format and example: examples/costs.yaml)"
CatalogOption = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        file_okay=False,
        help="your own catalog directory: channels, prices, destinations (format: "
        "docs/catalog.md; example: examples/catalog) [default: the bundled catalog; env "
        "SHIPRISK_CATALOG_DIR]",
    ),
]


def _use_catalog(directory: Path | None) -> None:
    """--catalog wins over SHIPRISK_CATALOG_DIR. The catalog is checked now (a problem is one
    line naming file, row, field and reason; exit 2) and reaches the server's workers and
    batch processes through the environment."""
    import os

    from shiprisk.data.catalogs import CatalogError, load_catalog
    from shiprisk.settings import get_settings

    if directory is not None:
        os.environ["SHIPRISK_CATALOG_DIR"] = str(directory.resolve())
        get_settings.cache_clear()
    try:
        load_catalog()
    except CatalogError as exc:
        _one_line_error("cannot use the catalog", exc)


def _default(name: str, text: str | None = None) -> str:
    """'[default: <setting>, env SHIPRISK_<NAME>]': the number lives only in Settings."""
    from shiprisk.settings import Settings

    value = text if text is not None else Settings.model_fields[name].default
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:_}".replace("_", ",") if value >= 10_000 else value
    return f"[default: {value}; env SHIPRISK_{name.upper()}]"


@data_app.command("generate", short_help="Draw a simulated shipment history.")
def data_generate(
    rows: Annotated[
        int | None,
        typer.Option(min=1, help=f"shipments to draw {_default('default_rows')}"),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help=f"random seed: same seed, same file {_default('default_seed')}"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Parquet file to write [default: data/shipments.parquet under SHIPRISK_HOME, "
            ".shiprisk]"
        ),
    ] = None,
    world: Annotated[
        str, typer.Option(help="'default', or 'shifted' (a drifted world, to test retraining)")
    ] = "default",
) -> None:
    """Draw a simulated shipment history with known true probabilities.

    The default size and seed are those `shiprisk run` uses for its first model.
    """
    from shiprisk.data.simulator import generate_to_parquet
    from shiprisk.settings import get_settings

    settings = get_settings()
    target = output or settings.default_dataset
    n = rows or settings.default_rows
    path = generate_to_parquet(
        rows=n, seed=settings.default_seed if seed is None else seed, output=target, world=world
    )
    console.print(f"wrote {n:,} shipments to {path}")


@data_app.command("validate", short_help="Check a history file against the contract.")
def data_validate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or Parquet")],
    mapping: Annotated[Path | None, typer.Option(help=f"{MAPPING_HELP} [default: none]")] = None,
    report: Annotated[
        Path | None, typer.Option(help="write every invalid row here (CSV) [default: not written]")
    ] = None,
    maturity_days: Annotated[
        int | None,
        typer.Option(
            help="shipments younger than this many days have no known outcome yet "
            f"{_default('maturity_days')}"
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="training config (YAML) [default: configs/train.yaml]")
    ] = None,
    max_drop_share: Annotated[
        float | None,
        typer.Option(
            min=0, max=1, help=f"invalid-row share train refuses above {_default('max_drop_share')}"
        ),
    ] = None,
    catalog: CatalogOption = None,
) -> None:
    """Check a history export and say what `train` will do with it (exit 1: it would refuse).

    Example: shiprisk data validate examples/history.csv --mapping examples/history_mapping.yaml
    """
    from rich.markup import escape

    from shiprisk.data.loaders import load_history, print_report
    from shiprisk.training.config import load_config
    from shiprisk.training.readiness import assess, print_readiness

    _use_catalog(catalog)
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


@data_app.command("template", short_help="Write a commented example mapping.")
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


@app.command("train", short_help="Train a model and register it as the challenger.")
def train_cmd(
    data: Annotated[
        Path | None,
        typer.Option(
            help="history file, CSV or Parquet [default: the simulated dataset, drawn if missing]"
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="training config (YAML) [default: configs/train.yaml]")
    ] = None,
    mapping: Annotated[
        Path | None, typer.Option(help=f"{MAPPING_HELP}, for --data [default: none]")
    ] = None,
    rows: Annotated[
        int | None,
        typer.Option(help=f"rows to simulate if no dataset exists {_default('default_rows')}"),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help=f"seed for a simulated dataset {_default('default_seed')}"),
    ] = None,
    max_drop_share: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=1,
            help=f"refuse above this share of invalid rows {_default('max_drop_share')}",
        ),
    ] = None,
    catalog: CatalogOption = None,
) -> None:
    """Train the risk model and a logistic baseline, log both to MLflow, and register the
    model as 'challenger' (`shiprisk promote` decides whether it serves).

    Check a history first with `shiprisk data validate` (it says what train will do).
    """
    from shiprisk.data.mapping import HistoryFileError
    from shiprisk.training.config import TrainConfigError, load_config
    from shiprisk.training.train import TrainingDataError, train

    _use_catalog(catalog)
    try:
        load_config(config)  # a bad config is refused before any data is drawn
    except (TrainConfigError, FileNotFoundError) as exc:
        _one_line_error("training config refused", exc)
    path = data or _ensure_dataset(rows, seed)
    try:
        train(  # prints what it left out, its progress and a summary
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


@app.command("promote", short_help="Make the challenger champion if it passes the gate.")
def promote_cmd(
    max_ratio: Annotated[
        float | None,
        typer.Option(
            help="gate: the challenger's log loss must be <= ratio x the champion's, per outcome "
            "[default: promotion.max_log_loss_ratio in configs/train.yaml]"
        ),
    ] = None,
) -> None:
    """Make the challenger the champion if it passes the quality gate on the frozen
    evaluation set (the first model only has to beat the base rate)."""
    from shiprisk.models.registry import configure
    from shiprisk.training.promote import promote

    configure()
    decision = promote(max_ratio)
    _print_gate(decision)
    if not decision.accepted:
        raise typer.Exit(code=1)


@app.command("rollback", short_help="Make the previous champion the champion again.")
def rollback_cmd() -> None:
    """Make the previous champion the champion again."""
    from shiprisk.models.registry import configure, rollback

    configure()
    try:
        before, after = rollback()
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=1) from exc
    console.print(f"champion moved back from version {before} to version {after}")


@app.command("serve", short_help="Serve the champion over HTTP.")
def serve_cmd(
    host: Annotated[str | None, typer.Option(help=f"bind address {_default('host')}")] = None,
    port: Annotated[int | None, typer.Option(help=f"port {_default('port')}")] = None,
    workers: Annotated[
        int | None, typer.Option(help=f"worker processes {_default('workers')}")
    ] = None,
    alias: Annotated[
        str, typer.Option(help="registry alias to serve ('champion' or 'challenger')")
    ] = "champion",
    catalog: CatalogOption = None,
) -> None:
    """Serve the champion model over HTTP (POST /score, /score_batch; docs at /docs)."""
    _use_catalog(catalog)
    _serve(host, port, workers, alias)


@app.command("run", short_help="The main job: train a champion if none exists, then serve.")
def run_cmd(
    rows: Annotated[
        int | None,
        typer.Option(help=f"rows to simulate if no dataset exists {_default('default_rows')}"),
    ] = None,
    host: Annotated[str | None, typer.Option(help=f"bind address {_default('host')}")] = None,
    port: Annotated[int | None, typer.Option(help=f"port {_default('port')}")] = None,
    catalog: CatalogOption = None,
) -> None:
    """The main job: simulate a history and train a champion if there is none, then serve.

    The port is checked first, so a busy port fails before minutes of work.
    """
    from shiprisk.models import registry
    from shiprisk.settings import CHAMPION, get_settings
    from shiprisk.training.promote import promote
    from shiprisk.training.train import train

    _use_catalog(catalog)
    settings = get_settings()
    _check_port_free(host or settings.host, port or settings.port)  # before minutes of work
    registry.configure()
    if registry.get_version(CHAMPION) is None:
        path = _ensure_dataset(rows, None)
        console.print("no champion in the registry: training one")
        train(path, console=console)
        decision = promote()
        _print_gate(decision)
        if not decision.accepted:
            console.print("[red]the trained model failed the gate: nothing to serve[/red]")
            raise typer.Exit(code=1)
    else:
        console.print(f"champion is version {registry.get_version(CHAMPION).version}")
    _serve(host, port, None, CHAMPION)


def _print_gate(decision: object) -> None:
    from shiprisk.training.report import promotion_summary

    for line in promotion_summary(decision):
        console.print(line, highlight=False, soft_wrap=True, markup=False)


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


@app.command("score-open", short_help="Batch-score a file or table of open shipments.")
def score_open_cmd(
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="open shipments, Parquet or CSV (format and example: examples/open_shipments.csv)"
            " [required unless --input-sql]",
        ),
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="scores file, Parquet or CSV by its suffix; replaced when the run succeeds "
            "[required unless --output-sql]",
        ),
    ] = None,
    input_sql: Annotated[
        str | None,
        typer.Option(help="input database, SQLAlchemy URL or SQLite file [default: none]"),
    ] = None,
    input_table: Annotated[
        str | None, typer.Option(help="input table [required with --input-sql]")
    ] = None,
    output_sql: Annotated[
        str | None,
        typer.Option(help="output database, SQLAlchemy URL or SQLite file [default: none]"),
    ] = None,
    output_table: Annotated[
        str | None,
        typer.Option(
            help="output table, replaced when the run succeeds [required with --output-sql]"
        ),
    ] = None,
    model_dir: Annotated[
        Path | None,
        typer.Option(help="a saved model directory [default: the registry's champion]"),
    ] = None,
    costs: Annotated[Path | None, typer.Option(help=f"{COSTS_HELP} [default: none]")] = None,
    mapping: Annotated[Path | None, typer.Option(help=f"{MAPPING_HELP} [default: none]")] = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="rows per chunk (memory, and how often progress moves)")
    ] = BATCH_CHUNK_ROWS,
    workers: Annotated[
        int, typer.Option(min=1, help="scoring processes (1: score in this process)")
    ] = 2,
    progress: Annotated[
        bool, typer.Option(help="a progress bar on a terminal, else a line per chunk")
    ] = True,
    explain: Annotated[
        bool,
        typer.Option(
            help="add 'reasons' and 'actions' columns (why the risk, what to do), as /score "
            "answers them; slower"
        ),
    ] = False,
    allow_empty: Annotated[
        bool, typer.Option(help="an input without rows writes an empty output (else exit 1)")
    ] = False,
    catalog: CatalogOption = None,
) -> None:
    """Score a file or table of open shipments: risk on the chosen channel, insurance, and a
    better channel, one output row per input row, with the warnings /score gives.

    Input format: examples/open_shipments.csv. Output columns: the README's section on
    batch scoring.
    """
    import signal
    import time

    from shiprisk.serving.batch import SqlTable, champion_model_dir, load_costs, score_open

    _use_catalog(catalog)

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
            explain=explain,
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
    for line in summary.lines():
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    for note in summary.notes:
        console.print(f"  warning: {note}", highlight=False, soft_wrap=True, markup=False)


def main() -> None:
    """The ``shiprisk`` command: a broken outcome spec is one line, not a traceback."""
    import os

    from shiprisk.settings import OutcomeSpecError

    # MLflow's INFO chatter (database migrations, uv detection, signature checks) is not for
    # the terminal of a shiprisk user; MLFLOW_LOGGING_LEVEL=INFO brings it back.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    try:
        app()
    except OutcomeSpecError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
