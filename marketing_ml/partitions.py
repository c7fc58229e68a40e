"""The one daily partitioning every daily asset shares: a partition is a calendar day of history."""

from __future__ import annotations

import datetime as dt

import dagster as dg


def daily_partitions(start_date: dt.date) -> dg.DailyPartitionsDefinition:
    """Days from the simulation start up to yesterday (today's partition opens tomorrow)."""
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat())


def partition_dates(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the partitions a run materialises, one or a backfill range."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()
