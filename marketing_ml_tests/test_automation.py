"""Catching up: the daily schedule's job over a range of days, as a backfill launched from the UI runs it
(every daily asset has a single-run backfill policy, so the range is one run)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from marketing_ml.definitions import build_definitions
from marketing_ml_tests.conftest import TRAINING_END, copy_of, run_step


def test_the_daily_job_catches_up_a_range_of_days_in_one_run(trained, tmp_path):
    settings = copy_of(trained[0], tmp_path / "world")
    instance = dg.DagsterInstance.ephemeral()
    first, last = TRAINING_END + dt.timedelta(days=1), TRAINING_END + dt.timedelta(days=2)
    result = run_step(settings, "daily_job", first, last, instance=instance)

    defs = build_definitions(settings)
    daily = {spec.key for spec in defs.resolve_all_asset_specs() if spec.partitions_def is not None}
    # what makes a UI backfill of a range one run like this one, rather than one run per day
    policies = {defs.resolve_assets_def(key).backfill_policy for key in daily}
    assert policies == {dg.BackfillPolicy.single_run()}
    built: dict[dg.AssetKey, set[str]] = {}
    for event in result.get_asset_materialization_events():
        built.setdefault(event.asset_key, set()).add(event.partition)
    days = {first.isoformat(), last.isoformat()}
    assert set(built) == daily, f"not built: {sorted(k.to_user_string() for k in daily - set(built))}"
    assert all(partitions == days for partitions in built.values()), built
