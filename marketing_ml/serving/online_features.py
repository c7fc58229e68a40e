"""The online feature table: the latest feature row of every active client, for the real-time API.

`features.online_client_features` holds, for each client active at the latest built as-of date of
`features.client_features_daily`, that client's feature row (same columns) plus `updated_at`, a UTC
TIMESTAMP saying when the row was written. Two writers keep it current:

- the `online_client_features` asset rebuilds it whole, every row stamped with the build time, whenever a
  new feature partition lands;
- streaming rescoring replaces the rows of the clients it has new events for, stamped with a
  later `updated_at`.

Readers (the API) therefore never reload the table to stay current: a poll of `max(updated_at)` is cheap,
and only rows newer than what the reader has need reading (`TableVersion`, `rows_sql`). A rebuild shows
as a new `min(updated_at)` (every row is stamped with the build time) and is read in full. If a writer
ever appends a newer row for a client instead of replacing it, readers take the newest row per client.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from marketing_ml.resources.warehouse import WarehouseResource

SOURCE_TABLE = "features.client_features_daily"
ONLINE_SCHEMA = "features"
ONLINE_TABLE_NAME = "online_client_features"
ONLINE_TABLE = f"{ONLINE_SCHEMA}.{ONLINE_TABLE_NAME}"
UPDATED_AT = "updated_at"
KEY_COLUMNS = ("client_id", "as_of_date", UPDATED_AT)


class NoFeaturesError(LookupError):
    """The feature table has no rows yet; the message says which step builds it."""


@dataclass(frozen=True)
class OnlineBuild:
    as_of_date: dt.date
    built_at: dt.datetime
    clients: int


def utc_now() -> dt.datetime:
    """Naive UTC: the type of `updated_at` (TIMESTAMP, no zone) on every backend."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def build_online_features(warehouse: WarehouseResource, built_at: dt.datetime | None = None) -> OnlineBuild:
    """Replace the online table with the latest built as-of date's rows, in one SQL statement."""
    latest = warehouse.query(f"select max(as_of_date) as as_of_date from {SOURCE_TABLE}")["as_of_date"].iloc[0]
    if pd.isna(latest):
        raise NoFeaturesError(f"{SOURCE_TABLE} is empty: run `marketing-ml run --step features` first")
    as_of = pd.Timestamp(latest).date()
    built_at = built_at or utc_now()
    warehouse.execute(
        f"create or replace table {ONLINE_TABLE} as "
        f"select f.*, cast(? as timestamp) as {UPDATED_AT} from {SOURCE_TABLE} f where f.as_of_date = ?",
        [built_at, as_of],
    )
    clients = int(warehouse.query(f"select count(*) as n from {ONLINE_TABLE}")["n"].iloc[0])
    return OnlineBuild(as_of, built_at, clients)


@dataclass(frozen=True)
class TableVersion:
    """What a cheap aggregate says about the online table: enough to decide between nothing, an
    incremental read (newer rows) and a full read (the table was rebuilt or lost rows)."""

    rows: int
    first_updated_at: pd.Timestamp | None  # the last rebuild's stamp
    last_updated_at: pd.Timestamp | None

    def needs_full_read(self, previous: TableVersion) -> bool:
        return self.first_updated_at != previous.first_updated_at or self.rows < previous.rows

    def has_newer_rows(self, previous: TableVersion) -> bool:
        return self.last_updated_at is not None and (
            previous.last_updated_at is None or self.last_updated_at > previous.last_updated_at
        )


VERSION_SQL = (
    f"select count(*) as row_count, min({UPDATED_AT}) as first_updated_at, max({UPDATED_AT}) as last_updated_at "
    f"from {ONLINE_TABLE}"
)


def column_types(warehouse: WarehouseResource, schema: str, table: str) -> dict[str, str]:
    """A table's columns in lower case and their SQL types (none if it does not exist), through a read that
    takes no writer lock: the API polls while pipeline runs write."""
    found = warehouse.read(
        "select column_name, data_type from information_schema.columns "
        "where lower(table_schema) = ? and lower(table_name) = ?",
        [schema, table],
    )
    return {c.lower(): str(t) for c, t in zip(found["column_name"], found["data_type"])}


def table_columns(warehouse: WarehouseResource, schema: str, table: str) -> list[str]:
    """A table's column names in lower case (none if it does not exist)."""
    return list(column_types(warehouse, schema, table))


def client_ids_are_integers(warehouse: WarehouseResource) -> bool:
    """Whether the feature tables key clients by integers (the simulator's) rather than strings (a provider's
    UUIDs): what the API's path schema admits as a client id. Integers until the features exist."""
    kind = column_types(warehouse, *SOURCE_TABLE.split(".")).get("client_id", "").upper()
    return not any(word in kind for word in ("CHAR", "TEXT", "STRING"))


def read_version(warehouse: WarehouseResource) -> TableVersion | None:
    """The table's version, or None while it does not exist."""
    if not table_columns(warehouse, ONLINE_SCHEMA, ONLINE_TABLE_NAME):
        return None
    row = warehouse.read(VERSION_SQL).iloc[0]

    def stamp(value) -> pd.Timestamp | None:
        return None if pd.isna(value) else pd.Timestamp(value)

    return TableVersion(int(row["row_count"]), stamp(row["first_updated_at"]), stamp(row["last_updated_at"]))


def rows_sql(columns: Sequence[str], since: bool) -> str:
    """The newest row per client of the given feature columns (all rows, or those newer than a `?` stamp).

    Column names come from the models' feature specs, never from a request."""
    wanted = ", ".join(dict.fromkeys([*KEY_COLUMNS, *columns]))
    where = f"where {UPDATED_AT} > ?" if since else ""
    return (
        f"select {wanted} from {ONLINE_TABLE} {where} "
        f"qualify row_number() over (partition by client_id order by {UPDATED_AT} desc) = 1"
    )


def read_rows(warehouse: WarehouseResource, columns: Sequence[str], since: pd.Timestamp | None = None) -> pd.DataFrame:
    if since is None:
        return warehouse.read(rows_sql(columns, since=False))
    return warehouse.read(rows_sql(columns, since=True), [since.to_pydatetime()])
