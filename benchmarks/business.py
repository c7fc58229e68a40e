"""Benchmark: what the platform's contacts cause, at 50k clients, against random, value-only, propensity
and the oracle, counted with the simulator's true effects.

Copies a data directory that holds features, outcome champions and uplift champions (built by
`marketing-ml run`), runs the `inference` step there exactly as a user does
(`marketing-ml run --step inference --scoring-days N`), and summarises `scoring.business_impact` over those
days: per list and policy the contacts, cost, incremental outcomes (conversions caused, churns prevented,
responses caused), incremental revenue, ROI and share of the oracle's outcomes, summed over the days'
distinct contacts; and the demo's four KPIs. Dollar figures follow the default `BusinessAssumptions`,
recorded in the results.

    python benchmarks/business.py --data-dir DIR [--days 35]

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

from results_file import load_average, scratch_copy, write_results

REPO = Path(__file__).resolve().parents[1]
GOALS = {"uplift_vs_propensity_conversions": 1.5, "uplift_share_of_oracle_conversions": 0.75,
         "uplift_vs_propensity_saves": 1.5, "campaign_roi_share_of_oracle": 0.8}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True, help="a built data directory (copied, not changed)")
    parser.add_argument("--days", type=int, default=35, help="latest days to score and decide")
    args = parser.parse_args()

    import duckdb

    sys.path.insert(0, str(REPO))
    from marketing_ml.decisions.business import BusinessAssumptions
    from marketing_ml.decisions.impact import kpis, over_days
    from marketing_ml.settings import load_settings

    work = scratch_copy(args.data_dir, "mm_business_bench_")
    env = {**os.environ, "MARKETING_ML_HOME": str(work), "PYTHONPATH": str(REPO)}
    load_before = load_average()
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "marketing_ml.cli", "run", "--step", "inference", "--scoring-days", str(args.days)],
                   env=env, cwd=REPO, check=True)
    inference_seconds = time.perf_counter() - began

    settings = load_settings(environ={"MARKETING_ML_HOME": str(work)})
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        daily = conn.execute("select * from scoring.business_impact order by as_of_date, use_case, policy").fetchdf()
        clients = conn.execute("select count(*) / count(distinct as_of_date) from scoring.daily_predictions").fetchone()[0]
        ranked_by = dict(conn.execute(
            "select 'advisor_queue', any_value(ranked_by) from scoring.advisor_queue union all "
            "select 'retention_list', any_value(ranked_by) from scoring.retention_list").fetchall())
        repeat_calls = conn.execute("""
            select count(*) - count(distinct client_id) from (
                select client_id from scoring.advisor_queue union all select client_id from scoring.retention_list)""").fetchone()[0]
    summed = over_days(daily)
    by = summed.set_index(["use_case", "policy"])

    def ratio(use_case: str, policy: str, other: str, column: str = "incremental_outcomes") -> float | None:
        if (use_case, policy) not in by.index:
            return None
        return round(float(by.loc[(use_case, policy), column] / by.loc[(use_case, other), column]), 4)

    measured = {
        "uplift_vs_propensity_conversions": ratio("advisor_queue", "uplift", "propensity"),
        "uplift_share_of_oracle_conversions": ratio("advisor_queue", "uplift", "oracle"),
        "uplift_vs_propensity_saves": ratio("retention_list", "uplift", "propensity"),
        "campaign_roi_share_of_oracle": ratio("campaign_targets", "uplift", "oracle", "roi"),
    }
    goals = {}
    for name, target in GOALS.items():
        goals[name] = measured[name]
        goals[f"goal_{name}"] = target
    goals["campaign_roi"] = round(float(by.loc[("campaign_targets", "uplift"), "roi"]), 4)
    goals["goal_campaign_roi_positive"] = True
    rows = {use_case: {policy: {k: round(float(v), 4) for k, v in r.items()}
                       for (u, policy), r in by.drop(columns=[]).iterrows() if u == use_case}
            for use_case in summed["use_case"].unique()}
    write_results("business", {
        "world": {"clients": settings.simulation.n_clients, "scored_clients_per_day": round(float(clients)),
                  "days": sorted(str(d)[:10] for d in daily["as_of_date"].unique()),
                  "effect_propensity_correlation": settings.simulation.effect_propensity_correlation},
        "inference_step_seconds": round(inference_seconds, 1),
        "ranked_by": ranked_by,
        "clients_called_twice": int(repeat_calls),
        "assumptions": dataclasses.asdict(BusinessAssumptions()),
        "goals": goals,
        "kpis": {k: round(v, 4) for k, v in kpis(summed).items()},
        "over_days": rows,
    }, load_before=load_before, load_after=load_average())
    print(json.dumps(goals, indent=2))


if __name__ == "__main__":
    main()
