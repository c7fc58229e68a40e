"""The raw assets through Dagster and DuckDB (the IO manager, and the daily tables' block-by-block writes):
schemas, partitions, idempotency."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import duckdb

from marketing_ml.definitions import build_definitions
from marketing_ml.settings import Settings
from marketing_ml.simulation.config import BLOCK_SIZE, SimulationConfig
from marketing_ml.simulation.engine import simulate_days
from marketing_ml_tests.conftest import (
    TEST_CLIENTS,
    TEST_DAYS,
    TEST_END,
    TEST_START,
    run_step,
    small_settings,
)

EXPECTED_COLUMNS = {
    "raw.raw_clients": {
        "client_id": "BIGINT", "first_name": "VARCHAR", "email": "VARCHAR", "date_of_birth": "DATE",
        "annual_income": "DOUBLE", "balance_401k": "DOUBLE", "contribution_rate": "DOUBLE",
        "employer_match_rate": "DOUBLE", "tenure_years": "DOUBLE", "marital_status": "VARCHAR",
        "dependents": "SMALLINT", "risk_tolerance": "VARCHAR", "outside_assets": "DOUBLE", "state": "VARCHAR",
        "service_tier": "VARCHAR", "assigned_advisor_id": "INTEGER", "enrollment_date": "DATE",
    },
    "raw.raw_marketing_events": {
        "event_id": "BIGINT", "client_id": "BIGINT", "event_date": "DATE", "event_ts": "TIMESTAMP",
        "channel": "VARCHAR", "event_type": "VARCHAR", "device": "VARCHAR", "campaign_id": "VARCHAR",
    },
    "raw.raw_campaign_touches": {
        "touch_id": "BIGINT", "client_id": "BIGINT", "touch_date": "DATE", "action": "VARCHAR",
        "responded": "BOOLEAN", "p_response_true": "DOUBLE", "p_true_no_contact": "DOUBLE",
    },
    "raw.raw_outcomes": {
        "outcome_id": "BIGINT", "client_id": "BIGINT", "outcome_date": "DATE", "outcome_type": "VARCHAR",
        "p_true": "DOUBLE", "amount_usd": "DOUBLE",
    },
    "raw.raw_interventions": {
        "intervention_id": "BIGINT", "client_id": "BIGINT", "intervention_date": "DATE", "intervention": "VARCHAR",
        "assignment_probability": "DOUBLE",
    },
    "ground_truth.true_daily_hazards": {
        "client_id": "BIGINT", "as_of_date": "DATE", "p_conversion_daily": "FLOAT", "p_churn_daily": "FLOAT",
        "p_conversion_daily_uncontacted": "FLOAT", "p_churn_daily_uncontacted": "FLOAT",
    },
    "ground_truth.true_client_traits": {
        "client_id": "BIGINT", "oracle_best_action": "VARCHAR",
        "hazard_shift_conversion_advisor_outreach": "DOUBLE", "hazard_shift_churn_retention_call": "DOUBLE",
    },
}


def test_every_raw_table_has_its_schema(warehouse):
    for table, expected in EXPECTED_COLUMNS.items():
        schema, name = table.split(".")
        actual = dict(
            warehouse.execute(
                "select column_name, data_type from information_schema.columns where table_schema=? and table_name=?",
                [schema, name],
            ).fetchall()
        )
        for column, dtype in expected.items():
            assert actual.get(column) == dtype, f"{table}.{column}: {actual.get(column)} != {dtype}"


def test_data_step_covers_every_day_and_client(warehouse):
    assert warehouse.execute("select count(*) from raw.raw_clients").fetchone()[0] == TEST_CLIENTS
    days = warehouse.execute("select count(distinct event_date), min(event_date), max(event_date) from raw.raw_marketing_events").fetchone()
    assert days == (TEST_DAYS, TEST_START, TEST_END)
    assert warehouse.execute("select count(distinct as_of_date) from ground_truth.true_daily_hazards").fetchone()[0] == TEST_DAYS


def test_rematerializing_a_partition_replaces_it(tmp_path):
    settings = small_settings(tmp_path / "idem")
    instance = dg.DagsterInstance.ephemeral()
    day = TEST_START + dt.timedelta(days=5)
    run_step(settings, "step_data", TEST_START, TEST_START + dt.timedelta(days=9), instance=instance)

    def snapshot():
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
            return {
                t: conn.execute(f"select count(*), sum(hash({key})) from {t}").fetchone()
                for t, key in (
                    ("raw.raw_marketing_events", "event_id"),
                    ("raw.raw_campaign_touches", "touch_id"),
                    ("raw.raw_outcomes", "outcome_id"),
                    ("raw.raw_interventions", "intervention_id"),
                    ("ground_truth.true_daily_hazards", "client_id"),
                )
            }

    before = snapshot()
    run_step(settings, "step_data", day, day, instance=instance)  # the same day again, alone
    assert snapshot() == before


CONTRACT_CHECKED = {"raw_clients", "raw_marketing_events", "raw_campaign_touches", "raw_interventions", "raw_outcomes"}


def test_the_simulators_raw_tables_pass_their_blocking_contract_checks(tmp_path):
    result = run_step(small_settings(tmp_path / "contract"), "step_data", TEST_START, TEST_START + dt.timedelta(days=4))
    evaluations = result.get_asset_check_evaluations()
    assert {e.asset_key.to_user_string() for e in evaluations if e.check_name == "data_contract"} == CONTRACT_CHECKED
    assert all(e.passed for e in evaluations if e.check_name == "data_contract")


def test_a_partition_that_breaks_the_contract_is_not_written_and_blocks_what_follows(tmp_path, monkeypatch):
    from marketing_ml.simulation import assets as simulation_assets

    settings = small_settings(tmp_path / "broken")
    instance = dg.DagsterInstance.ephemeral()
    run_step(settings, "step_data", TEST_START, TEST_START, instance=instance)

    def counts():  # every raw table (a table without rows yet, outcomes of one day say, is not created)
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
            tables = conn.execute("select table_name from information_schema.tables where table_schema = 'raw'").fetchall()
            return {t: conn.execute(f"select count(*) from raw.{t}").fetchone()[0] for (t,) in tables}

    before = counts()
    simulate = simulation_assets.simulate_blocks

    def with_an_unknown_client_in_the_last_block(*args, **kwargs):
        blocks = list(simulate(*args, **kwargs))
        blocks[-1][1].events.loc[0, "client_id"] = 10**9  # the blocks before it are staged already
        yield from blocks

    monkeypatch.setattr(simulation_assets, "simulate_blocks", with_an_unknown_client_in_the_last_block)
    defs = build_definitions(settings)
    job = defs.resolve_job_def("step_features")  # the data a feature build would read must be checked first
    day = (TEST_START + dt.timedelta(days=1)).isoformat()
    selection = dg.AssetSelection.groups("raw", "ground_truth") | dg.AssetSelection.assets(
        *job.asset_layer.executable_asset_keys)
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=[dg.define_asset_job("data_then_features", selection)]))
    result = merged.resolve_job_def("data_then_features").execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": day, "dagster/asset_partition_range_end": day},
        raise_on_error=False,
    )
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in failed] == [("raw_marketing_events", "data_contract")]
    report = failed[0].metadata["report"].value
    assert "client_id: known client: 1 row(s)" in report and "1000000000" in report
    assert counts() == before  # no table of the broken partition was written
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert not materialized & {"stg_marketing_events", "client_features_daily", "raw_marketing_events"}
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert started == {"raw_clients", "true_client_traits", "simulated_daily_activity"}  # the dbt build never started


def test_a_range_of_several_blocks_is_streamed_and_replaced_whole(tmp_path, monkeypatch):
    """Two client blocks: the tables hold exactly the rows of the whole simulation merged in memory, the
    run log counts the blocks, and a run that breaks in its second block, with the first one written to
    staging already, leaves every table as it was and no staging table behind."""
    from marketing_ml.simulation import assets as simulation_assets

    config = SimulationConfig(start_date=TEST_START, n_clients=BLOCK_SIZE + 300)
    (tmp_path / "blocks").mkdir()
    settings = Settings(data_dir=tmp_path / "blocks", warehouse="duckdb", simulation=config)
    last = TEST_START + dt.timedelta(days=1)
    instance = dg.DagsterInstance.ephemeral()
    result = run_step(settings, "step_data", TEST_START, last, instance=instance)
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(m.startswith("client block 1/2: ") for m in logged) and any(m.startswith("client block 2/2: ") for m in logged)

    expected = simulate_days(config, TEST_START, last, workers=1)
    frames = {"raw.raw_marketing_events": expected.events, "raw.raw_campaign_touches": expected.touches,
              "raw.raw_outcomes": expected.outcomes, "raw.raw_interventions": expected.interventions,
              "ground_truth.true_daily_hazards": expected.hazards}

    def assert_tables_hold_the_simulation():
        with duckdb.connect(str(settings.duckdb_path)) as conn:
            for table, frame in frames.items():
                conn.register("expected", frame)
                assert conn.execute(
                    f"select (select count(*) from {table}), "
                    f"(select count(*) from (select * from {table} except all select * from expected)), "
                    f"(select count(*) from (select * from expected except all select * from {table}))"
                ).fetchall() == [(len(frame), 0, 0)], table
            staged = conn.execute("select count(*) from information_schema.tables "
                                  "where table_schema = 'simulation_staging'").fetchall()
            assert staged == [(0,)]

    assert_tables_hold_the_simulation()
    assert len(expected.events) > 0 and expected.events["client_id"].max() > BLOCK_SIZE  # both blocks have rows

    simulate = simulation_assets.simulate_blocks

    def breaking_in_the_second_block(*args, **kwargs):
        for block, days in simulate(*args, **kwargs):
            if block == 1:
                days.events.loc[0, "client_id"] = 10**9
            yield block, days

    monkeypatch.setattr(simulation_assets, "simulate_blocks", breaking_in_the_second_block)
    job = build_definitions(settings).resolve_job_def("step_data")
    tags = {"dagster/asset_partition_range_start": TEST_START.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}
    assert not job.execute_in_process(instance=instance, tags=tags, raise_on_error=False).success
    assert_tables_hold_the_simulation()


def test_definitions_load_and_validate(tmp_path):
    defs = build_definitions(small_settings(tmp_path / "defs"))
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_clients", "raw_marketing_events", "raw_campaign_touches", "raw_outcomes", "raw_interventions",
            "true_daily_hazards"} <= keys
    env = {**os.environ, "MARKETING_ML_HOME": str(tmp_path / "validate"), "MARKETING_ML_CLIENTS": "500"}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "marketing_ml.definitions"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_daily_schedule_builds_yesterdays_partition_of_every_daily_asset(tmp_path):
    settings = small_settings(tmp_path / "sched")
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def("daily_schedule")
    now = dt.datetime(2025, 3, 2, 2, 0, tzinfo=dt.timezone.utc)
    with dg.build_schedule_context(scheduled_execution_time=now) as context:
        requests = list(schedule.evaluate_tick(context).run_requests)
    assert [r.partition_key for r in requests] == ["2025-03-01"]
    job_keys = set(defs.resolve_job_def("daily_job").asset_layer.selected_asset_keys)
    daily_keys = {spec.key for spec in defs.resolve_all_asset_specs() if spec.partitions_def is not None}
    assert job_keys == daily_keys and dg.AssetKey("raw_marketing_events") in job_keys
