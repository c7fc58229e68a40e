"""The CLI end to end on a small scale, as a user runs it."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request
import warnings

import dagster as dg
import duckdb
import pytest

from marketing_ml.cli import _parser, _selected_steps
from marketing_ml.features.catalog import load_feature_catalog
from marketing_ml_tests.conftest import (
    PATH_WITHOUT_VENV,
    TEST_CLIENTS,
    TEST_END,
    TEST_START,
    VENV_SCRIPT,
    copy_of,
    marketing_ml_ui,
)


def _cli(args: list[str], home, **env) -> subprocess.CompletedProcess:
    """`.venv/bin/marketing-ml ARGS` as the README calls it: by path, the venv not on PATH."""
    environ = {**os.environ, "PATH": PATH_WITHOUT_VENV, "MARKETING_ML_HOME": str(home),
               "MARKETING_ML_START_DATE": TEST_START.isoformat(), **env}
    return subprocess.run([str(VENV_SCRIPT), *args], env=environ, capture_output=True, text=True, timeout=900)


def test_ui_starts_dagster_of_its_own_environment_without_the_venv_on_path(data_settings, tmp_path):
    settings = copy_of(data_settings, tmp_path / "ui")
    query = b'{"query": "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename } } } } }"}'
    with marketing_ml_ui(settings, tmp_path / "ui.log") as url:
        request = urllib.request.Request(f"{url}/graphql", data=query, headers={"content-type": "application/json"})
        for _ in range(120):  # the code location loads after the webserver answers
            with urllib.request.urlopen(request, timeout=30) as response:
                entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["locationOrLoadError"]:
                break
            time.sleep(1)
    assert [e["locationOrLoadError"]["__typename"] for e in entries] == ["RepositoryLocation"]


def test_step_data_runs_through_dagster_and_is_recorded(tmp_path):
    home = tmp_path / "cli"
    result = _cli(["run", "--step", "data", "--clients", str(TEST_CLIENTS), "--end-date", TEST_END.isoformat()], home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "step data: ok" in result.stdout
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("select count(*) from raw.raw_clients").fetchone()[0] == TEST_CLIENTS
        assert conn.execute("select max(event_date) from raw.raw_marketing_events").fetchone()[0] == TEST_END
    # the run is in the data directory's Dagster instance, so the UI shows it
    runs = list((home / "dagster_home" / "history" / "runs").glob("*.db"))
    assert runs, "no run recorded in the local Dagster instance"


def test_a_different_world_in_the_same_directory_is_refused_with_advice(tmp_path):
    home = tmp_path / "pinned"
    assert _cli(["info"], home, MARKETING_ML_CLIENTS="1000").returncode == 0
    result = _cli(["info"], home, MARKETING_ML_CLIENTS="2000")
    assert result.returncode == 2
    assert "MARKETING_ML_HOME" in result.stderr and "reset" in result.stderr


def test_the_cli_prints_no_dagster_beta_notices(tmp_path):
    from marketing_ml.definitions import build_definitions
    from marketing_ml.settings import load_settings

    # building the Definitions does raise them (backfill_policy, code references) ...
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        build_definitions(load_settings(environ={"MARKETING_ML_HOME": str(tmp_path / "in_process")}))
    assert any(issubclass(w.category, dg.BetaWarning) for w in raised)
    # ... and the CLI, which builds them before it refuses an --end-date before the history start, shows none
    before_start = (TEST_START - dt.timedelta(days=1)).isoformat()
    result = _cli(["run", "--clients", "500", "--end-date", before_start], tmp_path / "cli")
    assert result.returncode == 2 and "before the history start" in result.stderr, result.stdout + result.stderr
    assert "BetaWarning" not in result.stderr and "PreviewWarning" not in result.stderr, result.stderr


def test_help_documents_every_command():
    result = subprocess.run([sys.executable, "-m", "marketing_ml.cli", "run", "--help"], capture_output=True, text=True)
    for word in ("--step", "--no-streaming", "--clients", "--days", "data", "features", "models", "registry", "uplift", "inference", "streaming"):
        assert word in result.stdout


@pytest.mark.parametrize(("argv", "steps"), [
    (["run"], ["data", "features", "models", "registry", "uplift", "inference"]),
    (["run", "--no-streaming"], ["data", "features", "models", "registry", "uplift", "inference"]),
    (["run", "--step", "streaming", "--step", "data"], ["data", "streaming"]),
    (["run", "--step", "data", "--step", "streaming", "--no-streaming"], ["data"]),
])
def test_run_without_a_step_runs_everything_but_streaming_in_order(argv, steps):
    assert [s.name for s in _selected_steps(_parser().parse_args(argv))] == steps


def test_data_and_features_steps_end_to_end(tmp_path):
    home = tmp_path / "features"
    end = TEST_START + dt.timedelta(days=29)
    result = _cli(["run", "--step", "data", "--step", "features", "--clients", "500", "--end-date", end.isoformat()], home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "step data: ok" in result.stdout and "step features: ok" in result.stdout
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        days, first, last = conn.execute(
            "select count(distinct as_of_date), min(as_of_date), max(as_of_date) from features.client_features_daily"
        ).fetchone()
        assert (days, first, last) == (30, TEST_START, end)
        active = conn.execute(
            "select count(*) from ground_truth.true_daily_hazards h join raw.raw_clients c using (client_id)"
            " where c.enrollment_date < h.as_of_date").fetchone()[0]
        assert conn.execute("select count(*) from features.client_features_daily").fetchone()[0] == active
        assert conn.execute("select count(*) from features.feature_catalog").fetchone()[0] == len(load_feature_catalog())
