"""Parse and validate landed event files: good records are kept, bad ones quarantined with a reason.

Parsing runs in an in-memory DuckDB, so a file is validated with a handful of vectorised SQL
expressions instead of a Python loop per record. Nothing in a file's content can make this raise: an
unreadable or oversized file becomes one quarantine row, a malformed line (not UTF-8, not JSON, a field
of the wrong type) becomes one quarantine row, and the good records beside them are loaded.

Ids must be JSON integers: `1.7`, `"17"`, `true` or `1e3` are quarantined, never rounded onto another
client. An event must fall inside the client's enrolment and the ingestion policy's lateness window.
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
QUARANTINE_COLUMNS = ["file_name", "line_number", "raw_record", "reason", "quarantined_at"]
RAW_RECORD_CHARS = 2000

# Every streaming table is created with these types, never inferred from a batch: an all-clean first file
# gives an empty quarantine frame whose columns pandas cannot type.
TABLE_COLUMNS = {
    f"{STREAMING_SCHEMA}.streamed_events": {
        "event_id": "bigint", "client_id": "bigint", "event_date": "date", "event_ts": "timestamp",
        "channel": "varchar", "event_type": "varchar", "device": "varchar", "campaign_id": "varchar",
        "file_name": "varchar", "ingested_at": "timestamp",
    },
    f"{STREAMING_SCHEMA}.events_quarantine": {
        "file_name": "varchar", "line_number": "bigint", "raw_record": "varchar", "reason": "varchar",
        "quarantined_at": "timestamp",
    },
    f"{STREAMING_SCHEMA}.ingested_files": {
        "file_name": "varchar", "ingested_at": "timestamp", "events": "bigint", "quarantined": "bigint",
        "duplicates": "bigint",
    },
}


@dataclass(frozen=True)
class EventWindow:
    """The event times a file may hold: from `earliest` (none: no lower bound) to `latest`."""

    earliest: dt.datetime | None
    latest: dt.datetime


@dataclass
class ParsedFile:
    events: pd.DataFrame  # valid records, EVENT_COLUMNS plus file_name
    quarantine: pd.DataFrame  # QUARANTINE_COLUMNS


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


_VALID_KINDS = _sql_list(f"{k.channel}/{k.event_type}" for k in EVENT_KINDS)


def _integer(field: str) -> str:
    """A JSON integer field as bigint; null for anything else (a float, a string, a boolean, out of range)."""
    return (f"case when json_type(doc, '$.{field}') in ('BIGINT', 'UBIGINT') "
            f"then try_cast(json_extract_string(doc, '$.{field}') as bigint) end")


def _id_problem(field: str) -> str:
    return (f"case when coalesce(json_type(raw_record, '$.{field}'), 'NULL') = 'NULL' then 'missing {field}' "
            f"else 'non-integer {field}: ' || json_extract(raw_record, '$.{field}') end")


# The first failing rule names the reason; order them from "not a record" to "not a known client".
_PARSE_SQL = f"""
with lines as (
    select unnest(string_split(content, chr(10))) as raw_record,
           generate_subscripts(string_split(content, chr(10)), 1) as line_number
    from (select $content as content)
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
           {_integer("event_id")} as event_id,
           {_integer("client_id")} as client_id,
           try_cast(json_extract_string(doc, '$.event_ts') as timestamp) as event_ts,
           json_extract_string(doc, '$.channel') as channel,
           json_extract_string(doc, '$.event_type') as event_type,
           json_extract_string(doc, '$.device') as device,
           json_extract_string(doc, '$.campaign_id') as campaign_id
    from checked
)
select records.*,
    case
        when not is_json then 'malformed JSON'
        when event_id is null then {_id_problem("event_id")}
        when records.client_id is null then {_id_problem("client_id")}
        when event_ts is null then 'missing or unparseable event_ts'
        when channel is null or channel not in ({_sql_list(CHANNELS)}) then 'unknown channel: ' || coalesce(channel, 'null')
        when (channel || '/' || coalesce(event_type, '')) not in ({_VALID_KINDS})
            then 'unknown event_type for channel ' || channel || ': ' || coalesce(event_type, 'null')
        when device is null or device not in ({_sql_list(DEVICES)}) then 'unknown device: ' || coalesce(device, 'null')
        when event_ts > $latest then 'event_ts too far in the future: ' || cast(event_ts as varchar)
        when event_ts < $earliest then 'event_ts too late (before the lateness window): ' || cast(event_ts as varchar)
        when clients.client_id is null then 'unknown client_id ' || cast(records.client_id as varchar)
        when event_ts < clients.enrollment_date
            then 'event_ts before the client enrolled (' || cast(clients.enrollment_date as varchar) || '): '
                 || cast(event_ts as varchar)
    end as reason
