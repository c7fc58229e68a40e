"""Snowflake as the backend: credentials from the environment only, and the real Snowflake IO manager
run end to end against fakesnow (Snowflake emulated on DuckDB)."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import fakesnow
import pytest

from marketing_ml.definitions import build_definitions
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
