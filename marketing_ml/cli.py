"""`marketing-ml`: the demo's steps from a terminal, run through Dagster so the UI shows every run.

    marketing-ml run                      every step except streaming, history up to yesterday
    marketing-ml run --step data          one step (repeat --step for several)
    marketing-ml serve                    the real-time scoring API on 127.0.0.1:8000
    marketing-ml ui                       the Dagster UI on this data directory
    marketing-ml info                     where data lives and which world is simulated
    marketing-ml features list            the feature catalog (also: describe NAME, lock)
    marketing-ml validate [PATH]          check your own files against the data contract
    marketing-ml reset --yes              delete the data directory
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from marketing_ml.features.cli import add_features_command
from marketing_ml.pipeline.steps import STEP_NAMES, STEPS, Step
from marketing_ml.settings import (
    ENV_HOME,
    ENV_SOURCE,
    SIMULATOR_SOURCE,
    Settings,
    SettingsError,
    WarehouseSource,
    load_settings,
    resolve_source,
)
from marketing_ml.wiring import hide_dagster_beta_notices

DAGSTER_YAML = """\
# Written by marketing-ml. DuckDB allows one writer, so runs take turns.
concurrency:
  runs:
    max_concurrent_runs: 1
telemetry:
  enabled: false
"""


def prepare_dagster_home(settings: Settings) -> None:
    """Point Dagster at the data directory's instance, creating it on first use."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)


def main(argv: Sequence[str] | None = None) -> int:
    hide_dagster_beta_notices()  # every run would start with notices about Dagster APIs a user cannot change
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marketing-ml",
        description="Conversion, churn and next-best-action ML for a 401(k) provider, as a Dagster asset graph.",
        epilog=f"State lives in ./.marketing_ml (or ${ENV_HOME}). Set MARKETING_ML_WAREHOUSE=snowflake for Snowflake.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="materialise the pipeline's steps through Dagster")
    run.add_argument(
        "--step",
        action="append",
        choices=STEP_NAMES,
        help="step to run (repeatable); default: every step except streaming, in order",
    )
    run.add_argument("--no-streaming", action="store_true", help="skip the streaming demo (the default without --step)")
    run.add_argument("--clients", type=int, help="clients to simulate (new data directory only; default 50,000)")
    run.add_argument("--days", type=int, help="days of history ending yesterday (new data directory only; default 365)")
    run.add_argument("--end-date", type=dt.date.fromisoformat, help="last day to build (default: yesterday)")
    run.add_argument("--source", help="where the raw tables come from: 'simulator' (default), a folder of your "
                     "own files, or 'warehouse' (your tables, named by $MARKETING_ML_SOURCE_MAPPING; see "
                     "`marketing-ml validate`); also $MARKETING_ML_SOURCE")
    run.add_argument(
        "--scoring-days", type=int, help="days the inference step scores and monitors, ending at --end-date (default 35)"
    )
    run.set_defaults(handler=_run)

    stream_cmd = sub.add_parser("stream", help="stream today's simulated events into the landing zone as micro-batch files")
    stream_cmd.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    stream_cmd.add_argument("--duration", type=float, default=60.0, help="seconds to stream (default 60)")
    stream_cmd.add_argument("--batch-seconds", type=float, default=1.0, help="seconds per file (default 1)")
    stream_cmd.add_argument("--malformed-rate", type=float, default=0.01, help="share of records to corrupt (default 0.01)")
    stream_cmd.add_argument("--day", type=dt.date.fromisoformat, help="simulated day to stream (default: today)")
    stream_cmd.set_defaults(handler=_stream)

    serve = sub.add_parser("serve", help="start the real-time scoring API (keys from MARKETING_ML_API_KEYS)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--model-poll-seconds", type=float, default=10.0, help="how often to check the @champion aliases")
    serve.add_argument("--feature-poll-seconds", type=float, default=2.0, help="how often to check the online features")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=_serve)

    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on this data directory")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=_ui)

    info = sub.add_parser("info", help="show where data lives and which simulated world it holds")
    info.set_defaults(handler=_info)

    add_features_command(sub)

    validate = sub.add_parser(
        "validate",
        help="check a folder of your own files (CSV/Parquet), or with $MARKETING_ML_SOURCE=warehouse your warehouse "
             "tables, against the data contract; exit 1 on a violation",
    )
    validate.add_argument("path", type=Path, nargs="?",
                          help="the folder with the files (and, by default, mapping.yaml); default: $MARKETING_ML_SOURCE")
    validate.add_argument("--mapping", type=Path, help="the mapping file (default: PATH/mapping.yaml if it exists)")
    validate.add_argument("--today", type=dt.date.fromisoformat, help="the date after which dates are in the future (default: today)")
    validate.set_defaults(handler=_validate)

    reset = sub.add_parser("reset", help="delete the data directory (warehouse, runs, models)")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    reset.set_defaults(handler=_reset)
    return parser


def _selected_steps(args: argparse.Namespace) -> list[Step]:
    """The steps to run, in pipeline order: the named ones, else every step but the long-running streaming demo."""
    chosen = [s for s in STEPS if s.name in args.step] if args.step else [s for s in STEPS if s.name != "streaming"]
    return [s for s in chosen if not (args.no_streaming and s.name == "streaming")]


