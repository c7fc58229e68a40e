"""Time-based automation: the daily schedule that builds yesterday's partition of every daily asset.

One run per day walks the whole daily graph in dependency order (raw -> features -> predictions ->
business outputs -> monitoring), so a day is either complete or visibly failed in one place. Catching
up a range of days is a backfill of the same job from the UI, which runs as one run per range because
the daily assets use single-run backfill policies.
"""

from __future__ import annotations

import dagster as dg

DAILY_JOB = "daily_job"


def daily_job(assets: list[dg.AssetsDefinition], partitions: dg.PartitionsDefinition) -> dg.UnresolvedAssetJobDefinition:
    """Every asset partitioned by day, and nothing else."""
    keys = [spec.key for a in assets for spec in a.specs if spec.partitions_def == partitions]
    return dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.assets(*keys),
        partitions_def=partitions,
        description="Yesterday's partition of every daily asset, raw data to monitoring.",
    )


def daily_schedule(job: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    # 02:00 leaves the day's late events time to land; the partition is yesterday's.
    return dg.build_schedule_from_partitioned_job(
        job, hour_of_day=2, default_status=dg.DefaultScheduleStatus.RUNNING, name="daily_schedule"
    )
