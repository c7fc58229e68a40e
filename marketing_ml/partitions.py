"""The one daily partitioning every daily asset shares: a partition is a calendar day of history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import dagster as dg
import pandas as pd


def daily_partitions(start_date: dt.date) -> dg.DailyPartitionsDefinition:
    """Days from the simulation start up to yesterday (today's partition opens tomorrow)."""
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat())


def partition_dates(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the partitions a run materialises, one or a backfill range."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def partition_days(context: dg.AssetExecutionContext) -> list[dt.date]:
    """Every day of the partitions a run materialises, in order."""
    first, last = partition_dates(context)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def daily_asset(name: str, group: str, schema: str, description: str, partitions: dg.PartitionsDefinition,
                deps: Iterable = (), kinds: Iterable[str] = ("python", "duckdb")) -> dict:
    """`@dg.asset` arguments of a daily table keyed by `as_of_date`: the IO manager rewrites exactly the
    run's days, and a backfill of any range is one run (the asset works day by day inside it)."""
    return dict(
        name=name,
        group_name=group,
        kinds=set(kinds),
        deps=list(deps),
        description=description,
        partitions_def=partitions,
        metadata={"schema": schema, "partition_expr": "as_of_date"},
        backfill_policy=dg.BackfillPolicy.single_run(),
    )


def by_day(frame: pd.DataFrame) -> Callable[[dt.date], pd.DataFrame]:
    """The rows of a day of `frame` (none: an empty frame with its columns), split by `as_of_date` once, so a
    day-by-day loop does not rescan the whole range each day."""
    days = {pd.Timestamp(d): rows for d, rows in frame.groupby(pd.to_datetime(frame["as_of_date"]), sort=False)}
    return lambda day: days.get(pd.Timestamp(day), frame.iloc[:0])
