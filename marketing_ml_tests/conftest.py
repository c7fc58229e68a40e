"""Shared fixtures: a small simulated world (2,000 clients, 60 days) built once per test session."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from marketing_ml.definitions import build_definitions
from marketing_ml.settings import Settings
from marketing_ml.simulation.config import SimulationConfig

TEST_START = dt.date(2025, 1, 1)
TEST_DAYS = 60
TEST_END = TEST_START + dt.timedelta(days=TEST_DAYS - 1)
TEST_CLIENTS = 2_000


def small_settings(data_dir: Path, **overrides) -> Settings:
    config = SimulationConfig(start_date=TEST_START, n_clients=TEST_CLIENTS, **overrides)
    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings(data_dir=data_dir, warehouse="duckdb", simulation=config)


def run_step(settings: Settings, step_job: str, first: dt.date | None = None, last: dt.date | None = None,
             instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """Run one step job over a partition range, the way the CLI does."""
    defs = build_definitions(settings)
    job = defs.resolve_job_def(step_job)
    tags = {}
    if job.partitions_def is not None:
        tags = {
            "dagster/asset_partition_range_start": (first or TEST_START).isoformat(),
            "dagster/asset_partition_range_end": (last or TEST_END).isoformat(),
        }
    result = job.execute_in_process(instance=instance or dg.DagsterInstance.ephemeral(), tags=tags)
    assert result.success
    return result


@pytest.fixture(scope="session")
def data_settings(tmp_path_factory) -> Settings:
    """A data directory with the `data` step built for the whole test history."""
    settings = small_settings(tmp_path_factory.mktemp("mm_data"))
    run_step(settings, "step_data")
    return settings


@pytest.fixture(scope="session")
def features_settings(data_settings) -> Settings:
    """The same data directory with the `features` step built for the whole test history."""
    run_step(data_settings, "step_features")
    return data_settings


@pytest.fixture
def warehouse(data_settings):
    conn = duckdb.connect(str(data_settings.duckdb_path), read_only=True)
    yield conn
    conn.close()


def copy_of(settings: Settings, data_dir: Path) -> Settings:
    """A private copy of a built data directory, for tests that write to the warehouse."""
    import shutil

    shutil.copytree(settings.data_dir, data_dir)
    return Settings(data_dir=data_dir, warehouse=settings.warehouse, simulation=settings.simulation)
