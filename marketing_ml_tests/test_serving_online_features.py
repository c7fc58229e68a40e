"""The online feature table asset (and its automation), and the in-memory store's merge rules."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from marketing_ml.resources.warehouse import DuckDBWarehouse
from marketing_ml.serving.assets import online_client_features
from marketing_ml.serving.online_features import ONLINE_TABLE, SOURCE_TABLE, TableVersion, read_version
from marketing_ml.serving.store import MIN_ROOM, FeatureSnapshot, RowBlock
from marketing_ml_tests.serving_world import feature_rows

START = dt.date(2025, 1, 1)
DAYS = dg.DailyPartitionsDefinition(start_date=START.isoformat())


@dg.asset(key="client_features_daily", partitions_def=DAYS, group_name="features")
def stand_in_features(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse) -> None:
    """A stand-in for the dbt model: a day's rows, fewer clients each day (churn), one of them with PII."""
    day = dt.date.fromisoformat(context.partition_key)
    rows = feature_rows(100 - (day - START).days, np.random.default_rng(day.toordinal())).assign(as_of_date=day)
    with warehouse.connect() as conn:
        conn.register("rows", rows)
        conn.execute("create schema if not exists features")
        conn.execute(f"create table if not exists {SOURCE_TABLE} as select * from rows limit 0")
        conn.execute(f"delete from {SOURCE_TABLE} where as_of_date = ?", [day])
        conn.execute(f"insert into {SOURCE_TABLE} select * from rows")


def test_the_online_table_follows_each_new_feature_partition(tmp_path):
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    defs = dg.Definitions(assets=[stand_in_features, online_client_features], resources={"warehouse": warehouse})
    instance = dg.DagsterInstance.ephemeral()
    # the automation sensor's first tick is its baseline: what happens after it triggers runs
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
    stamps = []
    for day in (START + dt.timedelta(days=1), START, START + dt.timedelta(days=2)):
        dg.materialize([stand_in_features], partition_key=day.isoformat(), instance=instance,
                       resources={"warehouse": warehouse})
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = evaluation.cursor
        assert evaluation.get_num_requested(online_client_features.key) == 1, f"not requested after {day}"
        result = dg.materialize([online_client_features], instance=instance, resources={"warehouse": warehouse})
        # a sensor tick after the run: nothing new upstream, so nothing requested
        evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        assert evaluation.get_num_requested(online_client_features.key) == 0
        cursor = evaluation.cursor
        metadata = result.asset_materializations_for_node("online_client_features")[0].metadata
        table = warehouse.read(f"select * from {ONLINE_TABLE}")
        latest = max(START + dt.timedelta(days=1), day)  # a backfilled older day keeps the latest day's rows
        assert set(table["as_of_date"].dt.date) == {latest}
        assert len(table) == table["client_id"].nunique() == 100 - (latest - START).days
        assert metadata["dagster/row_count"].value == len(table) and metadata["as_of_date"].value == latest.isoformat()
        assert table["updated_at"].nunique() == 1
        stamps.append(table["updated_at"].iloc[0])
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert read_version(warehouse) == TableVersion(len(table), stamps[-1], stamps[-1])


def _block(ids, stamps, value: float) -> RowBlock:
    ids = np.asarray(ids, object if isinstance(ids[0], str) else np.int64)
    return RowBlock(ids, np.full(len(ids), np.datetime64("2025-03-02"), "datetime64[D]"),
                    np.asarray(stamps, "datetime64[us]"), {"m": np.full((len(ids), 2), value, np.float32)})


def _version(n: int, last: str) -> TableVersion:
    return TableVersion(n, pd.Timestamp("2025-03-02"), pd.Timestamp(last))


@pytest.mark.parametrize("key", [int, lambda i: f"00000000-0000-5000-8000-00000000000{i}"], ids=["integer", "uuid"])
def test_a_merge_appends_newer_rows_only_and_never_touches_published_rows(key):
    base = FeatureSnapshot.build(_block([key(1), key(2), key(3)], ["2025-03-02"] * 3, 0.0), _version(3, "2025-03-02"))
    assert base.integer_ids == (key is int)
    published = base.rows.encoded["m"][: base.rows.size].copy()
    merged = base.merged(_block([key(2), key(4), key(3), key(3)],
                                ["2025-03-03", "2025-03-03", "2025-03-01", "2025-03-04"], 1.0), _version(4, "2025-03-04"))
    assert merged.rows is base.rows, "appended in place, no copy"
    assert np.array_equal(base.rows.encoded["m"][: 3], published), "rows a published snapshot points to are unchanged"
    assert base.positions == {key(1): 0, key(2): 1, key(3): 2}, "the old snapshot still answers as before"
    assert len(merged) == 4 and merged.row(key(1)) == 0
    for client in (2, 3, 4):
        assert merged.rows.encoded["m"][merged.row(key(client))][0] == 1.0
    assert merged.rows.updated_at[merged.row(key(3))] == np.datetime64("2025-03-04"), "the newest row of a client wins"
    # re-reading an overlap (rows not newer than the stored ones) changes nothing
    again = merged.merged(_block([key(2)], ["2025-03-03"], 5.0), _version(4, "2025-03-04"))
    assert again.positions == merged.positions and again.rows.size == merged.rows.size


def test_a_full_store_is_compacted_into_larger_arrays_keeping_the_live_rows():
    snapshot = FeatureSnapshot.build(_block([1, 2], ["2025-03-02"] * 2, 0.0), _version(2, "2025-03-02"))
    first_rows, capacity = snapshot.rows, snapshot.rows.capacity
    assert capacity == 2 + MIN_ROOM
    stamp = np.datetime64("2025-03-03T00:00:00")
    for i in range(capacity):  # more updates of client 2 than there is room for
        snapshot = snapshot.merged(_block([2], [stamp + np.timedelta64(i, "s")], float(i)), _version(2, "2025-03-03"))
    # 1024 updates filled the arrays; the next one compacted the 2 live rows into new arrays, the last appended
    assert snapshot.rows is not first_rows and snapshot.rows.size == 3
    assert first_rows.size == capacity, "the old arrays were left as they were"
    assert sorted(snapshot.positions) == [1, 2]
    assert snapshot.rows.encoded["m"][snapshot.row(2)][0] == capacity - 1
    assert snapshot.rows.encoded["m"][snapshot.row(1)][0] == 0.0


@pytest.mark.parametrize(("previous", "current", "full", "newer"), [
    ((10, "01", "05"), (10, "01", "05"), False, False),
    ((10, "01", "05"), (10, "01", "06"), False, True),   # a streaming upsert
    ((10, "01", "05"), (11, "01", "06"), False, True),   # a new client streamed in
    ((10, "01", "05"), (9, "06", "06"), True, True),     # a rebuild (new feature day)
    ((10, "01", "05"), (9, "01", "05"), True, False),    # rows deleted
])
def test_the_version_says_what_to_read(previous, current, full, newer):
    def version(n, first, last):
        return TableVersion(n, pd.Timestamp(f"2025-03-{first}"), pd.Timestamp(f"2025-03-{last}"))

    assert version(*current).needs_full_read(version(*previous)) is full
    assert version(*current).has_newer_rows(version(*previous)) is newer
