"""The event stream: today's simulated events delivered as micro-batch files into the landing zone.

The stream replays the simulator for the day being streamed, so the streamed events are exactly the
events the daily partition of that day will hold once it is built: same ids, same content. That is what
makes the stream and the batch reconcile (the features de-duplicate by event id).

Files are written to a hidden temporary name and renamed into place, so a reader never sees half a
file. Names sort in landing order: `events-<UTC timestamp>-<sequence>.jsonl`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from marketing_ml.simulation.config import SimulationConfig
from marketing_ml.simulation.engine import simulate_days

MALFORMATIONS = ("truncated_json", "missing_client_id", "unknown_channel", "bad_timestamp", "unknown_client")


@dataclass
class StreamStats:
    files: int = 0
    events: int = 0
    malformed: int = 0


def day_events(config: SimulationConfig, day: dt.date) -> pd.DataFrame:
    """The simulated events of `day` in the order they happen."""
    events = simulate_days(config, day, day).events
    return events.sort_values(["event_ts", "event_id"], kind="stable").reset_index(drop=True)


def event_source(config: SimulationConfig, first_day: dt.date) -> Iterator[pd.DataFrame]:
    """Days of events from `first_day` on, one frame per day (the stream rolls over midnight)."""
    day = first_day
    while True:
        yield day_events(config, day)
        day += dt.timedelta(days=1)


def to_json_lines(events: pd.DataFrame, malformed_rate: float, rng: np.random.Generator) -> tuple[list[str], int]:
    """Serialise events as JSON Lines; corrupt a share of them the ways real feeds break."""
    records = events[["event_id", "client_id", "event_ts", "channel", "event_type", "device", "campaign_id"]].copy()
    records["event_ts"] = records["event_ts"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    lines = records.to_json(orient="records", lines=True).splitlines()
    corrupt = np.flatnonzero(rng.random(len(lines)) < malformed_rate)
    for i, how in zip(corrupt, rng.choice(MALFORMATIONS, len(corrupt))):
        record = json.loads(lines[i])
        if how == "truncated_json":
            lines[i] = lines[i][: len(lines[i]) // 2]
            continue
        if how == "missing_client_id":
            del record["client_id"]
        elif how == "unknown_channel":
            record["channel"] = "fax"
        elif how == "bad_timestamp":
            record["event_ts"] = "yesterday-ish"
        else:
            record["client_id"] = 10**12 + int(i)
        lines[i] = json.dumps(record)
    return lines, len(corrupt)


def write_atomically(landing_dir: Path, name: str, lines: list[str]) -> Path:
    staging = landing_dir / ".incoming"
    staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / name
    tmp.write_text("\n".join(lines) + "\n")
    final = landing_dir / name
    os.replace(tmp, final)  # atomic on one filesystem: readers see all of the file or none
    return final


def stream(
    config: SimulationConfig,
    landing_dir: Path,
    rate: float,
    duration: float,
    *,
    batch_seconds: float = 1.0,
    malformed_rate: float = 0.0,
    first_day: dt.date | None = None,
    seed: int = 0,
    sleep: Callable[[float], None] = time.sleep,
    on_file: Callable[[Path, int], None] | None = None,
) -> StreamStats:
    """Write `rate` events per second for `duration` seconds, one file per `batch_seconds`."""
    if rate <= 0 or duration <= 0 or batch_seconds <= 0:
        raise ValueError("rate, duration and batch_seconds must be positive")
    landing_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    source = event_source(config, first_day or dt.date.today())
    pending = next(source)
    stats = StreamStats()
    started = time.monotonic()
    batches = max(1, round(duration / batch_seconds))
    per_batch = rate * batch_seconds
    owed = 0.0
    for batch in range(batches):
        owed += per_batch
        take = int(owed)
        owed -= take
        chunk = []
        while take > 0:
            if pending.empty:
                pending = next(source)
                continue
            chunk.append(pending.iloc[:take])
            take -= len(chunk[-1])
            pending = pending.iloc[len(chunk[-1]) :]
        if chunk:
            lines, malformed = to_json_lines(pd.concat(chunk), malformed_rate, rng)
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            path = write_atomically(landing_dir, f"events-{stamp}-{batch:06d}.jsonl", lines)
            stats.files += 1
            stats.events += len(lines)
            stats.malformed += malformed
            if on_file:
                on_file(path, len(lines))
        # pace against the wall clock, so slow writes do not stretch the stream
        delay = started + (batch + 1) * batch_seconds - time.monotonic()
        if delay > 0 and batch < batches - 1:
            sleep(delay)
    return stats
