"""Rescoring the clients a stream batch touched: fresh online feature rows, then fresh scores.

1. Which clients: those with streamed events ingested after the last rescoring (`streaming.realtime_scores`
   remembers up to which ingestion time it has scored), and the as-of date: the day after their newest
   streamed event, so every streamed event counts.
2. Their feature rows come from dbt's `client_features_online`, the same SQL as the daily features (one
   macro) over the raw events plus the streamed ones, for those clients only.
3. Those rows replace the clients' rows in `features.online_client_features` with a newer `updated_at`, in one
   transaction:
   the real-time API polls for newer rows and picks them up without a restart.
4. The champions score them; the scores are appended to `streaming.realtime_scores`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from dagster_dbt import DbtCliInvocation

from marketing_ml.registry.predictor import LoadedModel
from marketing_ml.resources.dbt import WarehouseDbtCliResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.scoring.batch import load_champions, score_clients
from marketing_ml.serving.online_features import (
    ONLINE_SCHEMA,
    ONLINE_TABLE,
    ONLINE_TABLE_NAME,
    UPDATED_AT,
    table_columns,
    utc_now,
)
from marketing_ml.streaming.ingest import STREAMING_SCHEMA

ONLINE_MODEL = "client_features_online"
ONLINE_MODEL_TABLE = f"features.{ONLINE_MODEL}"
SCORES_TABLE = f"{STREAMING_SCHEMA}.realtime_scores"
WATERMARK = "events_ingested_until"


@dataclass(frozen=True)
class RescoreRequest:
    clients: list[int]
    as_of_date: dt.date
    ingested_until: pd.Timestamp


def pending_request(warehouse: WarehouseResource) -> RescoreRequest | None:
    """Clients with streamed events not yet rescored, or None when there are none."""
    if not warehouse.table_exists(STREAMING_SCHEMA, "streamed_events"):
        return None
    since = None
    if warehouse.table_exists(STREAMING_SCHEMA, "realtime_scores"):
        since = warehouse.query(f"select max({WATERMARK}) as since from {SCORES_TABLE}")["since"].iloc[0]
    where, params = ("where ingested_at > ?", [pd.Timestamp(since).to_pydatetime()]) if pd.notna(since) else ("", [])
    fresh = warehouse.query(
        f"select client_id, max(event_date) as last_event_date, max(ingested_at) as ingested_until "
        f"from {STREAMING_SCHEMA}.streamed_events {where} group by client_id",
        params,
    )
    if fresh.empty:
        return None
    as_of = pd.Timestamp(fresh["last_event_date"].max()).date() + dt.timedelta(days=1)
    return RescoreRequest(sorted(int(c) for c in fresh["client_id"]), as_of, pd.Timestamp(fresh["ingested_until"].max()))


def online_table_columns(warehouse: WarehouseResource) -> list[str]:
    """The online table's columns; none while the table does not exist."""
    return table_columns(warehouse, ONLINE_SCHEMA, ONLINE_TABLE_NAME)


def start_online_feature_build(dbt: WarehouseDbtCliResource, manifest: dict,
                               request: RescoreRequest) -> DbtCliInvocation:
    """Start building `client_features_online` for the request; dbt runs in its own process, so the caller
    can load the champions meanwhile (both take seconds, and the sum is the stream's latency)."""
    day = request.as_of_date.isoformat()
    variables = json.dumps({"min_date": day, "max_date": day, "online_clients": request.clients})
    return dbt.cli(["run", "--select", ONLINE_MODEL, "--vars", variables], manifest=manifest)


def online_feature_rows(build: DbtCliInvocation, warehouse: WarehouseResource) -> pd.DataFrame:
    """Wait for the build and return its rows."""
    build.wait()
    return warehouse.query(f"select * from {ONLINE_MODEL_TABLE}")


def replace_online_rows(warehouse: WarehouseResource, columns: list[str], updated_at: dt.datetime) -> None:
    """Swap the clients' rows of the online table (`columns`) for the fresh ones in one transaction, so a
    reader never sees a client without its row."""
    feature_columns = [c for c in columns if c != UPDATED_AT]
    selected = ", ".join(feature_columns)
    warehouse.execute_atomically([
        (f"delete from {ONLINE_TABLE} where client_id in (select client_id from {ONLINE_MODEL_TABLE})", []),
        (f"insert into {ONLINE_TABLE} ({selected}, {UPDATED_AT}) "
         f"select {selected}, cast(? as timestamp) from {ONLINE_MODEL_TABLE}", [updated_at]),
    ])


def realtime_scores(rows: pd.DataFrame, champions: dict[str, LoadedModel], request: RescoreRequest,
                    scored_at: dt.datetime) -> pd.DataFrame:
    scores = score_clients(rows, champions)
    scores["scored_at"] = pd.Timestamp(scored_at)
    scores[WATERMARK] = request.ingested_until
    return scores


@dataclass(frozen=True)
class Rescoring:
    request: RescoreRequest
    scores: pd.DataFrame
    seconds: float


def rescore_pending(warehouse: WarehouseResource, dbt: WarehouseDbtCliResource, manifest: dict, tracking_uri: str,
                    log: Callable[[str], None], warn: Callable[[str], None]) -> Rescoring | None:
    """Steps 1-4 for the clients with streamed events not yet rescored; None (and why, logged) when there is
    nothing to do or what rescoring needs (the online table, champions) is not built yet."""
    request = pending_request(warehouse)
    if request is None:
        log("no streamed events since the last rescoring")
        return None
    online_columns = online_table_columns(warehouse)
    if not online_columns:
        warn("streamed events are ingested, but rescoring waits for the online feature table: "
             "run `marketing-ml run --step features` first")
        return None
    began = utc_now()
    build = start_online_feature_build(dbt, manifest, request)
    try:
        champions = load_champions(tracking_uri)
    except LookupError as missing:
        build.wait()
        warn(f"streamed events are ingested, but rescoring waits for champions: {missing}")
        return None
    rows = online_feature_rows(build, warehouse)
    replace_online_rows(warehouse, online_columns, utc_now())
    scores = realtime_scores(rows, champions, request, utc_now())
    warehouse.append({SCORES_TABLE: scores})
    log(f"rescored {len(scores):,} clients as of {request.as_of_date}")
    return Rescoring(request, scores, (utc_now() - began).total_seconds())
