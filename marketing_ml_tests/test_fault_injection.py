"""Fault injection: a step's process is SIGKILLed in the middle of its writes, then the step is run again;
the warehouse holds no duplicate and no half-written partition, and equals an uninterrupted run's.

The steps: a raw backfill, the dbt feature build, the models step, an ingestion and daily scoring. Each
runs as a user runs it (`marketing-ml run --step ...`, or Dagster's own CLI for an ingestion of the files
already landed), in its own process group, killed once its run has recorded a first materialization but
not its end: some of the step's assets are written, others are not."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from mlflow import MlflowClient

from marketing_ml.definitions import build_definitions
from marketing_ml.settings import Settings
from marketing_ml.streaming.producer import stream
from marketing_ml_tests.conftest import (
    TEST_END,
    TRAINING_END,
    VENV_SCRIPT,
    cli_environment,
    copy_of,
    query,
    run_step,
    small_settings,
)

STREAM_DAY = TEST_END + dt.timedelta(days=1)


def materializations_so_far(dagster_home: Path) -> int:
    """Asset materializations recorded by an unfinished run of a Dagster home (0 before one starts).

    Read from the run's own SQLite event log, read-only: opening the instance itself from a second
    process while the first one creates its storage races on the schema migration."""
    count = 0
    for run_db in (dagster_home / "history" / "runs").glob("*.db"):
        if run_db.name == "index.db":
            continue
        try:
            with closing(sqlite3.connect(f"file:{run_db}?mode=ro", uri=True)) as conn:
                events = dict(conn.execute("select dagster_event_type, count(*) from event_logs "
                                           "group by dagster_event_type").fetchall())
        except sqlite3.Error:  # created but not initialised yet
            continue
        if "RUN_SUCCESS" not in events and "RUN_FAILURE" not in events:
            count += events.get("ASSET_MATERIALIZATION", 0)
    return count


def kill_midway_then_rerun(command: list[str], env: dict[str, str], midway: Callable[[], bool],
                           timeout: float = 600) -> None:
    """Start `command`, SIGKILL its process group as soon as `midway()` holds, then run it again to success."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not midway():
            assert process.poll() is None, "the step ended before the fault could be injected"
            assert time.monotonic() < deadline, "the step never reached the point to kill it at"
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(60)
    assert process.returncode == -signal.SIGKILL, "the step was not killed midway"
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]


