"""Streaming rescoring: a streamed day's events give the affected clients fresh online feature rows and
scores, and those rows are exactly what the daily batch computes once the day's raw partition lands."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from marketing_ml.resources.warehouse import DuckDBWarehouse
from marketing_ml.serving.online_features import ONLINE_TABLE
from marketing_ml.simulation.engine import simulate_days
from marketing_ml.streaming.producer import stream
from marketing_ml.streaming.rescoring import ONLINE_MODEL_TABLE, replace_online_rows
from marketing_ml_tests.conftest import TRAINING_END, copy_of, query, run_step

STREAM_DAY = TRAINING_END + dt.timedelta(days=1)
AS_OF = STREAM_DAY + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def rescored(trained, tmp_path_factory):
    settings = copy_of(trained[0], tmp_path_factory.mktemp("mm_rescore") / "world")
    day_events = len(simulate_days(settings.simulation, STREAM_DAY, STREAM_DAY).events)
    # the whole day, in two files, so the online rows can be compared with the batch's
    stream(settings.simulation, settings.landing_dir, rate=day_events / 2, duration=2, first_day=STREAM_DAY,
           sleep=lambda s: None)
    instance = dg.DagsterInstance.ephemeral()
    result = run_step(settings, "step_streaming", instance=instance)
    return settings, instance, result, day_events


def test_affected_clients_get_fresh_online_rows_and_scores(rescored):
    settings, _, result, day_events = rescored
    streamed = query(settings, "select count(*) as n, count(distinct client_id) as clients from streaming.streamed_events").iloc[0]
    assert streamed["n"] == day_events
    scores = query(settings, "select * from streaming.realtime_scores")
    assert len(scores) == streamed["clients"] and scores["client_id"].is_unique
    assert (pd.to_datetime(scores["as_of_date"]).dt.date == AS_OF).all()
    assert scores["p_churn"].between(0, 1).all()
    online = query(settings, "select client_id, as_of_date, updated_at from features.online_client_features")
    fresh = online[online["client_id"].isin(scores["client_id"])]
    stale = online[~online["client_id"].isin(scores["client_id"])]
    assert len(fresh) == len(scores) and online["client_id"].is_unique
    assert fresh["updated_at"].min() > stale["updated_at"].max()  # the API polls for exactly these rows
    assert (pd.to_datetime(fresh["as_of_date"]).dt.date == AS_OF).all()
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"streamed_events", "realtime_scores"} <= materialized


def test_online_rows_equal_the_batch_features_once_the_day_lands(rescored):
    settings, instance, _, _ = rescored
    online = query(settings, "select * from features.online_client_features where as_of_date = ? order by client_id", [AS_OF])
    run_step(settings, "step_data", STREAM_DAY, STREAM_DAY, instance=instance)
    run_step(settings, "step_features", AS_OF, AS_OF, instance=instance)
    batch = query(settings, "select * from features.client_features_daily where as_of_date = ? order by client_id", [AS_OF])
    # the stream carries events, not the day's outcomes or campaign touches: those clients' rows differ
    not_streamed = set(query(
        settings,
        "select client_id from raw.raw_outcomes where outcome_date = ? "
        "union select client_id from raw.raw_campaign_touches where touch_date = ?",
        [STREAM_DAY, STREAM_DAY],
    )["client_id"])
    # only clients with streamed events have fresh rows; a client who churned that day leaves the batch
    assert set(online["client_id"]) - set(batch["client_id"]) <= not_streamed
    online = online[~online["client_id"].isin(not_streamed)].reset_index(drop=True)
    batch = batch[batch["client_id"].isin(online["client_id"])].reset_index(drop=True)
    columns = [c for c in batch.columns if c != "as_of_date"]
    assert len(batch) == len(online) > 100
    for column in columns:
        a, b = online[column].to_numpy(), batch[column].to_numpy()
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=1e-9, err_msg=column)
        else:
            assert (a == b).all(), column


def test_a_run_without_new_events_rescores_nothing(rescored):
    settings, instance, _, _ = rescored
    before = query(settings, "select count(*) as n from streaming.realtime_scores")["n"].iloc[0]
    result = run_step(settings, "step_streaming", instance=instance)
    assert "realtime_scores" not in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert query(settings, "select count(*) as n from streaming.realtime_scores")["n"].iloc[0] == before


def test_the_online_row_swap_is_one_transaction_a_failed_insert_keeps_the_old_rows(tmp_path):
    """The delete and the insert commit together: an insert that fails after the delete leaves every old
    row in place (a reader never sees the client vanish)."""
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    old = dt.datetime(2025, 1, 1)
    warehouse.execute("create schema features")
    warehouse.execute(f"create table {ONLINE_TABLE} (client_id bigint, logins_30d integer not null, updated_at timestamp)")
    warehouse.execute(f"insert into {ONLINE_TABLE} values (1, 3, ?), (2, 5, ?)", [old, old])
    columns = ["client_id", "logins_30d", "updated_at"]
    warehouse.execute(f"create table {ONLINE_MODEL_TABLE} as select 1::bigint as client_id, 4 as logins_30d "
                      "union all select 2, null")  # client 2's fresh row breaks the not-null rule
    with pytest.raises(Exception, match="NOT NULL"):
        replace_online_rows(warehouse, columns, dt.datetime(2025, 1, 2))
    assert warehouse.query(f"select * from {ONLINE_TABLE} order by client_id")["logins_30d"].tolist() == [3, 5]
    warehouse.execute(f"update {ONLINE_MODEL_TABLE} set logins_30d = 6 where client_id = 2")
    replace_online_rows(warehouse, columns, dt.datetime(2025, 1, 2))
    assert warehouse.query(f"select * from {ONLINE_TABLE} order by client_id")["logins_30d"].tolist() == [4, 6]
