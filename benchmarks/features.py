"""Benchmark: feature build time for a 365-day backfill and for one daily partition, at 50k clients.

The raw data is simulated first (the `data` step, 365 days). Then, each in a fresh process so peak memory
is its own, through Dagster exactly as `marketing-ml run --step features` runs it:

1. backfill: every partition of the year in one run (one dbt build, empty feature table);
2. one partition: the last day again (the daily schedule's case: replace one day of a full table).

Reported: the Dagster run's wall time, the dbt model's own execution time, rows written, the CPU time
and peak memory of the dbt processes (DuckDB runs inside them), and the machine's load average, because
wall times on a shared machine depend on what else runs.

    python benchmarks/features.py [--clients 50000] [--days 365] [--data-dir DIR]

Results: benchmarks/results/features.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import write_results

START = dt.date(2025, 1, 1)


def _settings(data_dir: Path, clients: int):
    from marketing_ml.settings import Settings
    from marketing_ml.simulation.config import SimulationConfig

    return Settings(data_dir=data_dir, warehouse="duckdb", simulation=SimulationConfig(start_date=START, n_clients=clients))


def _run(settings, job_name: str, first: dt.date, last: dt.date):
    """Run a step job over a partition range, as the CLI does; returns (seconds, result)."""
    import dagster as dg

    from marketing_ml.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def(job_name)
    began = time.perf_counter()
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": first.isoformat(), "dagster/asset_partition_range_end": last.isoformat()},
    )
    return time.perf_counter() - began, result


def measure(step: str, data_dir: Path, clients: int, days: int) -> dict:
    settings = _settings(data_dir, clients)
    last = START + dt.timedelta(days=days - 1)
    if step == "data":
        elapsed, _ = _run(settings, "step_data", START, last)
        return {"step": "data", "days": days, "run_seconds": round(elapsed, 1)}
    first = START if step == "backfill" else last
    elapsed, result = _run(settings, "step_features", first, last)
    model = next(  # the dbt model's materialisation (one per partition; they share the metadata)
        e.event_specific_data.materialization.metadata
        for e in result.all_events
        if e.is_step_materialization and e.event_specific_data.materialization.asset_key.path == ["client_features_daily"]
    )
    dbt = resource.getrusage(resource.RUSAGE_CHILDREN)  # the dbt processes of this run (DuckDB inside)
    return {
        "step": step,
        "as_of_dates": (last - first).days + 1,
        "rows": model["rows in window"].value,
        "run_seconds": round(elapsed, 1),
        "dbt_model_seconds": round(float(model["Execution Duration"].value), 1),
        # CPU time is what other work on a shared machine disturbs least
        "dbt_cpu_seconds": round(dbt.ru_utime + dbt.ru_stime, 1),
        "peak_rss_mb_dbt": round(dbt.ru_maxrss / 1024),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--data-dir", type=Path, help="keep the simulated data here (default: a temporary dir)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.data_dir, args.clients, args.days)))
        return
    load = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="mm_bench_features_") as scratch:
        data_dir = args.data_dir or Path(scratch)
        data_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for step in ("data", "backfill", "partition"):
            out = subprocess.run(
                [sys.executable, __file__, "--one", step, "--data-dir", str(data_dir),
                 "--clients", str(args.clients), "--days", str(args.days)],
                capture_output=True, text=True, check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    # other work on the machine slows every number here; the load says how busy it was
    write_results("features", {"clients": args.clients, "days": args.days, "results": rows},
                  load_average_1m_at_start=load)


if __name__ == "__main__":
    main()
