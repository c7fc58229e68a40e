"""Benchmark: loading a provider's marketing events from Parquet and from CSV, checked against the contract.

A simulated world (default 50,000 clients x 365 days) is exported as a provider's extract
(`export_simulated_world`: UUID ids, its own column names and vocabulary, one events file a day); the CSV
variant is the same extract with the daily events files written as CSV. Each format is loaded in a fresh
process, so its peak memory is its own, by what the raw assets call (`load_source`: read, map, parse,
check the contract), for the events table and the clients it references.

    python benchmarks/sources.py [--clients 50000] [--days 365]

Results: benchmarks/results/sources.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import load_average, write_results

START = dt.date(2025, 1, 1)
EVENTS = "marketing_events"
# a year of the 50,000-client world's events loads in at most a minute (the pace of simulating and writing
# them in the data step), within the 8 GB the data step may use at a million clients
GOAL_LOAD_SECONDS = 60
GOAL_PEAK_RSS_MB = 8_000


def export(clients: int, days: int, folder: Path) -> dict[str, Path]:
    """The extract as Parquet daily events files, and a copy with CSV daily events files."""
    import duckdb

    from marketing_ml.simulation.config import SimulationConfig
    from marketing_ml.sources.export import PATHS, export_simulated_world

    config = SimulationConfig(start_date=START, n_clients=clients)
    parquet = export_simulated_world(config, START, START + dt.timedelta(days=days - 1), folder / "parquet").folder
    csv = folder / "csv"
    shutil.copytree(parquet, csv, ignore=shutil.ignore_patterns("*.parquet"))
    shutil.copy(parquet / PATHS["outcomes"], csv / PATHS["outcomes"])
    (csv / PATHS[EVENTS]).mkdir(exist_ok=True)
    with duckdb.connect() as conn:
        for path in sorted((parquet / PATHS[EVENTS]).glob("*.parquet")):
            target = csv / PATHS[EVENTS] / f"{path.stem}.csv"
            conn.execute(f"copy (select * from read_parquet('{path}')) to '{target}' (header, delimiter ',')")
    return {"parquet": parquet, "csv": csv}


def measure(folder: Path) -> dict:
    from marketing_ml.sources.validation import load_source, table_files
    from marketing_ml.sources.mapping import load_mapping

    mapping = load_mapping(folder / "mapping.yaml")
    files = table_files(folder, EVENTS, mapping.table(EVENTS))
    began = time.perf_counter()
    loaded = load_source(folder, tables=(EVENTS,), today=dt.date(2030, 1, 1))
    seconds = time.perf_counter() - began
    report = loaded.report.tables[EVENTS]
    if not loaded.report.ok:
        raise SystemExit(f"the export does not validate: {report}")
    rows = len(loaded.tables[EVENTS])
    return {
        "files": len(files),
        "bytes_on_disk": sum(p.stat().st_size for p in files),
        "rows_loaded": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--output", type=Path, help="write here instead of benchmarks/results/sources.json")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: load one extract
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="mm_sources_") as scratch:
        print(f"exporting {args.clients:,} clients x {args.days} days", flush=True)
        began = time.perf_counter()
        folders = export(args.clients, args.days, Path(scratch))
        export_seconds = round(time.perf_counter() - began, 1)
        results = {}
        for fmt, folder in folders.items():
            print(f"loading the {fmt} extract", flush=True)
            out = subprocess.run([sys.executable, __file__, "--one", str(folder)], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stdout[-2000:] + out.stderr[-3000:])
            results[fmt] = json.loads(out.stdout.strip().splitlines()[-1])
            print(results[fmt], flush=True)
    goals = {f"{fmt}_{k}": results[fmt][k] for fmt in results for k in ("seconds", "rows_per_second", "peak_rss_mb")}
    goals |= {"goal_load_seconds": GOAL_LOAD_SECONDS, "goal_peak_rss_mb": GOAL_PEAK_RSS_MB}
    write_results("sources", {"world": {"clients": args.clients, "days": args.days, "export_seconds": export_seconds},
                              "goals": goals, "results": results},
                  path=args.output, load_average_before=load_before, load_average_after=load_average())


if __name__ == "__main__":
    main()
