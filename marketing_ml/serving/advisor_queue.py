"""The advisor queue as the API serves it: the latest day of `scoring.advisor_queue`, held in memory.

The decision asset `advisor_queue` (daily partitions on `as_of_date`) writes the queue;
the API reloads it when a cheap signature of the table changes and answers from memory, so a request
never waits on the warehouse. Only the columns below are read: whatever else the table holds never
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
ENTRY_COLUMNS = ("advisor_id", "rank", "client_id", "expected_value", "p_conversion")
REASON_COLUMNS = ("reason_1", "reason_2", "reason_3")  # features that make the call more effective, "" if none
QUEUE_COLUMNS = (*ENTRY_COLUMNS, *REASON_COLUMNS)
DATE_COLUMN = "as_of_date"  # the queue's daily partition


class QueueUnavailable(LookupError):
    """Why the queue cannot be served yet; the message says what to run."""


@dataclass(frozen=True)
class AdvisorQueue:
    as_of_date: dt.date | None
    by_advisor: dict[int, pd.DataFrame]  # ENTRY_COLUMNS + `reasons` (a list per row), ordered by rank
    signature: tuple

    def entries(self, advisor_id: int, limit: int) -> pd.DataFrame:
        rows = self.by_advisor.get(advisor_id)
        return rows.head(limit) if rows is not None else pd.DataFrame(columns=[*ENTRY_COLUMNS, "reasons"])


def read_signature(warehouse: WarehouseResource) -> tuple:
    """A cheap fingerprint of the table's content; raises `QueueUnavailable` while it cannot be served."""
    columns = set(table_columns(warehouse, QUEUE_SCHEMA, QUEUE_TABLE_NAME))
    if not columns:
        raise QueueUnavailable(
            f"the advisor queue ({QUEUE_TABLE}) is not built yet: run `marketing-ml run --step inference`"
        )
    missing = [c for c in (*QUEUE_COLUMNS, DATE_COLUMN) if c not in columns]
    if missing:
        raise QueueUnavailable(f"{QUEUE_TABLE} lacks the column(s) {', '.join(missing)}; rebuild it with this version")
    row = warehouse.read(
        f"select count(*) as n, max({DATE_COLUMN}) as latest, sum(expected_value) as total from {QUEUE_TABLE}"
    ).iloc[0]
    return int(row["n"]), str(row["latest"]), float(row["total"]) if pd.notna(row["total"]) else None


def read_queue(warehouse: WarehouseResource, signature: tuple) -> AdvisorQueue:
    """The latest day's queue, grouped by advisor, reasons as a list of feature names per client."""
    frame = warehouse.read(
        f"select {', '.join(QUEUE_COLUMNS)}, {DATE_COLUMN} from {QUEUE_TABLE} "
        f"where {DATE_COLUMN} = (select max({DATE_COLUMN}) from {QUEUE_TABLE})"
    )
    as_of = pd.Timestamp(frame[DATE_COLUMN].iloc[0]).date() if len(frame) else None
    reasons = frame[list(REASON_COLUMNS)].fillna("").to_numpy(dtype=object)
    frame = frame[list(ENTRY_COLUMNS)].assign(reasons=[[r for r in row if r] for row in reasons])
    frame = frame.sort_values(["advisor_id", "rank"], kind="stable")
    by_advisor = {int(a): rows.reset_index(drop=True) for a, rows in frame.groupby("advisor_id")}
    return AdvisorQueue(as_of, by_advisor, signature)
