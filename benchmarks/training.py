"""Benchmark: the models and registry steps at 50k clients x 365 days, and how close they get to the oracle.

Builds (or reuses) a data directory with the data and features steps, then runs the `models` and
`registry` step jobs through Dagster exactly as `marketing-ml run` does, and reads every model's
out-of-time metrics from its materialization metadata.

    python benchmarks/training.py [--clients 50000] [--days 365] [--data-dir DIR]

Goals (issue #4): best AUC >= 0.97 x oracle AUC for conversion and churn, calibration error <= 0.02,
NBA captures >= 85% of the oracle's lift over random, all 12 models in a few minutes on 2 cores.
Results: benchmarks/results/training.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import tempfile
import time
from pathlib import Path

from results_file import load_average, write_results

METRICS = ("auc", "oracle_auc", "baseline_auc", "auc_ratio_to_oracle", "calibration_error", "oracle_calibration_error",
           "log_loss", "oracle_log_loss", "baseline_log_loss", "brier", "pr_auc", "oracle_pr_auc", "policy_value",
           "policy_value_random", "policy_value_oracle", "policy_value_baseline", "captured_lift", "policy_accuracy",
           "training_seconds")


def run_step(defs, instance, name: str, start: dt.date, end: dt.date) -> float:
    job = defs.resolve_job_def(f"step_{name}")
    tags = {}
    if job.partitions_def is not None:
        tags = {"dagster/asset_partition_range_start": start.isoformat(),
                "dagster/asset_partition_range_end": end.isoformat()}
    began = time.perf_counter()
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    seconds = time.perf_counter() - began
    if not result.success:
        raise SystemExit(f"step {name} failed (run {result.run_id})")
    print(f"step {name}: {seconds:.1f}s", flush=True)
    return seconds


def champion_latency(settings) -> dict:
    """Single-row and 10k-row `predict_frame` time of each champion through the fast path (no pyfunc)."""
    import duckdb
    import numpy as np

    from marketing_ml.registry.predictor import load_champion
    from marketing_ml.registry.tasks import TASK_NAMES

    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        rows = conn.execute("select * from features.client_features_daily where as_of_date = "
                            "(select max(as_of_date) from features.client_features_daily) limit 10000").fetchdf()
    out = {}
    for task in TASK_NAMES:
        loaded = load_champion(task, settings.mlflow_tracking_uri)
        single = []
        for i in range(300):
            row = rows.iloc[[i % len(rows)]]
            began = time.perf_counter()
            loaded.predictor.predict_frame(row)
            single.append(time.perf_counter() - began)
        began = time.perf_counter()
        loaded.predictor.predict_frame(rows)
        batch = time.perf_counter() - began
        single_ms = np.asarray(single[20:]) * 1000
        out[task] = {"family": loaded.predictor.family, "version": loaded.version,
                     "one_row_p50_ms": round(float(np.percentile(single_ms, 50)), 3),
                     "one_row_p99_ms": round(float(np.percentile(single_ms, 99)), 3),
                     "rows_per_second_10k_batch": round(len(rows) / batch)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--data-dir", type=Path, help="reused if it already holds the world (default: a temp dir)")
    args = parser.parse_args()

    import dagster as dg

    from marketing_ml.cli import prepare_dagster_home
    from marketing_ml.definitions import build_definitions
    from marketing_ml.registry.tasks import TASK_NAMES
    from marketing_ml.settings import Settings
    from marketing_ml.simulation.config import SimulationConfig
    from marketing_ml.training.families import FAMILIES

    start = dt.date(2025, 1, 1)
    end = start + dt.timedelta(days=args.days - 1)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="mm_training_bench_"))
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir.resolve(), "duckdb", SimulationConfig(start_date=start, n_clients=args.clients))
    prepare_dagster_home(settings)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.get()
    timings = {}
    built = (data_dir / ".built").exists()
    if not built:
        timings["data_seconds"] = run_step(defs, instance, "data", start, end)
        timings["features_seconds"] = run_step(defs, instance, "features", start, end)
        (data_dir / ".built").write_text(end.isoformat())
    timings["models_seconds"] = run_step(defs, instance, "models", start, end)
    timings["registry_seconds"] = run_step(defs, instance, "registry", start, end)

    def metadata(key: str) -> dict:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    models = {}
    for task in TASK_NAMES:
        for family in FAMILIES:
            values = metadata(f"{task}_{family}")
            models[f"{task}_{family}"] = {k: round(float(values[k]), 5) for k in METRICS if k in values}
            models[f"{task}_{family}"]["rows"] = values["rows"]
    champions = {}
    for task in TASK_NAMES:
        values = metadata(f"{task}_champion")
        champions[task] = {"decision": values["decision"], "champion_version": values["champion_version"]}
    for table in ("training_set_conversion", "training_set_churn", "training_set_nba"):
        champions.setdefault("training_sets", {})[table] = metadata(table).get("plan")

    latency = champion_latency(settings)
    goals = {}
    for task in ("conversion", "churn"):
        best = max((m for k, m in models.items() if k.startswith(task + "_")), key=lambda m: m["auc"])
        goals[task] = {"best_auc_ratio_to_oracle": best["auc_ratio_to_oracle"], "goal_ratio": 0.97,
                       "best_calibration_error": best["calibration_error"], "goal_calibration_error": 0.02}
    best_nba = max((m for k, m in models.items() if k.startswith("nba_")), key=lambda m: m["policy_value"])
    goals["nba"] = {"best_captured_lift": best_nba["captured_lift"], "goal_captured_lift": 0.85}
    goals["all_12_models_seconds"] = round(timings["models_seconds"], 1)

    write_results("training", {
        "world": {"clients": args.clients, "days": args.days},
        "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "goals": goals,
        "models": models,
        "registry": champions,
        "champion_predict_latency": latency,
    }, load_average_at_end=load_average())
    print(json.dumps(goals, indent=2))


if __name__ == "__main__":
    main()
