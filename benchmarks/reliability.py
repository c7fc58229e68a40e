"""Benchmark: the streaming soak at a benchmark's scale. Hostile files (valid batches with bad records,
exact and renamed duplicates, empty, binary and oversized files) land continuously while the
landing-zone sensor ticks and its ingestion runs execute; then the warehouse is checked against what
landed (`marketing_ml.streaming.soak`): valid events loaded exactly once, bad records quarantined with a
reason, nothing left in the landing zone.

Builds its own world (the data step only: ingestion needs the clients and the days before the streamed
one) in a scratch folder, unless given one.

    python benchmarks/reliability.py [--clients 10000] [--days 90] [--files 200] [--events-per-file 40]

Goals (issue #13): lost = 0, loaded twice = 0, quarantined = bad records landed, landing zone empty.
Results: benchmarks/results/reliability.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from results_file import load_average, scratch_copy, write_results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, help="a data directory with the data step built (copied, not changed)")
    parser.add_argument("--clients", type=int, default=10_000, help="clients of a world built here")
    parser.add_argument("--days", type=int, default=90, help="days of history of a world built here")
    parser.add_argument("--files", type=int, default=200)
    # about a day of the world's events in all: later days would be dated too far ahead of now
    parser.add_argument("--events-per-file", type=int, default=40)
    parser.add_argument("--bad-share", type=float, default=0.02, help="bad records per valid event in a valid file")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between files")
    args = parser.parse_args()

    import dagster as dg

    from marketing_ml.definitions import build_definitions
    from marketing_ml.settings import Settings, load_settings
    from marketing_ml.simulation.config import SimulationConfig
    from marketing_ml.streaming.soak import MAX_FILE_BYTES, run_soak

    if args.data_dir:
        settings = load_settings(environ={"MARKETING_ML_HOME": str(scratch_copy(args.data_dir, "mm_reliability_"))})
    else:
        start = dt.date.today() - dt.timedelta(days=args.days)
        settings = Settings(Path(tempfile.mkdtemp(prefix="mm_reliability_")) / "world", "duckdb",
                            SimulationConfig(start_date=start, n_clients=args.clients))
        settings.data_dir.mkdir(parents=True)
        print(f"building the data step: {args.clients:,} clients x {args.days} days in {settings.data_dir}", flush=True)
        job = build_definitions(settings).resolve_job_def("step_data")
        result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags={
            "dagster/asset_partition_range_start": start.isoformat(),
            "dagster/asset_partition_range_end": (dt.date.today() - dt.timedelta(days=1)).isoformat()})
        assert result.success
    print(f"soak: {args.files} files, {args.events_per_file} events per valid file, one every {args.interval:g}s",
          flush=True)
    with dg.instance_for_test() as instance:  # a real (SQLite) instance in a scratch folder
        soak = run_soak(settings, files=args.files, events_per_file=args.events_per_file, bad_share=args.bad_share,
                        interval=args.interval, instance=instance, give_up_seconds=3600)
    figures = soak.figures()
    write_results("reliability", {
        "world": {"clients": settings.simulation.n_clients, "days": args.days if not args.data_dir else None},
        "setup": {"files": args.files, "events_per_valid_file": args.events_per_file, "bad_share": args.bad_share,
                  "interval_seconds": args.interval, "max_file_bytes": MAX_FILE_BYTES},
        "goals": {"lost": soak.events_lost, "loaded_twice": soak.events_loaded - soak.distinct_events_loaded,
                  "unexpected": soak.events_unexpected,
                  "bad_records_not_quarantined": figures["bad_records"] - soak.quarantined,
                  "quarantined_without_reason": soak.quarantined_without_reason,
                  "left_in_landing_zone": soak.left_in_landing_zone, "failed_runs": soak.failed_runs},
        "soak": figures,
    }, load_average_at_end=load_average())


if __name__ == "__main__":
    main()