def _run(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from marketing_ml.definitions import build_definitions

    settings = load_settings(clients=args.clients, history_days=args.days, source=args.source)
    prepare_dagster_home(settings)
    defs = build_definitions(settings)
    start = settings.simulation.start_date
    end = args.end_date or dt.date.today() - dt.timedelta(days=1)
    if end < start:
        print(f"error: --end-date {end} is before the history start {start}", file=sys.stderr)
        return 2
    world = (f"{settings.simulation.n_clients:,} simulated clients" if settings.source is None
             else f"files in {settings.source}" if isinstance(settings.source, Path) else str(settings.source))
    print(f"marketing-ml: {world}, history {start}..{end}, warehouse={settings.warehouse}, data in {settings.data_dir}")
    instance = DagsterInstance.get()
    failed = False
    for s in _selected_steps(args):
        job = defs.resolve_job_def(s.job_name)
        tags = {}
        if job.partitions_def is not None:
            recent = args.scoring_days if s.name == "inference" and args.scoring_days else s.recent_days
            first = max(start, end - dt.timedelta(days=recent - 1)) if recent else start
            tags = {
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": end.isoformat(),
            }
        print(f"step {s.name}: {s.description} ...", flush=True)
        if s.name == "streaming":
            _stream_burst(settings, end + dt.timedelta(days=1))
        began = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            tags=tags,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
        elapsed = time.perf_counter() - began
        materialized = [e for e in result.all_events if e.is_step_materialization]
        status = "ok" if result.success else "FAILED"
        print(f"step {s.name}: {status} in {elapsed:.1f}s, {len(materialized)} asset materializations, run {result.run_id}")
        if not result.success:
            failed = True
            break
    print("Open the Dagster UI with `marketing-ml ui` to see the runs, assets and their metadata.")
    return 1 if failed else 0


def _stream(args: argparse.Namespace) -> int:
    from marketing_ml.streaming.producer import stream

    settings = load_settings()
    day = args.day or dt.date.today()
    print(f"streaming {args.rate:g} events/s for {args.duration:g}s of {day} into {settings.landing_dir}", flush=True)
    print("(with `marketing-ml ui` running, the landing_zone_sensor ingests each file within seconds)", flush=True)
    stats = stream(
        settings.simulation,
        settings.landing_dir,
        rate=args.rate,
        duration=args.duration,
        batch_seconds=args.batch_seconds,
        malformed_rate=args.malformed_rate,
        first_day=day,
        on_file=lambda path, n: print(f"  landed {path.name} ({n} records)", flush=True),
    )
    print(f"done: {stats.files} files, {stats.events} records ({stats.malformed} deliberately malformed)")
    return 0


def _stream_burst(settings: Settings, day: dt.date) -> None:
    """The streaming step's demo input: ten seconds of the next day's events, a few of them malformed."""
    from marketing_ml.streaming.producer import stream

    stats = stream(settings.simulation, settings.landing_dir, rate=100, duration=10, malformed_rate=0.01, first_day=day)
    print(f"  streamed {stats.events} records of {day} in {stats.files} files ({stats.malformed} malformed)", flush=True)


def _serve(args: argparse.Namespace) -> int:
    from marketing_ml.serving.server import serve

    serve(load_settings(), args.host, args.port, args.log_level,
          model_poll_seconds=args.model_poll_seconds, feature_poll_seconds=args.feature_poll_seconds)
    return 0


def _ui(args: argparse.Namespace) -> int:
    settings = load_settings()
    prepare_dagster_home(settings)
    # this interpreter's dagster, not whichever `dagster` is on PATH (none, when the venv is not activated)
    command = [sys.executable, "-m", "dagster", "dev", "-m", "marketing_ml.definitions", "-h", "127.0.0.1",
               "-p", str(args.port)]
    print(f"DAGSTER_HOME={settings.dagster_home} {' '.join(command)}")
    # dagster dev maps SIGTERM onto SIGINT's handler; started from a background job SIGINT is ignored,
    # and an ignored signal survives exec, so the UI could then not be stopped: restore the default first
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(command[0], command)
    return 0  # unreachable: exec replaces the process


def _info(args: argparse.Namespace) -> int:
    settings = load_settings()
    sim = settings.simulation
    print(f"data directory : {settings.data_dir}")
    print(f"warehouse      : {settings.warehouse} ({settings.duckdb_path if settings.warehouse == 'duckdb' else 'Snowflake'})")
    print(f"dagster home   : {settings.dagster_home}")
    print(f"mlflow store   : {settings.mlflow_tracking_uri}")
    print(f"simulation     : {sim.n_clients:,} clients from {sim.start_date}, seed {sim.seed}")
    print(f"raw data from  : {settings.source or 'the simulator'}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from marketing_ml.sources.mapping import MappingError
    from marketing_ml.resources import resolved_warehouse
    from marketing_ml.sources.validation import SourceFileError, format_report, load_provider_source

    source = args.path or resolve_source(os.environ.get(ENV_SOURCE, SIMULATOR_SOURCE))
    if source is None:
        print(f"error: name the folder to check, or set {ENV_SOURCE} to it (or to warehouse)", file=sys.stderr)
        return 2
    if isinstance(source, Path) and not source.is_dir():
        print(f"error: {source} is not a folder", file=sys.stderr)
        return 2
    warehouse = resolved_warehouse(load_settings()) if isinstance(source, WarehouseSource) else None
    try:
        report = load_provider_source(source, warehouse, args.mapping, args.today).report
    except (MappingError, SourceFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0 if report.ok else 1


def _reset(args: argparse.Namespace) -> int:
    data_dir = Path(os.environ.get(ENV_HOME, ".marketing_ml")).expanduser().resolve()
    if not data_dir.exists():
        print(f"nothing to delete: {data_dir} does not exist")
        return 0
    if not args.yes and input(f"Delete {data_dir} and everything in it? [y/N] ").strip().lower() != "y":
        print("kept")
        return 1
    shutil.rmtree(data_dir)
    print(f"deleted {data_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
