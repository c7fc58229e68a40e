"""The advisor queue as the API serves it: the latest day of `scoring.advisor_queue`, held in memory.

The batch scoring asset (issue #5) writes the queue; the API reloads it when a cheap signature of the
table changes and answers from memory, so a request never waits on the warehouse. Only the columns
below are read: whatever else the table holds (e.g. a client's name for the advisor's screen) never
reaches an API response.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.serving.online_features import table_columns

QUEUE_SCHEMA = "scoring"
QUEUE_TABLE_NAME = "advisor_queue"
QUEUE_TABLE = f"{QUEUE_SCHEMA}.{QUEUE_TABLE_NAME}"
QUEUE_COLUMNS = ("advisor_id", "rank", "client_id", "expected_value", "p_conversion", "reasons")
DATE_COLUMN = "as_of_date"  # the queue's daily partition


class QueueUnavailable(LookupError):
    """Why the queue cannot be served yet; the message says what to run."""


@dataclass(frozen=True)
class AdvisorQueue:
    as_of_date: dt.date | None
    by_advisor: dict[int, pd.DataFrame]  # QUEUE_COLUMNS, ordered by rank
    signature: tuple

    def entries(self, advisor_id: int, limit: int) -> pd.DataFrame:
        rows = self.by_advisor.get(advisor_id)
        return rows.head(limit) if rows is not None else pd.DataFrame(columns=list(QUEUE_COLUMNS))


def read_signature(warehouse: WarehouseResource) -> tuple:
    """A cheap fingerprint of the table's content; raises `QueueUnavailable` while it cannot be served."""
    columns = set(table_columns(warehouse, QUEUE_SCHEMA, QUEUE_TABLE_NAME))
    if not columns:
        raise QueueUnavailable(
            f"the advisor queue ({QUEUE_TABLE}) is not built yet: run `marketing-ml run --step inference`"
        )
    missing = [c for c in QUEUE_COLUMNS if c not in columns]
    if missing:
        raise QueueUnavailable(f"{QUEUE_TABLE} lacks the column(s) {', '.join(missing)}; rebuild it with this version")
    latest = f"max({DATE_COLUMN})" if DATE_COLUMN in columns else "null"
    row = warehouse.read(
        f"select count(*) as n, {latest} as latest, sum(expected_value) as total from {QUEUE_TABLE}"
    ).iloc[0]
    total = float(row["total"]) if pd.notna(row["total"]) else None
    return int(row["n"]), str(row["latest"]), total, DATE_COLUMN in columns


def read_queue(warehouse: WarehouseResource, signature: tuple) -> AdvisorQueue:
    """The latest day's queue (the whole table if it has no date column), grouped by advisor."""
    has_date = signature[-1]
    select = ", ".join(QUEUE_COLUMNS)
    if has_date:
        frame = warehouse.read(
            f"select {select}, {DATE_COLUMN} from {QUEUE_TABLE} "
            f"where {DATE_COLUMN} = (select max({DATE_COLUMN}) from {QUEUE_TABLE})"
        )
        as_of = pd.Timestamp(frame[DATE_COLUMN].iloc[0]).date() if len(frame) else None
    else:
        frame, as_of = warehouse.read(f"select {select} from {QUEUE_TABLE}"), None
    frame = frame.sort_values(["advisor_id", "rank"], kind="stable")
    by_advisor = {int(a): rows[list(QUEUE_COLUMNS)].reset_index(drop=True) for a, rows in frame.groupby("advisor_id")}
    return AdvisorQueue(as_of, by_advisor, signature)
