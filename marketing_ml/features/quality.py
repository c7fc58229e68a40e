"""Data-quality measurements of the feature table, as plain functions over SQL (the asset checks and the
tests call them). Each one pushes its work into the warehouse and returns a few numbers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from marketing_ml.features.catalog import FEATURE_TABLE
from marketing_ml.resources.warehouse import WarehouseResource

COMPLETENESS_THRESHOLD = 0.985  # the demo's figure, now measured: share of non-null feature cells
RAW_EVENTS_TABLE = "raw.raw_marketing_events"


@dataclass(frozen=True)
class Completeness:
    rows: int
    overall: float  # share of non-null cells over all features
    by_feature: dict[str, float]  # share of non-null values per feature

    def below(self, threshold: float = COMPLETENESS_THRESHOLD) -> dict[str, float]:
        return {name: share for name, share in self.by_feature.items() if share < threshold}

    def passed(self, threshold: float = COMPLETENESS_THRESHOLD) -> bool:
        return self.rows > 0 and self.overall >= threshold and not self.below(threshold)


def measure_completeness(
    warehouse: WarehouseResource, features: list[str], first: dt.date, last: dt.date
) -> Completeness:
    """Non-null shares of the feature cells of the as-of dates first..last, in one scan."""
    counts = ", ".join(f"count({name}) as {name}" for name in features)
    row = warehouse.query(
        f"select count(*) as n_rows, {counts} from {FEATURE_TABLE} where as_of_date between ? and ?",
        [first, last],
    ).iloc[0]
    rows = int(row["n_rows"])
    by_feature = {name: (int(row[name]) / rows if rows else 0.0) for name in features}
    overall = sum(int(row[name]) for name in features) / (rows * len(features)) if rows else 0.0
    return Completeness(rows=rows, overall=overall, by_feature=by_feature)


@dataclass(frozen=True)
class Freshness:
    latest_as_of_date: dt.date | None
    latest_event_date: dt.date | None

    @property
    def passed(self) -> bool:
        """Features exist for every day the raw events cover (partition D needs events before D only)."""
        if self.latest_event_date is None:
            return self.latest_as_of_date is not None
        return self.latest_as_of_date is not None and self.latest_as_of_date >= self.latest_event_date


def measure_freshness(warehouse: WarehouseResource) -> Freshness:
    latest = warehouse.query(
        f"select (select max(as_of_date) from {FEATURE_TABLE}) as features,"
        f" (select max(event_date) from {RAW_EVENTS_TABLE}) as events"
    ).iloc[0]
    return Freshness(_date(latest["features"]), _date(latest["events"]))


def window_summary(warehouse: WarehouseResource, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Rows per lifecycle segment in the as-of dates first..last (what a materialisation wrote)."""
    return warehouse.query(
        f"select lifecycle_segment, count(*) as client_days, count(distinct client_id) as clients"
        f" from {FEATURE_TABLE} where as_of_date between ? and ? group by lifecycle_segment order by 2 desc",
        [first, last],
    )


def latest_as_of_date(warehouse: WarehouseResource) -> dt.date | None:
    return _date(warehouse.query(f"select max(as_of_date) as d from {FEATURE_TABLE}").iloc[0]["d"])


def _date(value) -> dt.date | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def feature_statistics(warehouse: WarehouseResource, numeric: list[str], categorical: list[str],
                       as_of: dt.date) -> pd.DataFrame:
    """Per feature on one as-of date: non-null share, and mean/min/max (numeric) or distinct values."""
    parts = ["count(*) as n_rows"]
    for name in numeric:
        value = f"cast({name} as double)"
        parts += [f"count({name}) as {name}__n", f"avg({value}) as {name}__mean",
                  f"min({value}) as {name}__min", f"max({value}) as {name}__max"]
    for name in categorical:
        parts += [f"count({name}) as {name}__n", f"count(distinct {name}) as {name}__distinct"]
    row = warehouse.query(f"select {', '.join(parts)} from {FEATURE_TABLE} where as_of_date = ?", [as_of]).iloc[0]
    rows = max(int(row["n_rows"]), 1)
    stats = []
    for name in numeric + categorical:
        entry = {"name": name, "non_null_share": int(row[f"{name}__n"]) / rows}
        if name in numeric:
            entry |= {"mean": row[f"{name}__mean"], "min": row[f"{name}__min"], "max": row[f"{name}__max"]}
        else:
            entry |= {"distinct_values": int(row[f"{name}__distinct"])}
        stats.append(entry)
    columns = {"name": "string", "non_null_share": "float64", "mean": "float64", "min": "float64",
               "max": "float64", "distinct_values": "Int64"}
    return pd.DataFrame(stats, columns=list(columns)).astype(columns)
