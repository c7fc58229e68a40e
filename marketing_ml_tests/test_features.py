"""The feature table built by dbt through Dagster on the small simulated world (2,000 clients, 60 days)."""

from __future__ import annotations

import datetime as dt
import threading

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from marketing_ml.definitions import build_definitions
from marketing_ml.features.catalog import (
    FEATURE_TABLE,
    KEY_COLUMNS,
    load_feature_catalog,
    model_input_features,
)
from marketing_ml.features.quality import measure_completeness, measure_freshness
from marketing_ml.simulation.vocabulary import CHANNELS, EVENT_TYPES
from marketing_ml_tests.conftest import TEST_END, TEST_START, copy_of, run_step

SQL_TYPES = {"integer": "BIGINT", "float": "DOUBLE", "boolean": "BOOLEAN", "category": "VARCHAR"}
SEGMENTS = {"new", "growing", "engaged", "at_risk", "dormant"}


@pytest.fixture(scope="module")
def conn(features_settings):
    connection = duckdb.connect(str(features_settings.duckdb_path), read_only=True)
    yield connection
    connection.close()


class ReadOnlyWarehouse:
    """The warehouse interface the quality functions use, over the test's read-only connection."""

    def __init__(self, connection: duckdb.DuckDBPyConnection):
        self.connection = connection

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.connection.execute(sql, params or []).df()


def test_one_row_per_client_active_at_the_start_of_each_day(conn):
    """Active = enrolled before the day and not churned before it. The simulator's hazard rows (one per
    client able to convert or churn that day) are the independent oracle here; the table adds nothing
    else and drops only enrolment days, when a client is not yet active at the start of the day."""
    missing_or_extra = conn.execute(f"""
        with expected as (
            select h.client_id, h.as_of_date from ground_truth.true_daily_hazards h
            join raw.raw_clients c using (client_id) where c.enrollment_date < h.as_of_date),
        built as (select client_id, as_of_date from {FEATURE_TABLE})
        select (select count(*) from (select * from expected except select * from built)),
               (select count(*) from (select * from built except select * from expected)),
               (select count(*) from built)""").fetchone()
    assert missing_or_extra[:2] == (0, 0)
    days = (TEST_END - TEST_START).days + 1
    assert missing_or_extra[2] > 1_500 * days


def test_columns_are_the_catalog_with_declared_types_and_never_null(conn):
    described = conn.execute(f"describe {FEATURE_TABLE}").fetchall()
    types = {name: sql_type for name, sql_type, *_ in described}
    catalog = load_feature_catalog()
    assert list(types) == [*KEY_COLUMNS, *[f.name for f in catalog]]
    assert {f.name: SQL_TYPES[f.dtype] for f in catalog} == {f.name: types[f.name] for f in catalog}
    completeness = measure_completeness(ReadOnlyWarehouse(conn), [f.name for f in catalog], TEST_START, TEST_END)
    assert completeness.overall == 1.0 and not completeness.below(1.0)
    inputs = model_input_features()
    assert set(inputs.all) == {f.name for f in catalog} and not set(inputs.numeric) & set(inputs.categorical)
    assert all(types[name] == "VARCHAR" for name in inputs.categorical)


def test_features_are_fresh_up_to_the_last_raw_day(conn):
    freshness = measure_freshness(ReadOnlyWarehouse(conn))
    assert freshness.passed and freshness.latest_as_of_date == TEST_END


def test_every_lifecycle_segment_occurs(conn):
    counts = dict(conn.execute(f"select lifecycle_segment, count(*) from {FEATURE_TABLE} group by 1").fetchall())
    assert set(counts) == SEGMENTS
    assert min(counts.values()) > 100  # each rule fires for many client-days, not by accident


@pytest.mark.parametrize("as_of", [TEST_START, TEST_START + dt.timedelta(days=31), TEST_END])
def test_window_counts_match_a_direct_recount_of_the_raw_events(conn, as_of):
    """The running-total/LAG computation against a plain pandas recount of [D-N, D-1] per client."""
    features = conn.execute(f"select * from {FEATURE_TABLE} where as_of_date = ? order by client_id", [as_of]).df()
    events = conn.execute(
        "select client_id, event_date, channel, event_type, device from raw.raw_marketing_events"
        " where event_date >= ? - 90 and event_date < ?", [as_of, as_of]).df()
    events["age_days"] = (pd.Timestamp(as_of) - pd.to_datetime(events["event_date"])).dt.days
    expected = pd.DataFrame({"client_id": features["client_id"]}).set_index("client_id")
    for days in (7, 30, 90):
        window = events[events["age_days"] <= days]
        expected[f"events_{days}d"] = window.groupby("client_id").size()
        for channel in CHANNELS:
            expected[f"{channel}_events_{days}d"] = window[window["channel"] == channel].groupby("client_id").size()
        for event_type in EVENT_TYPES:
            expected[f"{event_type}_{days}d"] = window[window["event_type"] == event_type].groupby("client_id").size()
    expected = expected.fillna(0).astype("int64")
    expected["days_since_last_event"] = events.groupby("client_id")["age_days"].min()
    expected["days_since_last_event"] = expected["days_since_last_event"].fillna(90).astype("int64")
    mobile = events[events["device"] == "mobile"].groupby("client_id").size()
    expected["mobile_share_90d"] = (mobile / expected["events_90d"].replace(0, np.nan)).fillna(0.0)
    pd.testing.assert_frame_equal(features.set_index("client_id")[expected.columns], expected, check_dtype=False)


