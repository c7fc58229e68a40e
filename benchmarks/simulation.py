"""Benchmark: simulation time and peak memory for 365 days at 10k, 50k and 200k clients.

Each scale runs in a fresh process (so peak memory is its own), simulates the history with the default
worker count, holds the whole range in memory (`simulate_days`) and writes the four daily tables to a
scratch DuckDB file. The raw assets stream the blocks to the warehouse instead (`simulate_blocks`), so
this main process's peak is not the data step's.

    python benchmarks/simulation.py [--clients 10000 50000 200000] [--days 365]

Results: benchmarks/results/simulation.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import write_results


def measure(clients: int, days: int) -> dict:
    import duckdb

    from marketing_ml.simulation.config import SimulationConfig
    from marketing_ml.simulation.engine import simulate_days

    config = SimulationConfig(start_date=dt.date(2025, 1, 1), n_clients=clients)
    began = time.perf_counter()
    out = simulate_days(config, config.start_date, config.start_date + dt.timedelta(days=days - 1))
    simulated = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as scratch:
        conn = duckdb.connect(str(Path(scratch) / "bench.duckdb"))
        began = time.perf_counter()
        for name in ("events", "touches", "outcomes", "hazards"):
            frame = getattr(out, name)  # noqa: F841 - read by DuckDB's replacement scan
            conn.execute(f"create table {name} as select * from frame")
        written = time.perf_counter() - began
        conn.close()
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "clients": clients,
        "days": days,
        "events": len(out.events),
        "events_per_client_year": round(len(out.events) / clients / days * 365, 1),
        "touches": len(out.touches),
        "outcomes": len(out.outcomes),
        "hazard_rows": len(out.hazards),
        "simulate_seconds": round(simulated, 2),
        "duckdb_write_seconds": round(written, 2),
        "peak_rss_mb_main": round(self_kb / 1024),
        "peak_rss_mb_worker": round(workers_kb / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one scale
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.days)))
        return
    rows = []
    for clients in args.clients:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(clients), "--days", str(args.days)],
            capture_output=True, text=True, check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    write_results("simulation", {"results": rows})


if __name__ == "__main__":
    main()
