"""Benchmark: the business impact of model-driven targeting at 50k clients, against random and the oracle.

Copies a data directory that holds features and @champion models (built by `marketing-ml run`, or the
serving benchmark's world), runs the `inference` step there exactly as a user does
(`marketing-ml run --step inference --scoring-days N`), and summarises `scoring.business_impact` over
those days: per use case and policy (model, random, oracle at the same capacity), the expected outcomes
and revenue counted with the simulator's true probabilities, the lift over random and the share of the
oracle's gain the models capture. Dollar figures follow the default `BusinessAssumptions`, recorded in
the results.

    python benchmarks/business.py --data-dir DIR [--days 7]

Results: benchmarks/results/business.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from results_file import scratch_copy, write_results

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True, help="a built data directory (copied, not changed)")
    parser.add_argument("--days", type=int, default=7, help="latest days to score")
    args = parser.parse_args()

    import duckdb
    import pandas as pd

    from marketing_ml.decisions.business import BusinessAssumptions
    from marketing_ml.settings import load_settings

    work = scratch_copy(args.data_dir, "mm_business_bench_")
    env = {**os.environ, "MARKETING_ML_HOME": str(work), "PYTHONPATH": str(REPO)}
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "marketing_ml.cli", "run", "--step", "inference", "--scoring-days", str(args.days)],
                   env=env, cwd=REPO, check=True)
    inference_seconds = time.perf_counter() - began

    settings = load_settings(environ={"MARKETING_ML_HOME": str(work)})
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        impact = conn.execute("select * from scoring.business_impact order by as_of_date, use_case, policy").fetchdf()
        clients = conn.execute("select count(*) / count(distinct as_of_date) from scoring.daily_predictions").fetchone()[0]
    summary = (
        impact.groupby(["use_case", "policy"], sort=False)[
            ["contacts", "expected_outcomes", "annual_revenue_usd", "lift_vs_random_pct", "captured_pct"]]
        .mean()
        .round(4)
    )
    by_use_case: dict[str, dict] = {}
    for (use_case, policy), row in summary.iterrows():
        by_use_case.setdefault(use_case, {})[policy] = {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
    daily = impact.pivot_table(index="as_of_date", columns=["use_case", "policy"], values="annual_revenue_usd")
    incremental = sum(daily[(u, "model")] - daily[(u, "random")] for u in ("conversion", "churn"))
    write_results("business", {
        "world": {"clients": settings.simulation.n_clients, "scored_clients_per_day": round(float(clients)),
                  "days": sorted(str(d.date()) if hasattr(d, "date") else str(d) for d in impact["as_of_date"].unique())},
        "inference_step_seconds": round(inference_seconds, 1),
        "assumptions": dataclasses.asdict(BusinessAssumptions()),
        "mean_per_day": by_use_case,
        "incremental_annual_revenue_usd_per_day_of_targeting": {
            "mean": round(float(incremental.mean())), "min": round(float(incremental.min())), "max": round(float(incremental.max())),
        },
    })
    print(json.dumps(by_use_case, indent=2))


if __name__ == "__main__":
    main()