def test_lineage_is_one_graph_from_raw_assets_through_dbt(features_settings):
    defs = build_definitions(features_settings)
    graph = defs.resolve_asset_graph()
    parents = {key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
               for key in graph.get_all_asset_keys()}
    assert parents["stg_marketing_events"] == {"raw_marketing_events"}
    staging = {"stg_clients", "stg_marketing_events", "stg_campaign_touches", "stg_outcomes"}
    # the raw tables the views read, directly too: a daily run holds no view and orders its steps by these
    assert parents["client_features_daily"] == staging | {view.replace("stg_", "raw_") for view in staging}
    assert parents["feature_catalog"] == {"client_features_daily"}
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert {specs[k].group_name for k in ("stg_clients", "client_features_daily", "feature_catalog")} == {"features"}
    assert "dbt" in specs["client_features_daily"].kinds
    features = graph.get(dg.AssetKey("client_features_daily"))
    assert features.partitions_def == graph.get(dg.AssetKey("raw_marketing_events")).partitions_def
    checks = {k.name: graph.get_check_spec(k) for k in graph.asset_check_keys if k.asset_key == features.key}
    assert checks["feature_completeness"].blocking
    assert {"feature_freshness", "unique_combination_client_features_daily_client_id__as_of_date"} <= set(checks)


def test_no_feature_reads_the_ground_truth(conn):
    """The dbt sources are the raw schema only, and the staging views drop the simulator's probabilities."""
    views = dict(conn.execute(
        "select view_name, sql from duckdb_views() where schema_name = 'staging'").fetchall())
    assert set(views) == {"stg_clients", "stg_marketing_events", "stg_campaign_touches", "stg_outcomes"}
    for sql in views.values():
        assert "ground_truth" not in sql and "p_true" not in sql and "p_response" not in sql
    staged = {c for (c,) in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'staging'").fetchall()}
    assert not {c for c in staged if c.startswith("p_")}


def test_a_feature_build_waits_out_a_reader_of_the_warehouse(features_settings, tmp_path):
    """The API polls the warehouse read-only; a dbt build that starts during a poll retries its connect
    (profiles.yml `retries`) instead of failing the run."""
    settings = copy_of(features_settings, tmp_path / "world")
    reader = duckdb.connect(str(settings.duckdb_path), read_only=True)
    release = threading.Timer(12, reader.close)  # past dbt's start-up and first connect, within its retries
    release.start()
    try:
        run_step(settings, "step_features", TEST_END, TEST_END)  # asserts the run succeeded
    finally:
        release.cancel()
        reader.close()


def test_a_run_tests_the_raw_rows_of_its_own_days_and_stops_on_a_bad_one(features_settings, tmp_path):
    """The staging tests of a run over a range of days read the raw rows of those days (the rows it adds),
    not the whole history again; a bad row of those days still fails the run."""
    settings = copy_of(features_settings, tmp_path / "world")

    def add_event_on_an_unknown_channel(day: dt.date) -> None:
        with duckdb.connect(str(settings.duckdb_path)) as conn:
            conn.execute("insert into raw.raw_marketing_events select * replace ('carrier_pigeon' as channel) "
                         "from raw.raw_marketing_events where event_date = ? limit 1", [day])

    add_event_on_an_unknown_channel(TEST_END - dt.timedelta(days=1))  # a day the run does not add
    run_step(settings, "step_features", TEST_END, TEST_END)  # asserts the run succeeded
    add_event_on_an_unknown_channel(TEST_END)
    job = build_definitions(settings).resolve_job_def("step_features")
    day = TEST_END.isoformat()
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
        tags={"dagster/asset_partition_range_start": day, "dagster/asset_partition_range_end": day},
    )
    assert not result.success
    failed = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE}
    assert failed == {"feature_staging"}, failed


def test_dbt_builds_get_half_the_machine_memory_unless_the_user_sets_a_limit(monkeypatch, tmp_path):
    from marketing_ml.resources.dbt import ENV_DUCKDB_MEMORY_LIMIT, dbt_profile_env, duckdb_memory_limit

    assert duckdb_memory_limit(64 * 2**30) == "32GB"
    assert duckdb_memory_limit(8 * 2**30) == "6GB"  # the floor: the default world's backfill peaks near 6 GB
    monkeypatch.delenv(ENV_DUCKDB_MEMORY_LIMIT, raising=False)
    assert dbt_profile_env("duckdb", tmp_path / "w.duckdb")[ENV_DUCKDB_MEMORY_LIMIT] == duckdb_memory_limit()
    monkeypatch.setenv(ENV_DUCKDB_MEMORY_LIMIT, "3GB")  # the user's choice reaches dbt from the environment
    assert ENV_DUCKDB_MEMORY_LIMIT not in dbt_profile_env("duckdb", tmp_path / "w.duckdb")
    assert dbt_profile_env("snowflake", tmp_path / "w.duckdb") == {}
