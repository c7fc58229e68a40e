"""Snowflake as the backend: credentials from the environment only, and the real Snowflake IO manager
run end to end against fakesnow (Snowflake emulated on DuckDB)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import sys

import dagster as dg
import duckdb
import fakesnow
import numpy as np
import pandas as pd
import pytest
import snowflake.connector
import sqlglot
from fakesnow.cursor import FakeSnowflakeCursor
from pathlib import Path
from fastapi.testclient import TestClient

from marketing_ml.definitions import build_definitions
from marketing_ml.features import DBT_PROJECT_DIR
from marketing_ml.features.assets import window_vars
from marketing_ml.features.project import feature_dbt_project
from marketing_ml.monitoring.performance import matured_rows_sql
from marketing_ml.registry.predictor import load_champion
from marketing_ml.registry.tasks import OUTCOME_TASKS, TASK_NAMES
from marketing_ml.resources import build_resources, resolved_warehouse
from marketing_ml.resources.dbt import dbt_executable
from marketing_ml.resources.snowflake import SnowflakeWarehouse
from marketing_ml.scoring.batch import score_clients
from marketing_ml.serving.api import API_KEY_HEADER, ENV_API_KEYS
from marketing_ml.serving.online_features import VERSION_SQL, rows_sql
from marketing_ml.serving.server import build_service
from marketing_ml.settings import Settings, SettingsError
from marketing_ml.sources.validation import load_source
from marketing_ml.training.datasets import (
    outcome_training_set_sql,
    plan_observations,
    plan_touches,
    policy_population_sql,
    touch_training_set_sql,
)
from marketing_ml.uplift.dataset import plan_uplift, uplift_set_sql
from marketing_ml_tests.conftest import TEST_START, TRAINING_END, small_settings

SECRET = "s3cr3t-pa55word"
API_KEY = "k3y-for-snowflake-tests"
SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "xy12345.eu-west-1",
    "SNOWFLAKE_USER": "marketing_ml",
    "SNOWFLAKE_PASSWORD": SECRET,
    "SNOWFLAKE_WAREHOUSE": "ML_WH",
    "SNOWFLAKE_DATABASE": "MARKETING",
    "SNOWFLAKE_ROLE": "MARKETING_ML",
}
DATABASE = SNOWFLAKE_ENV["SNOWFLAKE_DATABASE"]
WRITE_PANDAS = "dagster_snowflake_pandas.snowflake_pandas_type_handler.write_pandas"


def snowflake_settings(tmp_path) -> Settings:
    local = small_settings(tmp_path / "data")
    return Settings(data_dir=local.data_dir, warehouse="snowflake", simulation=local.simulation)


@pytest.mark.parametrize("missing", ["SNOWFLAKE_ACCOUNT", "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_PASSWORD"])
def test_a_missing_variable_is_one_clear_error_naming_it(tmp_path, missing):
    env = {k: v for k, v in SNOWFLAKE_ENV.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        build_resources(snowflake_settings(tmp_path), feature_dbt_project("snowflake"), env=env)


def test_a_missing_variable_stops_definitions_and_the_cli_before_dbt_parses(tmp_path, monkeypatch):
    """The dbt manifest for the snowflake target is parsed while the definitions load; the credentials are
    checked before it, so the user sees which variables to set, not dbt's profile rendering error."""
    for name in [k for k in os.environ if k.startswith("SNOWFLAKE_")]:
        monkeypatch.delenv(name)
    with pytest.raises(SettingsError, match="SNOWFLAKE_ACCOUNT"):
        build_definitions(snowflake_settings(tmp_path))

    result = subprocess.run(
        [sys.executable, "-m", "marketing_ml.cli", "run", "--step", "data"],
        env={**os.environ, "MARKETING_ML_HOME": str(tmp_path / "cli"), "MARKETING_ML_WAREHOUSE": "snowflake"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SNOWFLAKE_ACCOUNT" in result.stderr and "SNOWFLAKE_PASSWORD" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and "Env var required" not in result.stdout + result.stderr


def test_key_pair_auth_replaces_the_password(tmp_path):
    env = {k: v for k, v in SNOWFLAKE_ENV.items() if k != "SNOWFLAKE_PASSWORD"}
    env["SNOWFLAKE_PRIVATE_KEY_PATH"] = str(tmp_path / "rsa_key.p8")
    resources = build_resources(snowflake_settings(tmp_path), feature_dbt_project("snowflake"), env=env)
    assert resources["io_manager"].private_key_path is not None


def _in_snowflake_words(execute):
    """fakesnow reports a missing table with Snowflake's error code but DuckDB's words; dagster-snowflake
    recognises a table's first write by Snowflake's words ("does not exist or not authorized")."""

    def wrapped(self, *args, **kwargs):
        try:
            return execute(self, *args, **kwargs)
        except snowflake.connector.errors.ProgrammingError as error:
            if error.errno == 2003 and "does not exist" in (error.msg or ""):
                raise snowflake.connector.errors.ProgrammingError(
                    msg=f"SQL compilation error: {error.msg.rstrip('!')} or not authorized.", errno=2003, sqlstate="42S02"
                ) from error
            raise

    return wrapped


@pytest.fixture
def snowflake_emulator(tmp_path, monkeypatch):
    """fakesnow in place of Snowflake for the connector and dagster-snowflake-pandas, with the SNOWFLAKE_*
    variables set; yields a function that opens a connection to the emulated database."""
    for key, value in SNOWFLAKE_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(FakeSnowflakeCursor, "execute", _in_snowflake_words(FakeSnowflakeCursor.execute))
    (tmp_path / "fakesnow").mkdir()
    with fakesnow.patch([WRITE_PANDAS], db_path=str(tmp_path / "fakesnow")):
        yield lambda: snowflake.connector.connect(database=DATABASE)


def _run(job: dg.JobDefinition, instance: dg.DagsterInstance, first: dt.date, last: dt.date,
         assets: list[dg.AssetKey] | None = None) -> dg.ExecuteInProcessResult:
    result = job.execute_in_process(
        instance=instance, asset_selection=assets,
        tags={"dagster/asset_partition_range_start": first.isoformat(), "dagster/asset_partition_range_end": last.isoformat()},
    )
    assert result.success
    return result


def _run_unpartitioned(job: dg.JobDefinition, instance: dg.DagsterInstance, asset: dg.AssetKey) -> dg.ExecuteInProcessResult:
    result = job.execute_in_process(instance=instance, asset_selection=[asset])
    assert result.success
    return result


def _assert_nothing_secret(instance: dg.DagsterInstance, run_ids: list[str], capfd) -> None:
    """The password reaches neither the run's events (logs, materialization metadata), its config, nor the
    process's output."""
    for run_id in run_ids:
        events = instance.all_logs(run_id)
        assert any(e.is_dagster_event and e.dagster_event.is_step_materialization for e in events)
        assert SECRET not in json.dumps([f"{e.user_message} {e.dagster_event}" for e in events])
        assert SECRET not in json.dumps(instance.get_run_by_id(run_id).run_config, default=str)
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err


def test_raw_assets_run_through_the_snowflake_io_manager(tmp_path, snowflake_emulator, capfd):
    settings = snowflake_settings(tmp_path)
    defs = build_definitions(settings)
    job = defs.resolve_job_def("step_data")
    instance = dg.DagsterInstance.ephemeral()

    def per_day() -> list[tuple]:
        with snowflake_emulator() as conn:
            return conn.cursor().execute(
                "select event_date, count(*), sum(event_id) from raw.raw_marketing_events group by 1 order by 1"
            ).fetchall()

    first = _run(job, instance, TEST_START, TEST_START + dt.timedelta(days=4))
    before = per_day()
    assert len(before) == 5
    rewrite = _run(job, instance, TEST_START + dt.timedelta(days=2), TEST_START + dt.timedelta(days=2))
    assert per_day() == before  # the day was deleted and written again, nothing duplicated or lost

    # the daily tables are written block by block through the warehouse, with the simulator's columns;
    # raw_clients read back through the IO manager, as a downstream asset loads its input
    outcomes = resolved_warehouse(settings).query("select * from raw.raw_outcomes limit 1")
    assert list(outcomes.columns)[:3] == ["outcome_id", "client_id", "outcome_date"]
    assert not resolved_warehouse(settings).query(
        "select count(*) as n from information_schema.tables where table_schema = 'SIMULATION_STAGING'")["n"].iloc[0]
    clients = defs.load_asset_value("raw_clients", instance=instance)
    assert len(clients) == settings.simulation.n_clients

    # SQL reads go through the same interface as on DuckDB: `?` parameters, lower-case columns; the API
    # resolves the EnvVar credentials the same way a run does
    warehouse = resolved_warehouse(settings)
    assert isinstance(warehouse, SnowflakeWarehouse)
    counted = warehouse.query("select count(*) as n from raw.raw_clients where client_id > ?", [100])
    assert counted["n"].iloc[0] == settings.simulation.n_clients - 100
    assert warehouse.table_exists("raw", "raw_outcomes") and not warehouse.table_exists("raw", "nope")

    _assert_nothing_secret(instance, [first.run_id, rewrite.run_id], capfd)
    specs = list(defs.resolve_all_asset_specs())
    kinds = {k for spec in specs for k in spec.kinds}
    assert "snowflake" in kinds and "duckdb" not in kinds
    # a re-materialised day replaces only that day on every partitioned table the IO manager writes
    assert [s.key.to_user_string() for s in specs if s.partitions_def and not s.metadata.get("partition_expr")] == []


def test_a_providers_snowflake_tables_are_the_source_of_the_raw_assets(tmp_path, snowflake_emulator):
    """MARKETING_ML_SOURCE=warehouse on Snowflake: the tables a provider's ELT loaded (its names, its UUIDs)
    are read, checked by the contract and written as the raw tables, through the Snowflake IO manager."""
    import yaml
    from dagster_snowflake_pandas import snowflake_pandas_type_handler  # its write_pandas is fakesnow's here

    from marketing_ml.settings import WarehouseSource
    from marketing_ml.sources.export import export_simulated_world
    from marketing_ml.sources.validation import read_files, table_files
    from marketing_ml.sources.mapping import load_mapping

    local = snowflake_settings(tmp_path)
    last = TEST_START + dt.timedelta(days=9)
    world = export_simulated_world(dataclasses.replace(local.simulation, n_clients=300), TEST_START, last,
                                   tmp_path / "provider")
    document, mapping = yaml.safe_load(world.mapping.read_text()), load_mapping(world.mapping)
    with snowflake_emulator() as conn:
        conn.cursor().execute("create schema if not exists provider")
        for name, spec in document["tables"].items():
            frame = read_files(table_files(world.folder, name, mapping.table(name))).drop(columns="file")
            frame = frame.astype({c: str for c in frame.columns if "date" in str(frame[c].dtype)})  # fakesnow writes no dates
            spec["table"] = f"provider.{Path(spec.pop('path')).stem}"
            snowflake_pandas_type_handler.write_pandas(conn, frame, Path(spec["table"]).suffix[1:].upper(),
                                                       schema="PROVIDER", auto_create_table=True, quote_identifiers=False)
    mapping_file = tmp_path / "warehouse_mapping.yaml"
    mapping_file.write_text(yaml.safe_dump(document, sort_keys=False))
    settings = dataclasses.replace(local, source=WarehouseSource(mapping_file),
                                   simulation=dataclasses.replace(local.simulation, n_clients=300))
    _run(build_definitions(settings).resolve_job_def("step_data"), dg.DagsterInstance.ephemeral(), TEST_START, last)
    with snowflake_emulator() as conn:
        clients, ids = conn.cursor().execute("select count(*), min(client_id) from raw.raw_clients").fetchone()
        events = conn.cursor().execute("select count(*) from raw.raw_marketing_events").fetchone()[0]
    assert clients == 300 and ids in set(world.client_uuids.values())
    assert events == len(load_source(world.folder, tables=("marketing_events",)).tables["marketing_events"]) > 0


# ---- scoring on the trained world's champions, through the Snowflake IO manager

SCORED_LAST = TRAINING_END
SAMPLE = "client_id % 20 = 0"  # 1 client in 20 (~500): enough for every advisor's queue, small for the emulator


def _scoring_inputs(world: Settings, first: dt.date, last: dt.date) -> dict[str, pd.DataFrame]:
    """What the scoring assets read with SQL, for a sample of the trained world's clients."""
    window = f"and as_of_date between date '{first}' and date '{last}'"
    queries = {
        "features.client_features_daily": f"select * from features.client_features_daily where {SAMPLE} {window}",
        "raw.raw_clients": f"select * from raw.raw_clients where {SAMPLE}",
        # the contact logs the lists' cool-downs read
        "raw.raw_interventions": f"select * from raw.raw_interventions where {SAMPLE}",
        "raw.raw_campaign_touches": f"select * from raw.raw_campaign_touches where {SAMPLE}",
        "ground_truth.true_daily_hazards": f"select * from ground_truth.true_daily_hazards where {SAMPLE} {window}",
        "ground_truth.true_client_traits": f"select * from ground_truth.true_client_traits where {SAMPLE}",
    }
    with duckdb.connect(str(world.duckdb_path), read_only=True) as conn:
        return {table: conn.execute(sql).fetchdf() for table, sql in queries.items()}


def _recording(method, statements: list[str]):
    def recorded(self, sql, params=None):
        statements.append(sql)
        return method(self, sql, params)

    return recorded


def test_scoring_assets_run_through_the_snowflake_io_manager(trained, tmp_path, snowflake_emulator, capfd, monkeypatch):
    statements: list[str] = []  # every SQL statement the assets and the API send through the warehouse resource
    for name in ("query", "execute"):
        monkeypatch.setattr(SnowflakeWarehouse, name, _recording(getattr(SnowflakeWarehouse, name), statements))
    world = trained[0]
    settings = Settings(data_dir=tmp_path / "data", warehouse="snowflake", simulation=world.simulation)
    settings.data_dir.mkdir()
    shutil.copy(world.data_dir / "mlflow.db", settings.data_dir)  # the champions (artifacts stay where they are)
    first = SCORED_LAST - dt.timedelta(days=1)
    inputs = _scoring_inputs(world, first, SCORED_LAST)
    warehouse = resolved_warehouse(settings)
    warehouse.append(inputs)

    defs = build_definitions(settings)
    scoring = [spec.key for spec in defs.resolve_all_asset_specs() if spec.group_name == "scoring"]
    job = defs.resolve_job_def("step_inference")
    instance = dg.DagsterInstance.ephemeral()
    both = _run(job, instance, first, SCORED_LAST, scoring)

    def per_day(table: str) -> pd.DataFrame:
        return warehouse.query(f"select as_of_date, count(*) as n from scoring.{table} group by 1 order by 1")

    counts = {key.path[-1]: per_day(key.path[-1]) for key in scoring}
    # the call lists of this 500-client sample may be used up on the first day: a called client waits 90 days
    calls = {"advisor_queue", "retention_list"}
    assert all(len(c) == 2 and (c["n"] > 0).all() for name, c in counts.items() if name not in calls), counts
    assert all(len(counts[name]) >= 1 for name in calls), counts
    # the predictions are the champions' scores of exactly these feature rows, through the round trip
    champions = {task: load_champion(task, settings.mlflow_tracking_uri) for task in TASK_NAMES}
    features = inputs["features.client_features_daily"]
    expected = score_clients(features[features["as_of_date"] == pd.Timestamp(SCORED_LAST)], champions)
    written = warehouse.query("select * from scoring.daily_predictions where as_of_date = ? order by client_id", [SCORED_LAST])
    expected = expected.sort_values("client_id").reset_index(drop=True)
    assert written["client_id"].tolist() == expected["client_id"].tolist()
    np.testing.assert_allclose(written["p_churn"].astype(float), expected["p_churn"], rtol=1e-6)
    assert written["recommended_action"].tolist() == expected["recommended_action"].tolist()

    # the last day again: its rows are replaced, the other day's kept; the business assets of the rewrite
    # read that day's predictions back through the IO manager (a duplicate would double their rows)
    rewrite = _run(job, instance, SCORED_LAST, SCORED_LAST, scoring)
    for name, before in counts.items():
        assert per_day(name).equals(before), name

    # the online feature table through its asset, then the real-time API as `marketing-ml serve` builds it:
    # its feature and queue reads go through the same warehouse resource, credentials resolved from env
    online = _run_unpartitioned(defs.resolve_job_def("step_features"), instance, dg.AssetKey("online_client_features"))
    app, runtime = build_service(settings, environ={ENV_API_KEYS: API_KEY})
    runtime.refresh_advisor_queue()
    api = TestClient(app)  # without `with`: no refresh thread, the test drove the refreshes
    auth = {API_KEY_HEADER: API_KEY}
    for row in written.iloc[[0, len(written) // 2, len(written) - 1]].itertuples():
        body = api.get(f"/v1/clients/{row.client_id}/scores", headers=auth)
        assert body.status_code == 200, body.text
        assert body.json()["churn"]["probability"] == pytest.approx(row.p_churn, abs=1e-6)
        assert body.json()["features_as_of"] == SCORED_LAST.isoformat()
    queue = warehouse.query("select advisor_id, client_id from scoring.advisor_queue where as_of_date = ? and rank = 1",
                            [SCORED_LAST])
    served = api.get("/v1/advisor-queue", params={"advisor_id": int(queue["advisor_id"].iloc[0])}, headers=auth).json()
    assert served["as_of_date"] == SCORED_LAST.isoformat() and served["entries"][0]["client_id"] == queue["client_id"].iloc[0]

    _assert_nothing_secret(instance, [both.run_id, rewrite.run_id, online.run_id], capfd)
    # fakesnow runs some DuckDB-only SQL too; Snowflake would not
    assert statements and {sql: snowflake_problems(sql) for sql in statements if snowflake_problems(sql)} == {}


# ---- dbt on Snowflake: fakesnow cannot run dbt-snowflake, so the project is compiled for the snowflake target
# (offline: dummy credentials, no cache population or introspection) and every compiled statement must parse as
# Snowflake SQL and call only functions Snowflake knows.


# Snowflake functions sqlglot does not model: HASH(expr, ...) is Snowflake's 64-bit hash (DuckDB has one too;
# the values differ, so hash-based samples are deterministic per backend, not across backends).
SNOWFLAKE_FUNCTIONS_SQLGLOT_LACKS = {"hash"}


def unknown_functions(sql: str) -> set[str]:
    """Functions in `sql` that Snowflake does not know (e.g. DuckDB-only ones), as far as sqlglot's Snowflake
    dialect knows them; raises if the text does not parse as Snowflake SQL at all."""
    trees = sqlglot.parse(sql, read="snowflake")
    called = {f.name.lower() for tree in trees if tree is not None for f in tree.find_all(sqlglot.exp.Anonymous)}
    return called - SNOWFLAKE_FUNCTIONS_SQLGLOT_LACKS


# Snowflake reserves every ANSI keyword ("Reserved & limited keywords" in its docs); these read like names,
# and DuckDB accepts them unquoted where Snowflake does not.
RESERVED_NAMES = {"row", "rows", "sample", "start", "current", "window", "values", "order", "group", "table", "column",
                  "increment", "qualify", "regexp", "rlike", "some", "minus", "trigger", "view", "connect", "tablesample"}


def reserved_names(sql: str) -> set[str]:
    """Unquoted identifiers (columns, aliases, CTEs) in `sql` that Snowflake reserves."""
    return {
        i.name.lower() for tree in sqlglot.parse(sql, read="snowflake") if tree is not None
        for i in tree.find_all(sqlglot.exp.Identifier) if not i.quoted and i.name.lower() in RESERVED_NAMES
    }


def snowflake_problems(sql: str) -> set[str]:
    return unknown_functions(sql) | {f"reserved name {name}" for name in reserved_names(sql)}


def test_the_check_catches_duckdb_only_sql():
    assert unknown_functions("select epoch_ms(event_ts), list_value(1, 2) from t") == {"epoch_ms", "list_value"}
    assert unknown_functions("select dateadd(day, 3, d), datediff(day, a, b), count_if(x) from t") == set()
    assert reserved_names('with rows as (select count(*) as rows, 1 as "sample" from t) select * from rows') == {"rows"}
    with pytest.raises(sqlglot.errors.ParseError):
        unknown_functions("select * from t where (")


def test_the_sql_python_builds_for_the_warehouse_is_snowflake_sql():
    """The statements the training, monitoring and serving code generate (the scoring run below checks
    every statement it sends to the emulator)."""
    last = TEST_START + dt.timedelta(days=119)
    observations = plan_observations(TEST_START, last, horizon_days=30, every_days=7, warmup_days=30,
                                     test_dates=1, validation_dates=1, selection_dates=1, fit_to_history=False)
    touches = plan_touches(TEST_START, last, warmup_days=30, validation_days=14, test_days=14, selection_days=14,
                           fit_to_history=False)
    limits = {"train": 1000, "validation": 100, "selection": 100, "test": 100}
    contacts = plan_uplift(TEST_START, TEST_START + dt.timedelta(days=239), warmup_days=30, selection_days=14,
                           test_days=14, fit_to_history=False)
    statements = {
        "outcome training set": outcome_training_set_sql(OUTCOME_TASKS["churn"], observations, "training.t", limits, 0.2,
                                                         ground_truth=True),
        "touch training set": touch_training_set_sql(touches, "training.t", limits, ground_truth=True),
        "policy population": policy_population_sql({"selection": (last - dt.timedelta(days=14),),
                                                    "test": (last, last - dt.timedelta(days=7))}, "training.t", 100),
        "uplift training set": uplift_set_sql(contacts, ground_truth=True),
        "uplift training set, no truth": uplift_set_sql(contacts, ground_truth=False),
        "matured predictions": matured_rows_sql("conversion", "conversion", "p_conversion_daily", ground_truth=True),
        "outcome training set, no truth": outcome_training_set_sql(OUTCOME_TASKS["churn"], observations, "training.t",
                                                                   limits, 0.2, ground_truth=False),
        "touch training set, no truth": touch_training_set_sql(touches, "training.t", limits, ground_truth=False),
        "matured predictions, no truth": matured_rows_sql("conversion", "conversion", "p_conversion_daily",
                                                          ground_truth=False),
        "online rows": rows_sql(["logins_30d", "balance_401k"], since=True),
        "online version": VERSION_SQL,
    }
    assert {name: snowflake_problems(sql) for name, sql in statements.items()} == {name: set() for name in statements}


def test_the_dbt_project_compiles_for_snowflake_as_snowflake_sql(tmp_path):
    env = {**os.environ, **SNOWFLAKE_ENV, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    compiled = subprocess.run(
        [dbt_executable(), "compile", "--target", "snowflake", "--no-populate-cache", "--no-introspect",
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs"),
         "--vars", window_vars(TEST_START, TEST_START + dt.timedelta(days=6))],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert compiled.returncode == 0, compiled.stdout[-3000:]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == "snowflake"
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "test")]
    assert {n["name"] for n in nodes if n["resource_type"] == "model"} >= {"client_features_daily", "stg_clients"}
    for node in nodes:
        assert node["compiled_code"], f"{node['name']} was not compiled"
        assert snowflake_problems(node["compiled_code"]) == set(), node["name"]
    features = manifest["nodes"]["model.marketing_ml.client_features_daily"]["compiled_code"].lower()
    # the date macros dispatched to dbt's Snowflake implementations, not the DuckDB ones
    assert "dateadd(" in features and "datediff(" in features
