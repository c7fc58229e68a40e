"""Point in time and idempotency, on a copy of the small simulated world, rebuilt through dbt and Dagster.

Features as of D may use only rows dated before D. So rewriting history on or after D (new, changed and
deleted events, touches and outcomes) must leave every feature as of D exactly as it was, while the same
kind of change the day before D must show up - which proves the comparison can fail.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from marketing_ml.features.catalog import FEATURE_TABLE
from marketing_ml_tests.conftest import TEST_START, copy_of, run_step

D = TEST_START + dt.timedelta(days=40)
ON_OR_AFTER_D = [
    # every existing event on or after D becomes something else, new ones appear, some disappear
    "update raw.raw_marketing_events set channel = 'branch', event_type = 'branch_visit', device = 'in_person' where event_date >= ?",
    """insert into raw.raw_marketing_events
       select 9_000_000_000_000 + row_number() over (), client_id, day, day + interval 10 hour, 'advisor_call',
              'advisor_call', 'phone', null
       from (select distinct client_id from raw.raw_marketing_events where event_date = ?)
       cross join (select ? as day union all select ? + 3)""",
    "delete from raw.raw_marketing_events where event_date > ? and client_id % 3 = 0",
    # touches, responses and outcomes on D
    "update raw.raw_campaign_touches set responded = not responded where touch_date >= ?",
    """insert into raw.raw_outcomes
       select 9_000_000_000 + client_id, client_id, ?, case when client_id % 2 = 0 then 'churn' else 'conversion' end, 0, 1.0
       from raw.raw_clients where client_id <= 200""",
]


def _features_as_of(settings, as_of: dt.date) -> pd.DataFrame:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        return conn.execute(f"select * from {FEATURE_TABLE} where as_of_date = ? order by client_id", [as_of]).df()


def _execute(settings, statements: list[tuple[str, list]]) -> None:
    with duckdb.connect(str(settings.duckdb_path)) as conn:
        for sql, params in statements:
            conn.execute(sql, params)


@pytest.fixture
def world(features_settings, tmp_path):
    """A private copy of the built test world, to rewrite."""
    return copy_of(features_settings, tmp_path / "world")


def test_rewriting_history_on_or_after_d_changes_nothing_as_of_d_but_a_change_before_d_does(world):
    """One rebuild of D after two edits: history from D on is rewritten for every client, and three
    control clients also get an edit the day before D. Only the controls' features may change."""
    before = _features_as_of(world, D).set_index("client_id")
    added, churned, converted = (int(c) for c in before.index[:3])
    day_before = D - dt.timedelta(days=1)
    on_or_after_d = list(zip(ON_OR_AFTER_D, [[D], [D, D, D], [D], [D], [D]], strict=True))
    before_d = [
        ("""insert into raw.raw_marketing_events select 9_100_000_000_000 + i, ?, ?, ? + interval 10 hour,
            'advisor_call', 'advisor_call', 'phone', null from range(3) t(i)""", [added, day_before, day_before]),
        ("insert into raw.raw_outcomes values (9100000001, ?, ?, 'churn', 0, 1.0)", [churned, day_before]),
        ("insert into raw.raw_outcomes values (9100000002, ?, ?, 'conversion', 0, 1.0)", [converted, day_before]),
    ]
    _execute(world, on_or_after_d + before_d)
    with duckdb.connect(str(world.duckdb_path), read_only=True) as conn:  # the rewrite did happen
        assert conn.execute("select count(*) from raw.raw_outcomes where outcome_date = ? and p_true = 0", [D]).fetchone()[0] == 200
        assert conn.execute("select count(distinct event_type) from raw.raw_marketing_events where event_date >= ?", [D]).fetchone()[0] == 2

    run_step(world, "step_features", D, D)
    after = _features_as_of(world, D).set_index("client_id")

    controls = [added, churned, converted]
    pd.testing.assert_frame_equal(after.drop(index=[added, converted]), before.drop(index=controls))
    assert after.loc[added, "advisor_call_7d"] == before.loc[added, "advisor_call_7d"] + 3
    assert after.loc[added, "days_since_last_event"] == 1
    assert churned not in after.index
    assert after.loc[converted, "is_converted"] and not before.loc[converted, "is_converted"]


def test_rerunning_partitions_replaces_them_without_duplicates(world):
    with duckdb.connect(str(world.duckdb_path), read_only=True) as conn:
        rows_before = conn.execute(f"select count(*) from {FEATURE_TABLE}").fetchone()[0]
    window = [D - dt.timedelta(days=2), D]
    snapshot = {day: _features_as_of(world, day) for day in (window[0], D)}
    run_step(world, "step_features", *window)
    with duckdb.connect(str(world.duckdb_path), read_only=True) as conn:
        assert conn.execute(f"select count(*) from {FEATURE_TABLE}").fetchone()[0] == rows_before
    for day, frame in snapshot.items():
        pd.testing.assert_frame_equal(_features_as_of(world, day), frame)
