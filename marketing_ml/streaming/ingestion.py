"""Loading landed event files into the warehouse exactly once, then archiving them.

Exactly once holds at two levels: a file recorded in `streaming.ingested_files` is never loaded again,
and an event id already in `streaming.streamed_events` is never inserted again. A file's events, its
quarantined records and its bookkeeping row land in one transaction.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.settings import IngestionPolicy
from marketing_ml.streaming.ingest import (
    STREAMING_SCHEMA,
    TABLE_COLUMNS,
    EventWindow,
    drop_duplicate_events,
    parse_event_file,
)

EVENT_FILE_GLOB = "events-*.jsonl"


def landed_files(landing_dir: Path) -> list[Path]:
    return sorted(landing_dir.glob(EVENT_FILE_GLOB)) if landing_dir.exists() else []


def event_window(warehouse: WarehouseResource, policy: IngestionPolicy, now: dt.datetime) -> EventWindow:
    """From `max_days_late` days before the newest daily partition of raw events (no lower bound before the
    first one is built) to `max_hours_early` hours after now."""
    newest = None
    if warehouse.table_exists("raw", "raw_marketing_events"):
        newest = warehouse.query("select max(event_date) as newest from raw.raw_marketing_events")["newest"].iloc[0]
    earliest = None if pd.isna(newest) else pd.Timestamp(newest).to_pydatetime() - dt.timedelta(days=policy.max_days_late)
    return EventWindow(earliest=earliest, latest=now + dt.timedelta(hours=policy.max_hours_early))


def ingest_files(paths: list[Path], landing_dir: Path, warehouse: WarehouseResource, policy: IngestionPolicy,
                 log=print) -> dict:
    """Load each landed file once; archive it afterwards. Returns counts, reasons and affected clients."""
    known_clients = warehouse.query("select client_id, enrollment_date from raw.raw_clients")
    window = event_window(warehouse, policy, dt.datetime.now())
    already = _ingested_file_names(warehouse)
    summary: dict = {"files": 0, "events": 0, "quarantined": 0, "duplicates": 0, "reasons": {}, "clients": set()}
    archive = landing_dir / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    for path in paths:
        if not path.exists():
            continue  # archived by an earlier run of the same request
        if path.name in already:
            log(f"{path.name} was already ingested; archiving it again without loading")
            shutil.move(str(path), archive / path.name)
            continue
        parsed = parse_event_file(path, known_clients, window, policy.max_file_bytes)
        events, duplicates = drop_duplicate_events(parsed.events, _loaded_event_ids(warehouse, parsed.events))
        ingested_at = pd.Timestamp(dt.datetime.now())
        bookkeeping = pd.DataFrame(
            {
                "file_name": [path.name],
                "ingested_at": [ingested_at],
                "events": [len(events)],
                "quarantined": [len(parsed.quarantine)],
                "duplicates": [duplicates],
            }
        )
        warehouse.append(
            {
                f"{STREAMING_SCHEMA}.streamed_events": events.assign(ingested_at=ingested_at),
                f"{STREAMING_SCHEMA}.events_quarantine": parsed.quarantine,
                f"{STREAMING_SCHEMA}.ingested_files": bookkeeping,
            },
            declared=TABLE_COLUMNS,
        )
        shutil.move(str(path), archive / path.name)
        summary["files"] += 1
        summary["events"] += len(events)
        summary["quarantined"] += len(parsed.quarantine)
        summary["duplicates"] += duplicates
        summary["clients"].update(events["client_id"].tolist())
        for reason, count in parsed.quarantine["reason"].str.split(":").str[0].value_counts().items():
            summary["reasons"][reason] = summary["reasons"].get(reason, 0) + int(count)
    return summary


def _ingested_file_names(warehouse: WarehouseResource) -> set[str]:
    if not warehouse.table_exists(STREAMING_SCHEMA, "ingested_files"):
        return set()
    return set(warehouse.query(f"select file_name from {STREAMING_SCHEMA}.ingested_files")["file_name"])


def _loaded_event_ids(warehouse: WarehouseResource, events: pd.DataFrame) -> np.ndarray:
    if events.empty or not warehouse.table_exists(STREAMING_SCHEMA, "streamed_events"):
        return np.empty(0, dtype=np.int64)
    first_day = events["event_date"].min()
    loaded = warehouse.query(
        f"select event_id from {STREAMING_SCHEMA}.streamed_events where event_date >= ?", [first_day.to_pydatetime()]
    )
    return loaded["event_id"].to_numpy()
