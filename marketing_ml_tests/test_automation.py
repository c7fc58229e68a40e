"""Catching up: the daily schedule's job over a range of days, as a backfill launched from the UI runs it
(every daily asset has a single-run backfill policy, so the range is one run); and re-running a day of
that job changes no daily asset."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from marketing_ml.definitions import build_definitions
from marketing_ml_tests.conftest import TRAINING_END, copy_of, query, run_step

FIRST, LAST = TRAINING_END + dt.timedelta(days=1), TRAINING_END + dt.timedelta(days=2)


@pytest.fixture(scope="module")
def caught_up(trained, tmp_path_factory):
    settings = copy_of(trained[0], tmp_path_factory.mktemp("mm_automation") / "world")
    instance = dg.DagsterInstance.ephemeral()
    result = run_step(settings, "daily_job", FIRST, LAST, instance=instance)
    defs = build_definitions(settings)
    daily = {spec.key for spec in defs.resolve_all_asset_specs() if spec.partitions_def is not None}
    return settings, instance, result, defs, daily


def _built(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, set[str]]:
    built: dict[dg.AssetKey, set[str]] = {}
    for event in result.get_asset_materialization_events():
        built.setdefault(event.asset_key, set()).add(event.partition)
    return built


def test_the_daily_job_catches_up_a_range_of_days_in_one_run(caught_up):
    _, _, result, defs, daily = caught_up
    # what makes a UI backfill of a range one run like this one, rather than one run per day
    policies = {defs.resolve_assets_def(key).backfill_policy for key in daily}
    assert policies == {dg.BackfillPolicy.single_run()}
    built = _built(result)
    days = {FIRST.isoformat(), LAST.isoformat()}
    assert set(built) == daily, f"not built: {sorted(k.to_user_string() for k in daily - set(built))}"
    assert all(partitions == days for partitions in built.values()), built


def test_a_range_run_builds_the_features_after_the_raw_days_they_read(caught_up):
    # the features as of the range's last day read its first day's raw rows; the staging views between
    # them are not daily assets, so nothing but the features' own deps on raw orders the two
    _, _, result, _, _ = caught_up
    started = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
    assert started.index("simulated_daily_activity") < started.index("daily_features"), started


def asset_table(settings, key: dg.AssetKey) -> str:
    """The warehouse table an asset writes (IO-managed and dbt assets alike are named after the asset)."""
    found = query(settings, "select table_schema, table_name from information_schema.tables where table_name = ?",
                  [key.path[-1]])
    assert len(found) == 1, (key, found)
    return f"{found['table_schema'].iloc[0]}.{found['table_name'].iloc[0]}"


def table_rows(settings, table: str) -> pd.DataFrame:
    """A table's rows in an order that last-bit float noise cannot change: by its exact columns first
    (sorted on a float before the as-of date, a client's two days with near-equal scores swap places)."""
    rows = query(settings, f"select * from {table}")
    exact = [c for c in rows.columns if not pd.api.types.is_float_dtype(rows[c])]
    floats = [c for c in rows.columns if c not in exact]
    return rows.sort_values(exact + floats, kind="stable").reset_index(drop=True)


def test_re_running_a_day_of_every_daily_asset_changes_nothing(caught_up):
    """Every daily-partitioned asset of the Definitions (enumerated, not sampled): its whole table is the
    same after the day is built again (floats to pandas' default tolerance: the NBA boosters' sums differ
    in the last bit between runs)."""
    settings, instance, _, _, daily = caught_up
    tables = {key: asset_table(settings, key) for key in daily}
    before = {key: table_rows(settings, table) for key, table in tables.items()}
    rerun = run_step(settings, "daily_job", LAST, LAST, instance=instance)
    assert _built(rerun) == {key: {LAST.isoformat()} for key in daily}
    changed = {}
    for key, table in tables.items():
        after = table_rows(settings, table)
        try:
            pd.testing.assert_frame_equal(after, before[key], obj=table)
        except AssertionError as difference:
            changed[key.to_user_string()] = str(difference).splitlines()[0]
    assert not changed, changed