from records left join known_clients as clients on clients.client_id = records.client_id
order by line_number
"""


def parse_event_file(path: Path, known_clients: pd.DataFrame, window: EventWindow,
                     max_file_bytes: int, now: dt.datetime | None = None) -> ParsedFile:
    """Split one JSON Lines file into valid events and quarantined records (never raises on content).

    `known_clients`: client_id and enrollment_date of the clients that exist; events of other clients, or
    dated before the client enrolled, are quarantined, as are events outside `window`.
    """
    quarantined_at = pd.Timestamp(now or dt.datetime.now())
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            return _whole_file_quarantined(path, f"oversized file: {size:,} bytes, the limit is {max_file_bytes:,}",
                                           quarantined_at)
        content, undecodable = split_undecodable_lines(path.read_bytes())
    except OSError as error:  # vanished, unreadable: the whole file is one bad record
        return _whole_file_quarantined(path, f"unreadable file: {str(error)[:200]}", quarantined_at)
    con = duckdb.connect()
    try:
        clients = known_clients[["client_id", "enrollment_date"]].astype({"client_id": np.int64})
        con.register("known_clients", clients)
        parsed = con.execute(_PARSE_SQL, {"content": content, "latest": window.latest,
                                          "earliest": window.earliest}).fetchdf()
    finally:
        con.close()

    bad = pd.concat([parsed[parsed["reason"].notna()][["line_number", "raw_record", "reason"]], undecodable])
    quarantine = pd.DataFrame(
        {
            "file_name": path.name,
            "line_number": bad["line_number"].astype(np.int64),
            "raw_record": bad["raw_record"].str.slice(0, RAW_RECORD_CHARS),
            "reason": bad["reason"],
            "quarantined_at": quarantined_at,
        },
        columns=QUARANTINE_COLUMNS,
    ).sort_values("line_number")
    good = parsed[parsed["reason"].isna()]
    events = good.assign(event_date=good["event_ts"].dt.normalize(), file_name=path.name)[[*EVENT_COLUMNS, "file_name"]]
    return ParsedFile(events=events.reset_index(drop=True), quarantine=quarantine.reset_index(drop=True))


def split_undecodable_lines(data: bytes) -> tuple[str, pd.DataFrame]:
    """The file as text with every line that is not valid UTF-8 blanked (so line numbers hold), and those
    lines as quarantine rows (line_number, raw_record with the bad bytes replaced, reason). A clean file is
    one decode; only a file with bad bytes is decoded line by line."""
    try:
        return data.decode("utf-8"), pd.DataFrame(columns=["line_number", "raw_record", "reason"])
    except UnicodeDecodeError:
        pass
    text, bad = [], []
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            text.append(line.decode("utf-8"))
        except UnicodeDecodeError as error:
            text.append("")
            bad.append((number, line.decode("utf-8", errors="replace"),
                        f"not UTF-8 text: {error.reason} at byte {error.start}"))
    return "\n".join(text), pd.DataFrame(bad, columns=["line_number", "raw_record", "reason"])


def _whole_file_quarantined(path: Path, reason: str, quarantined_at: pd.Timestamp) -> ParsedFile:
    row = {"file_name": path.name, "line_number": 0, "raw_record": None, "reason": reason,
           "quarantined_at": quarantined_at}
    return ParsedFile(events=_empty_events(), quarantine=pd.DataFrame([row], columns=QUARANTINE_COLUMNS))


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(columns=[*EVENT_COLUMNS, "file_name"])


def drop_duplicate_events(events: pd.DataFrame, already_loaded: np.ndarray) -> tuple[pd.DataFrame, int]:
    """Keep each event id once: not already in the table, and once within the batch."""
    fresh = events[~events["event_id"].isin(already_loaded)].drop_duplicates("event_id")
    return fresh.reset_index(drop=True), len(events) - len(fresh)
