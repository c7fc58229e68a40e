"""Benchmark: uplift models against the true effects, at the default scale, across effect-propensity settings.

For each setting of the effect-propensity correlation, builds (or reuses) a world of 50k clients x 365
days with the data and features steps, runs the `uplift` step through Dagster as `marketing-ml run`
does, and reads the champions' out-of-time test figures from the materialization metadata: the share of
the oracle's incremental outcomes captured at a capacity of 10% of the contacts, the ratio to ranking by
propensity, and the rank correlation with the true effects.

    python benchmarks/uplift.py [--clients 50000] [--days 365] [--correlations 0 0.5 0.9] [--data-root DIR]

Goals (issue 18), at the default setting (0.5): the advisor-outreach champion captures >= 75% of the
oracle's incremental conversions and >= 1.5x what propensity ranking captures, with a true-effect rank
correlation >= 0.6; the uplift step adds at most 90 s.
Results: benchmarks/results/uplift.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

from results_file import load_average, write_results
from training import run_step

DEFAULT_CORRELATION = 0.5
REPORTED = ("captured_share_of_oracle", "ratio_to_propensity", "rank_correlation", "pehe", "qini",
            "qini_propensity", "oracle_qini")


def measure_world(clients: int, days: int, correlation: float, data_dir: Path) -> dict:
    import dagster as dg

    from marketing_ml.cli import prepare_dagster_home
    from marketing_ml.definitions import build_definitions
    from marketing_ml.settings import Settings
    from marketing_ml.simulation.config import SimulationConfig
    from marketing_ml.uplift.store import PRIMARY_OUTCOME

    start = dt.date(2025, 1, 1)
    end = start + dt.timedelta(days=days - 1)
    data_dir.mkdir(parents=True, exist_ok=True)
    config = SimulationConfig(start_date=start, n_clients=clients, effect_propensity_correlation=correlation)
    settings = Settings(data_dir.resolve(), "duckdb", config)
    prepare_dagster_home(settings)
    defs = build_definitions(settings)
    timings = {}
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        if not (data_dir / ".built").exists():
            timings["data_seconds"] = run_step(defs, instance, "data", start, end)
            timings["features_seconds"] = run_step(defs, instance, "features", start, end)
            (data_dir / ".built").write_text(end.isoformat())
        timings["uplift_seconds"] = run_step(defs, instance, "uplift", start, end)

        def metadata(key: str) -> dict:
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            return {k: v.value for k, v in event.asset_materialization.metadata.items()}

        learners = {name: metadata(f"uplift_{name}") for name in ("t_learner", "x_learner")}
        decisions = metadata("uplift_champions")["decisions"]
        rows = metadata("uplift_training_set")["dagster/row_count"]
    per_intervention = {}
    for intervention, outcome in PRIMARY_OUTCOME.items():
        # the champion is the learner with the best selection Qini: the same rule as uplift_champions
        def selection_qini(name: str) -> float:
            return learners[name]["selection_metrics"][f"selection.{outcome}.{intervention}.qini"]

        champion = max(learners, key=selection_qini)
        test = learners[champion]["test_metrics"]
        per_intervention[intervention] = {
            "outcome": outcome,
            "champion": champion,
            "test": {m: round(float(test[f"test.{outcome}.{intervention}.{m}"]), 5) for m in REPORTED},
            "learners": {name: {m: round(float(learners[name]["test_metrics"][f"test.{outcome}.{intervention}.{m}"]), 5)
                                for m in REPORTED} for name in learners},
            "test_contacts": learners[champion]["test_metrics"][f"test.{outcome}.contacts"],
        }
    return {
        "correlation": correlation,
        "uplift_set_rows": rows,
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "learner_seconds": {name: round(float(m["training_seconds"]), 1) for name, m in learners.items()},
        "decisions": decisions,
        "interventions": per_intervention,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--correlations", type=float, nargs="+", default=[0.0, DEFAULT_CORRELATION, 0.9])
    parser.add_argument("--data-root", type=Path, help="one world per setting under it, reused when built "
                        "(default: a temp dir)")
    args = parser.parse_args()
    if DEFAULT_CORRELATION not in args.correlations:
        raise SystemExit(f"the goals are measured at the default setting {DEFAULT_CORRELATION}: include it")
    root = args.data_root or Path(tempfile.mkdtemp(prefix="mm_uplift_bench_"))
    worlds = [measure_world(args.clients, args.days, c, root / f"correlation_{c}") for c in args.correlations]
    default = next(w for w in worlds if w["correlation"] == DEFAULT_CORRELATION)
    advisor = default["interventions"]["advisor_outreach"]["test"]
    retention = default["interventions"]["retention_call"]["test"]
    goals = {
        "captured_share_of_oracle": advisor["captured_share_of_oracle"], "goal_captured_share_of_oracle": 0.75,
        "ratio_to_propensity": advisor["ratio_to_propensity"], "goal_ratio_to_propensity": 1.5,
        "rank_correlation": advisor["rank_correlation"], "goal_rank_correlation": 0.6,
        "retention_captured_share_of_oracle": retention["captured_share_of_oracle"],
        "retention_ratio_to_propensity": retention["ratio_to_propensity"],
        "uplift_step_seconds": default["timings_seconds"]["uplift_seconds"], "goal_uplift_step_seconds": 90,
    }
    sensitivity = [
        {"correlation": w["correlation"], "intervention": i, **{m: v["test"][m] for m in REPORTED}}
        for w in worlds for i, v in w["interventions"].items()
    ]
    write_results("uplift", {
        "world": {"clients": args.clients, "days": args.days, "capacity": "10% of the test slice's contacts"},
        "goals": goals,
        "sensitivity": sensitivity,
        "worlds": worlds,
    }, load_average_at_end=load_average())
    print(json.dumps(goals, indent=2))


if __name__ == "__main__":
    main()
