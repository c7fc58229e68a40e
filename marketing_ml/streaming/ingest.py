"""Parse and validate landed event files: good records are kept, bad ones quarantined with a reason.

Parsing runs in an in-memory DuckDB, so a file is validated with a handful of vectorised SQL
expressions instead of a Python loop per record. Nothing in a file's content can make this raise: an
unreadable file becomes one quarantine row, a malformed line becomes one quarantine row, and the good
records beside them are loaded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from marketing_ml.simulation.vocabulary import CHANNELS, DEVICES, EVENT_KINDS

STREAMING_SCHEMA = "streaming"
EVENT_COLUMNS = ["event_id", "client_id", "event_date", "event_ts", "channel", "event_type", "device", "campaign_id"]
FUTURE_TOLERANCE = dt.timedelta(days=2)
QUARANTINE_COLUMNS = ["file_name", "line_number", "raw_record", "reason", "quarantined_at"]


@dataclass
class ParsedFile:
    events: pd.DataFrame  # valid records, EVENT_COLUMNS plus file_name
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


_VALID_KINDS = _sql_list(f"{k.channel}/{k.event_type}" for k in EVENT_KINDS)

# The first failing rule names the reason; order them from "not a record" to "not a known client".
_PARSE_SQL = f"""
with lines as (
    select unnest(string_split(content, chr(10))) as raw_record,
           generate_subscripts(string_split(content, chr(10)), 1) as line_number
    from read_text($path)
),
checked as (
    -- extracting from malformed JSON raises, so only valid lines are handed to the JSON functions
    select line_number, raw_record, json_valid(raw_record) as is_json,
           case when json_valid(raw_record) then raw_record end as doc
    from lines
    where trim(raw_record) <> ''
),
records as (
    select line_number, raw_record, is_json,
           try_cast(json_extract_string(doc, '$.event_id') as bigint) as event_id,
           try_cast(json_extract_string(doc, '$.client_id') as bigint) as client_id,
           try_cast(json_extract_string(doc, '$.event_ts') as timestamp) as event_ts,
           json_extract_string(doc, '$.channel') as channel,
           json_extract_string(doc, '$.event_type') as event_type,
           json_extract_string(doc, '$.device') as device,
           json_extract_string(doc, '$.campaign_id') as campaign_id
    from checked
)
select *,
    case
        when not is_json then 'malformed JSON'
        when event_id is null then 'missing or non-integer event_id'
        when client_id is null then 'missing or non-integer client_id'
        when event_ts is null then 'missing or unparseable event_ts'
        when channel is null or channel not in ({_sql_list(CHANNELS)}) then 'unknown channel: ' || coalesce(channel, 'null')
        when (channel || '/' || coalesce(event_type, '')) not in ({_VALID_KINDS})
            then 'unknown event_type for channel ' || channel || ': ' || coalesce(event_type, 'null')
        when device is null or device not in ({_sql_list(DEVICES)}) then 'unknown device: ' || coalesce(device, 'null')
        when event_ts > $latest then 'event_ts too far in the future: ' || cast(event_ts as varchar)
        when client_id not in (select client_id from known_clients) then 'unknown client_id ' || cast(client_id as varchar)
    end as reason
from records
"""


def parse_event_file(path: Path, known_clients: np.ndarray, now: dt.datetime | None = None) -> ParsedFile:
    """Split one JSON Lines file into valid events and quarantined records (never raises on content).

    `known_clients`: client ids that exist; events of other clients are quarantined.
    Records stamped more than `FUTURE_TOLERANCE` after `now` are quarantined too: the stream delivers a
    simulated day's events faster than real time, so "later today" is normal but next week is not.
    """
    now = now or dt.datetime.now()
    quarantined_at = pd.Timestamp(now)
    con = duckdb.connect()
    try:
        con.register("known_clients", pd.DataFrame({"client_id": np.asarray(known_clients, dtype=np.int64)}))
        try:
            parsed = con.execute(_PARSE_SQL, {"path": str(path), "latest": now + FUTURE_TOLERANCE}).fetchdf()
        except duckdb.Error as error:  # not text, unreadable, vanished: the whole file is one bad record
            reason = f"unreadable file: {str(error).splitlines()[0][:200]}"
            row = {"file_name": path.name, "line_number": 0, "raw_record": None, "reason": reason, "quarantined_at": quarantined_at}
            return ParsedFile(events=_empty_events(), quarantine=pd.DataFrame([row], columns=QUARANTINE_COLUMNS))
    finally:
        con.close()

    bad = parsed[parsed["reason"].notna()]
    quarantine = pd.DataFrame(
        {
            "file_name": path.name,
            "line_number": bad["line_number"].astype(np.int64),
            "raw_record": bad["raw_record"].str.slice(0, 2000),
            "reason": bad["reason"],
            "quarantined_at": quarantined_at,
        },
        columns=QUARANTINE_COLUMNS,
    )
    good = parsed[parsed["reason"].isna()]
    events = good.assign(event_date=good["event_ts"].dt.normalize(), file_name=path.name)[[*EVENT_COLUMNS, "file_name"]]
    return ParsedFile(events=events.reset_index(drop=True), quarantine=quarantine.reset_index(drop=True))


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(columns=[*EVENT_COLUMNS, "file_name"])


def drop_duplicate_events(events: pd.DataFrame, already_loaded: np.ndarray) -> tuple[pd.DataFrame, int]:
    """Keep each event id once: not already in the table, and once within the batch."""
    fresh = events[~events["event_id"].isin(already_loaded)].drop_duplicates("event_id")
    return fresh.reset_index(drop=True), len(events) - len(fresh)