def schema_tables(settings: Settings, schemas: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    names = query(settings, "select table_schema || '.' || table_name as name from information_schema.tables "
                            f"where table_schema in ({', '.join('?' * len(schemas))}) order by name", schemas)["name"]
    return {name: in_stable_order(query(settings, f"select * from {name}")) for name in names}


def in_stable_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by their values, floats rounded for the sort only: the NBA boosters' sums differ in the
    last bit from run to run, which must not reorder rows (the comparison itself allows for it)."""
    key = frame.apply(lambda column: column.round(9) if column.dtype.kind == "f" else column)
    order = key.sort_values(list(key.columns), na_position="first", kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def assert_same_tables(actual: Settings, expected: Settings, schemas: tuple[str, ...], ignore=()) -> None:
    got, want = schema_tables(actual, schemas), schema_tables(expected, schemas)
    assert sorted(got) == sorted(want)
    for name, frame in want.items():
        columns = [c for c in frame.columns if c not in ignore]
        pd.testing.assert_frame_equal(got[name][columns].reset_index(drop=True),
                                      frame[columns].reset_index(drop=True), obj=name)


def cli_run(step: str) -> list[str]:
    return [str(VENV_SCRIPT), "run", "--step", step, "--end-date", TEST_END.isoformat()]


def test_killing_the_raw_backfill_midway_then_rerunning_equals_an_uninterrupted_run(data_settings, tmp_path):
    settings = small_settings(tmp_path / "raw")
    kill_midway_then_rerun(cli_run("data"), cli_environment(settings),
                           lambda: materializations_so_far(settings.dagster_home) >= 1)
    assert_same_tables(settings, data_settings, ("raw", "ground_truth"))


def test_killing_the_dbt_feature_build_midway_then_rerunning_equals_an_uninterrupted_run(features_settings, tmp_path):
    settings = small_settings(tmp_path / "features")
    run_step(settings, "step_data")
    kill_midway_then_rerun(cli_run("features"), cli_environment(settings),
                           lambda: materializations_so_far(settings.dagster_home) >= 1)
    assert_same_tables(settings, features_settings, ("features",), ignore=("updated_at",))  # when it was written


def test_killing_an_ingestion_midway_then_rerunning_loads_each_event_once(data_settings, tmp_path):
    reference, settings = copy_of(data_settings, tmp_path / "reference"), copy_of(data_settings, tmp_path / "killed")
    for world in (reference, settings):
        stream(world.simulation, world.landing_dir, rate=300, duration=8, malformed_rate=0.05,
               first_day=STREAM_DAY, sleep=lambda s: None)
    run_step(reference, "step_streaming")
    archive = settings.landing_dir / "archive"
    # Dagster's own CLI: an ingestion of every file in the landing zone, as the UI launches it
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "marketing_ml.definitions",
               "--select", "streamed_events,events_quarantine"]
    env = {**cli_environment(settings), "DAGSTER_HOME": str(settings.dagster_home)}
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    kill_midway_then_rerun(command, env, lambda: archive.exists() and any(archive.iterdir()))
    assert not list(settings.landing_dir.glob("events-*"))
    loaded = query(settings, "select count(*) as n, count(distinct event_id) as ids from streaming.streamed_events")
    assert loaded["n"].iloc[0] == loaded["ids"].iloc[0] > 0
    # the two worlds' files are named by the time they landed; everything else is the same
    assert_same_tables(settings, reference, ("streaming",), ignore=("file_name", "ingested_at", "quarantined_at"))



def test_killing_daily_scoring_midway_then_rerunning_equals_an_uninterrupted_run(trained, tmp_path):
    """`marketing-ml run --step inference` (scoring, business outputs, monitoring over its 35 days) on the
    trained world, killed once its run has written a first asset, then run again."""
    reference, settings = copy_of(trained[0], tmp_path / "reference"), copy_of(trained[0], tmp_path / "killed")
    command = [str(VENV_SCRIPT), "run", "--step", "inference", "--end-date", TRAINING_END.isoformat()]
    uninterrupted = subprocess.run(command, env=cli_environment(reference), capture_output=True, text=True, timeout=900)
    assert uninterrupted.returncode == 0, uninterrupted.stdout[-3000:] + uninterrupted.stderr[-3000:]
    kill_midway_then_rerun(command, cli_environment(settings),
                           lambda: materializations_so_far(settings.dagster_home) >= 1)
    assert_same_tables(settings, reference, ("scoring", "monitoring"))


def test_killing_the_models_step_midway_then_rerunning_equals_an_uninterrupted_run(training_world, trained,
                                                                                 tmp_path):
    """`marketing-ml run --step models` (training sets, then twelve model assets logging to MLflow), killed
    once a first asset is written; after the rerun the training sets equal those of the uninterrupted run
    (`trained`), and every model asset's latest materialization names a finished MLflow run of its own."""
    settings = copy_of(training_world, tmp_path / "killed")
    command = [str(VENV_SCRIPT), "run", "--step", "models", "--end-date", TRAINING_END.isoformat()]
    kill_midway_then_rerun(command, cli_environment(settings),
                           lambda: materializations_so_far(settings.dagster_home) >= 1)
    reference, reference_instance, _ = trained
    assert_same_tables(settings, reference, ("training",))
    defs = build_definitions(settings)
    models = [key for key in defs.resolve_all_asset_keys()
              if defs.resolve_assets_def(key).group_names_by_key[key] == "training"
              and not key.path[-1].startswith(("training_set_", "nba_policy"))]
    assert len(models) == 12
    tracking = MlflowClient(settings.mlflow_tracking_uri)
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for key in models:
            latest = instance.get_latest_materialization_event(key).asset_materialization.metadata
            expected = reference_instance.get_latest_materialization_event(key).asset_materialization.metadata
            assert tracking.get_run(latest["mlflow_run_id"].value).info.status == "FINISHED", key
            assert latest["auc"].value == pytest.approx(expected["auc"].value, abs=1e-6), key
