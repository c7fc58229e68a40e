"""Snowflake as the backend: credentials from the environment only, and the real Snowflake IO manager
run end to end against fakesnow (Snowflake emulated on DuckDB)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import dagster as dg
import fakesnow
import pytest
import sqlglot

from marketing_ml.definitions import build_definitions
from marketing_ml.features import DBT_PROJECT_DIR
from marketing_ml.features.assets import window_vars
from marketing_ml.features.project import dbt_executable
from marketing_ml.resources import build_resources
from marketing_ml.settings import Settings, SettingsError
from marketing_ml.simulation.engine import simulate_days
from marketing_ml.simulation.population import client_profiles, client_truth, generate_population
from marketing_ml_tests.conftest import TEST_START, small_settings

SECRET = "s3cr3t-pa55word"
SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "xy12345.eu-west-1",
    "SNOWFLAKE_USER": "marketing_ml",
    "SNOWFLAKE_PASSWORD": SECRET,
    "SNOWFLAKE_WAREHOUSE": "ML_WH",
    "SNOWFLAKE_DATABASE": "MARKETING",
    "SNOWFLAKE_ROLE": "MARKETING_ML",
}
DATABASE = SNOWFLAKE_ENV["SNOWFLAKE_DATABASE"]


def snowflake_settings(tmp_path) -> Settings:
    local = small_settings(tmp_path / "data")
    return Settings(data_dir=local.data_dir, warehouse="snowflake", simulation=local.simulation)


@pytest.mark.parametrize("missing", ["SNOWFLAKE_ACCOUNT", "SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_PASSWORD"])
def test_a_missing_variable_is_one_clear_error_naming_it(tmp_path, missing):
    env = {k: v for k, v in SNOWFLAKE_ENV.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        build_resources(snowflake_settings(tmp_path), env=env)


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
    resources = build_resources(snowflake_settings(tmp_path), env=env)
    assert resources["io_manager"].private_key_path is not None


def _create_tables(connect, settings: Settings) -> None:
    """Create the raw tables before the first write, as a real deployment's first run would find them.

    fakesnow reports a missing table with a different message than Snowflake, which dagster-snowflake
    only tolerates in Snowflake's wording; the shapes come from the simulator itself.
    """
    import snowflake.connector.pandas_tools as pandas_tools

    config = settings.simulation
    population = generate_population(config)
    day = simulate_days(config, config.start_date, config.start_date + dt.timedelta(days=3), workers=1)
    conn = connect(database=DATABASE)
    for schema, table, frame in (
        ("RAW", "RAW_CLIENTS", client_profiles(config, population)),
        ("GROUND_TRUTH", "TRUE_CLIENT_TRAITS", client_truth(config, population)),
        ("RAW", "RAW_MARKETING_EVENTS", day.events),
        ("RAW", "RAW_CAMPAIGN_TOUCHES", day.touches),
        ("RAW", "RAW_OUTCOMES", day.outcomes),
        ("GROUND_TRUTH", "TRUE_DAILY_HAZARDS", day.hazards),
    ):
        conn.cursor().execute(f"create schema if not exists {DATABASE}.{schema}")
        pandas_tools.write_pandas(
            conn, frame.head(1).rename(columns=str.upper), table, schema=schema, database=DATABASE,
            auto_create_table=True, quote_identifiers=True, use_logical_type=True,
        )
        conn.cursor().execute(f"delete from {DATABASE}.{schema}.{table}")


def test_raw_assets_run_through_the_snowflake_io_manager(tmp_path, monkeypatch):
    for key, value in SNOWFLAKE_ENV.items():
        monkeypatch.setenv(key, value)
    settings = snowflake_settings(tmp_path)
    (tmp_path / "fakesnow").mkdir()
    with fakesnow.patch(
        ["dagster_snowflake_pandas.snowflake_pandas_type_handler.write_pandas"], db_path=str(tmp_path / "fakesnow")
    ):
        import snowflake.connector

        _create_tables(snowflake.connector.connect, settings)
        defs = build_definitions(settings)
        job = defs.resolve_job_def("step_data")
        instance = dg.DagsterInstance.ephemeral()

        def run(first: dt.date, last: dt.date) -> dg.ExecuteInProcessResult:
            result = job.execute_in_process(
                instance=instance,
                tags={"dagster/asset_partition_range_start": first.isoformat(), "dagster/asset_partition_range_end": last.isoformat()},
            )
            assert result.success
            return result

        def per_day() -> list[tuple]:
            with snowflake.connector.connect(database=DATABASE) as conn:
                return conn.cursor().execute(
                    "select event_date, count(*), sum(event_id) from raw.raw_marketing_events group by 1 order by 1"
                ).fetchall()

        run(TEST_START, TEST_START + dt.timedelta(days=4))
        before = per_day()
        assert len(before) == 5
        rewrite = run(TEST_START + dt.timedelta(days=2), TEST_START + dt.timedelta(days=2))
        assert per_day() == before  # the day was deleted and written again, nothing duplicated or lost

        # read back through the IO manager, as a downstream asset loads its input (columns lower-case)
        outcomes = defs.load_asset_value("raw_outcomes", partition_key=(TEST_START + dt.timedelta(days=4)).isoformat(), instance=instance)
        assert list(outcomes.columns)[:3] == ["outcome_id", "client_id", "outcome_date"]
        clients = defs.load_asset_value("raw_clients", instance=instance)
        assert len(clients) == settings.simulation.n_clients

        # SQL reads go through the same interface as on DuckDB: `?` parameters, lower-case columns
        with dg.build_resources({"warehouse": build_resources(settings)["warehouse"]}) as resources:  # resolves EnvVars
            warehouse = resources.warehouse
            counted = warehouse.query("select count(*) as n from raw.raw_clients where client_id > ?", [100])
            assert counted["n"].iloc[0] == settings.simulation.n_clients - 100
            assert warehouse.table_exists("raw", "raw_outcomes") and not warehouse.table_exists("raw", "nope")

        # credentials never reach the UI: not in run config, tags or any event's metadata
        logged = json.dumps([f"{e.user_message} {e.dagster_event}" for e in instance.all_logs(rewrite.run_id)])
        assert SECRET not in logged
        assert SECRET not in json.dumps(instance.get_run_by_id(rewrite.run_id).run_config, default=str)
        spec_kinds = {k for spec in defs.resolve_all_asset_specs() for k in spec.kinds}
        assert "snowflake" in spec_kinds and "duckdb" not in spec_kinds


# ---- dbt on Snowflake: fakesnow cannot run dbt-snowflake, so the project is compiled for the snowflake target
# (offline: dummy credentials, no cache population or introspection) and every compiled statement must parse as
# Snowflake SQL and call only functions Snowflake knows.


def unknown_functions(sql: str) -> set[str]:
    """Functions in `sql` that sqlglot's Snowflake dialect does not know (e.g. DuckDB-only ones); raises if
    the text does not parse as Snowflake SQL at all."""
    trees = sqlglot.parse(sql, read="snowflake")
    return {f.name.lower() for tree in trees if tree is not None for f in tree.find_all(sqlglot.exp.Anonymous)}


def test_the_check_catches_duckdb_only_sql():
    assert unknown_functions("select epoch_ms(event_ts), list_value(1, 2) from t") == {"epoch_ms", "list_value"}
    assert unknown_functions("select dateadd(day, 3, d), datediff(day, a, b), count_if(x) from t") == set()
    with pytest.raises(sqlglot.errors.ParseError):
        unknown_functions("select * from t where (")


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
        assert unknown_functions(node["compiled_code"]) == set(), node["name"]
    features = manifest["nodes"]["model.marketing_ml.client_features_daily"]["compiled_code"].lower()
    # the date macros dispatched to dbt's Snowflake implementations, not the DuckDB ones
    assert "dateadd(" in features and "datediff(" in features
