"""Shared fixtures: a small simulated world (2,000 clients, 60 days) built once per test session."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from marketing_ml.definitions import build_definitions
from marketing_ml.settings import PIN_FILE, Settings, load_settings, write_pin
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


def query(settings: Settings, sql: str, params=()):
    """One read-only query on a data directory's warehouse, as a DataFrame."""
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        return conn.execute(sql, list(params)).fetchdf()


VENV_SCRIPT = Path(sys.executable).with_name("marketing-ml")  # the README calls `.venv/bin/marketing-ml`
# a PATH without the virtual environment, as for a user who did not activate it
PATH_WITHOUT_VENV = "/usr/local/bin:/usr/bin:/bin"


def cli_environment(settings: Settings) -> dict[str, str]:
    """The environment of `marketing-ml` on a data directory, with a PATH that lacks the venv."""
    return {**os.environ, "PATH": PATH_WITHOUT_VENV, "MARKETING_ML_HOME": str(settings.data_dir),
            "MARKETING_ML_START_DATE": settings.simulation.start_date.isoformat(),
            "MARKETING_ML_CLIENTS": str(settings.simulation.n_clients)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answering(process: subprocess.Popen, url: str, log_path: Path, seconds: int = 120) -> None:
    """Wait (bounded) until a server process started by a test answers `url`; fail with its log if it exits
    or does not answer in time."""
    for _ in range(seconds):
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    pytest.fail(f"{' '.join(map(str, process.args))[:200]} did not answer {url}: {log_path.read_text()[-2000:]}")


@contextmanager
def marketing_ml_ui(settings: Settings, log_path: Path) -> Iterator[str]:
    """`.venv/bin/marketing-ml ui` by path, venv not on PATH; yields the UI's URL once it answers."""
    port = free_port()
    log = open(log_path, "w")
    process = subprocess.Popen([str(VENV_SCRIPT), "ui", "--port", str(port)], env=cli_environment(settings),
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, f"{url}/server_info", log_path)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def copy_of(settings: Settings, data_dir: Path) -> Settings:
    """A private copy of a built data directory, for tests that write to the warehouse."""
    shutil.copytree(settings.data_dir, data_dir)
    return dataclasses.replace(settings, data_dir=data_dir)


@pytest.fixture(scope="session")
def serving_world(tmp_path_factory):
    """Registered champions (trained by the training core) and an online feature table, for the API tests."""
    from marketing_ml_tests.serving_world import build_world

    return build_world(tmp_path_factory.mktemp("mm_serving"))


@pytest.fixture
def private_world(serving_world, tmp_path):
    """A copy of the serving world a test may change (aliases, online rows)."""
    from marketing_ml_tests.serving_world import copy_world

    return copy_world(serving_world, tmp_path / "world")


# ---- a trained world: models and champions on a simulated history (the models and registry steps) ----

TRAINING_CLIENTS = 10_000
TRAINING_DAYS = 120
TRAINING_END = TEST_START + dt.timedelta(days=TRAINING_DAYS - 1)


@pytest.fixture(scope="session")
def training_world(tmp_path_factory) -> Settings:
    """A data directory with the data and features steps built for 10,000 clients x 120 days, the runs
    recorded in its own Dagster instance as `marketing-ml run` records them."""
    # campaign touches at twice the default rate: the next-best-action slices of a 120-day history then hold
    # enough responses to tell a family from the per-action base rates beyond this world's noise
    config = SimulationConfig(start_date=TEST_START, n_clients=TRAINING_CLIENTS, touch_rate=0.03)
    settings = Settings(tmp_path_factory.mktemp("mm_training_world"), "duckdb", config)
    write_pin(settings.data_dir, config)  # so the CLI and `load_settings` find this world, touch rate included
    settings.dagster_home.mkdir()
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        run_step(settings, "step_data", TEST_START, TRAINING_END, instance=instance)
        run_step(settings, "step_features", TEST_START, TRAINING_END, instance=instance)
    return settings


@pytest.fixture(scope="session")
def trained(training_world, tmp_path_factory):
    """`marketing-ml run --step models --step registry` on a copy of the training world, as a user runs it
    (default windows, fitted to the 120-day history, and the default gate): (settings, instance, stdout)."""
    home = tmp_path_factory.mktemp("mm_training")
    shutil.copy(training_world.duckdb_path, home / "warehouse.duckdb")
    shutil.copy(training_world.data_dir / PIN_FILE, home / PIN_FILE)
    shutil.copytree(training_world.dagster_home, home / "dagster_home")  # the data and features runs, for the UI
    sim = training_world.simulation
    env = {**os.environ, "MARKETING_ML_HOME": str(home), "MARKETING_ML_START_DATE": sim.start_date.isoformat(),
           "MARKETING_ML_CLIENTS": str(sim.n_clients)}
    result = subprocess.run(
        [sys.executable, "-m", "marketing_ml.cli", "run", "--step", "models", "--step", "registry",
         "--end-date", TRAINING_END.isoformat()],
        env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    settings = load_settings(environ={"MARKETING_ML_HOME": str(home)})
    return settings, dg.DagsterInstance.from_config(str(settings.dagster_home)), result.stdout


# ---- an uplift world: the randomised contact log long enough for matured 90-day windows ----

# The outcome models' 120-day world holds no matured 90-day window after a warm-up, so the uplift step
# gets its own: 12,000 clients x 220 days (data, features and uplift steps).
UPLIFT_DAYS = 220
UPLIFT_END = TEST_START + dt.timedelta(days=UPLIFT_DAYS - 1)


@pytest.fixture(scope="session")
def uplift_world(tmp_path_factory):
    """(settings, the uplift step's check evaluations by name)."""
    settings = Settings(tmp_path_factory.mktemp("mm_uplift"), "duckdb",
                        SimulationConfig(start_date=TEST_START, n_clients=12_000))
    settings.dagster_home.mkdir()
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for step in ("step_data", "step_features"):
            run_step(settings, step, TEST_START, UPLIFT_END, instance=instance)
        # the step succeeds whether or not a gate refuses on this small world; the tests check either outcome
        uplift = run_step(settings, "step_uplift", TEST_START, UPLIFT_END, instance=instance)
    return settings, {e.check_name: e for e in uplift.get_asset_check_evaluations()}


# ---- a provider's own data: a simulated world exported as files (UUID ids, its own names), no ground truth ----

OWN_DATA_CLIENTS = 4_000
OWN_DATA_DAYS = 220  # long enough for matured 90-day contact windows after the warm-up, as the uplift world
OWN_DATA_END = TEST_START + dt.timedelta(days=OWN_DATA_DAYS - 1)


def build_own_data_world(root: Path, config: SimulationConfig) -> Settings:
    """The simulated world of `config` exported as a provider's extract into `root/provider`, and a data
    directory `root/home` whose raw tables come from it, with the data and features steps built and the runs
    recorded in its own Dagster instance. No ground truth exists."""
    from marketing_ml.sources.export import export_simulated_world

    world = export_simulated_world(config, TEST_START, OWN_DATA_END, root / "provider")
    settings = Settings(root / "home", "duckdb", config, source=world.folder)
    write_pin(settings.data_dir, config)
    settings.dagster_home.mkdir()
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        for step in ("step_data", "step_features"):
            run_step(settings, step, TEST_START, OWN_DATA_END, instance=instance)
    return settings


@pytest.fixture(scope="session")
def own_data_world(tmp_path_factory) -> Settings:
    """A data directory whose raw tables come from a provider's extract (MARKETING_ML_SOURCE=<folder>): the
    data and features steps built, the runs recorded in its own Dagster instance. No ground truth exists."""
    config = SimulationConfig(start_date=TEST_START, n_clients=OWN_DATA_CLIENTS)
    return build_own_data_world(tmp_path_factory.mktemp("mm_own_data"), config)
