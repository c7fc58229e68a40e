"""A streaming soak: hostile files land continuously while the landing-zone sensor ticks and its runs
ingest them; afterwards the warehouse is checked against what was landed.

The files are of every kind a real feed produces: valid micro-batches (the simulator's events of the next
day) with a share of bad records (malformed JSON, a fractional client id, an ancient timestamp, a line
that is not UTF-8), exact duplicates landing again under their name, duplicates under a new name, empty
files, binary files and oversized files. The soak knows what each file holds, so the check is exact:
every valid event loaded once (by event id), every bad record quarantined with a reason, the landing
zone empty but for dead letters. Used by the test suite (small) and `benchmarks/reliability.py`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from dataclasses import dataclass, field

import dagster as dg
import duckdb
import numpy as np
import pandas as pd

from marketing_ml.definitions import build_definitions
from marketing_ml.settings import Settings
from marketing_ml.streaming.ingestion import landed_files
from marketing_ml.streaming.sensors import dead_letter_files
from marketing_ml.streaming.producer import event_source, to_json_lines

FILE_KINDS = ("valid", "duplicate", "renamed_duplicate", "empty", "binary", "oversized")
# bad records a valid file may carry, each quarantined with its own reason
BAD_RECORDS = (
    '{"event_id": 1, "client_id": ',
    '{"event_id": 2, "client_id": 1.7, "event_ts": "{day}T10:00:00", "channel": "web", "event_type": "login", "device": "desktop"}',
    '{"event_id": 3, "client_id": 1, "event_ts": "1900-01-01T00:00:00", "channel": "web", "event_type": "login", "device": "desktop"}',
)
NOT_UTF8 = b'{"event_id": 4, "device": "\xff\xfe"}'
# the soak lowers the size limit so its oversized files stay small
MAX_FILE_BYTES = 256 * 2**10


@dataclass
class Landed:
    """What the soak landed, by kind, and what the warehouse must hold for it."""

    files: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILE_KINDS, 0))
    valid_event_ids: set[int] = field(default_factory=set)
    duplicate_events: int = 0  # valid events landed again (in duplicate or renamed-duplicate files)
    bad_records: int = 0  # quarantine rows the landed files must produce


@dataclass(frozen=True)
class SoakResult:
    landed: Landed
    events_loaded: int
    distinct_events_loaded: int
    events_lost: int  # valid events not loaded
    events_unexpected: int  # loaded events that were never landed as valid
    quarantined: int
    quarantined_without_reason: int
    left_in_landing_zone: int
    dead_letters: int
    runs: int
    failed_runs: int
    seconds: float

    def figures(self) -> dict:
        return {"files": sum(self.landed.files.values()), "files_by_kind": self.landed.files,
                "valid_events": len(self.landed.valid_event_ids), "duplicate_events": self.landed.duplicate_events,
                "bad_records": self.landed.bad_records, "events_loaded": self.events_loaded,
                "distinct_events_loaded": self.distinct_events_loaded, "lost": self.events_lost,
                "unexpected": self.events_unexpected, "quarantined": self.quarantined,
                "quarantined_without_reason": self.quarantined_without_reason,
                "left_in_landing_zone": self.left_in_landing_zone, "dead_letters": self.dead_letters,
                "runs": self.runs, "failed_runs": self.failed_runs, "seconds": round(self.seconds, 1)}


class HostileFeed:
    """Lands `files` files one every `interval` seconds, of random kinds, and records what they hold."""

    def __init__(self, settings: Settings, day: dt.date, files: int, events_per_file: int, bad_share: float,
                 interval: float, seed: int = 0):
        self.settings, self.day, self.files, self.interval = settings, day, files, interval
        self.events_per_file, self.bad_share = events_per_file, bad_share
        self.rng = np.random.default_rng(seed)
        self.source = event_source(settings.simulation, day)  # the day's events, then the next day's
        self.events = next(self.source)
        self.landed = Landed()
        self.valid_files: list[tuple[str, bytes, list[int], int]] = []  # name, content, event ids, bad records

    def run(self) -> None:
        # drawn before any file lands: which originals are archived yet depends on timing, so later draws do
        kinds = ["valid", "valid", *self.rng.choice(FILE_KINDS, self.files - 2, p=[0.5, 0.1, 0.1, 0.1, 0.1, 0.1])]
        for number, kind in enumerate(kinds[:self.files]):
            if kind == "duplicate":
                # an exact duplicate lands again under its name once the original is archived (before that, it
                # would only replace the original with the same bytes): wait for one, however busy the machine
                self._wait_for_an_archived_file()
            self._land(str(kind), number)
            time.sleep(self.interval)

    def _wait_for_an_archived_file(self, timeout: float = 120.0) -> None:
        archive, began = self.settings.landing_dir / "archive", time.monotonic()
        while not any((archive / name).exists() for name, *_ in self.valid_files):
            if time.monotonic() - began > timeout:
                return  # _land falls back to a renamed duplicate
            time.sleep(0.1)

    def _land(self, kind: str, number: int) -> None:
        name = f"events-soak-{number:06d}.jsonl"
        landing = self.settings.landing_dir
        if kind in ("duplicate", "renamed_duplicate"):
            archived = [f for f in self.valid_files if (landing / "archive" / f[0]).exists()]
            candidates = archived if kind == "duplicate" and archived else self.valid_files
            source, content, ids, bad = candidates[self.rng.integers(len(candidates))]
            if kind == "duplicate" and archived:
                name = source
            else:
                kind = "renamed_duplicate"
                self.landed.bad_records += bad  # a new file: its bad records are quarantined again
            self.landed.duplicate_events += len(ids)
        elif kind == "valid":
            content, ids, bad = self._valid_content()
            self.valid_files.append((name, content, ids, bad))
            self.landed.valid_event_ids.update(ids)
            self.landed.bad_records += bad
        elif kind == "empty":
            content = b""
        elif kind == "binary":  # one line of bytes that are not UTF-8: one quarantine row
            noise = self.rng.integers(0, 256, 2048, dtype=np.uint8).tobytes().replace(b"\n", b"\xff")
            content = b"\xff" + noise
            self.landed.bad_records += 1
        else:  # oversized: quarantined whole without being read, one row
            content = b"x" * (self.settings.ingestion.max_file_bytes + 1)
            self.landed.bad_records += 1
        self.landed.files[kind] += 1
        staging = landing / ".incoming"
        staging.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(content)
        (staging / name).replace(landing / name)  # atomic, as the producer lands files

    def _valid_content(self) -> tuple[bytes, list[int], int]:
        while len(self.events) < self.events_per_file:
            self.events = pd.concat([self.events, next(self.source)], ignore_index=True)
        take = self.events.iloc[: self.events_per_file]
        self.events = self.events.iloc[self.events_per_file:]
        lines, _ = to_json_lines(take, 0.0, self.rng)
        bad = [line.replace("{day}", self.day.isoformat()).encode()
               for line in self.rng.choice([*BAD_RECORDS], int(round(self.bad_share * len(lines))))]
        if self.rng.random() < 0.5:
            bad.append(NOT_UTF8)
        body = [line.encode() for line in lines] + bad
        order = self.rng.permutation(len(body))
        return b"\n".join(body[i] for i in order) + b"\n", take["event_id"].astype(int).tolist(), len(bad)


def run_soak(settings: Settings, files: int, events_per_file: int, bad_share: float, interval: float,
             seed: int = 0, instance: dg.DagsterInstance | None = None, give_up_seconds: float = 600) -> SoakResult:
    """Land a hostile feed while the landing-zone sensor ticks and its runs execute (in this process,
    one after another, as the instance's one-run-at-a-time queue runs them); then check the warehouse.

    `settings` must hold the raw data (clients, events) of the days before the streamed day."""
    settings = dataclasses.replace(settings, ingestion=dataclasses.replace(
        settings.ingestion, max_file_bytes=MAX_FILE_BYTES,
        retry_backoff_seconds=0))
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        day = conn.execute("select max(event_date) from raw.raw_marketing_events").fetchone()[0] + dt.timedelta(days=1)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_zone_sensor")
    job = defs.resolve_job_def("step_streaming")
    instance = instance or dg.DagsterInstance.ephemeral()
    feed = HostileFeed(settings, day, files, events_per_file, bad_share, interval, seed)
    producer = threading.Thread(target=feed.run, name="hostile-feed")
    began = time.monotonic()
    cursor, runs, failed = None, 0, 0
    producer.start()
    try:
        while producer.is_alive() or landed_files(settings.landing_dir):
            if time.monotonic() - began > give_up_seconds:
                raise TimeoutError(f"the soak did not drain the landing zone within {give_up_seconds:.0f}s")
            with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
                tick = sensor(context)
            cursor = tick.cursor or cursor
            for request in tick.run_requests:
                result = job.execute_in_process(instance=instance, run_config=request.run_config, tags=request.tags,
                                                raise_on_error=False)
                runs += 1
                failed += not result.success
            if not tick.run_requests:
                time.sleep(min(interval, 0.5))
    finally:
        producer.join()
    return _check(settings, feed.landed, runs, failed, time.monotonic() - began)


def _check(settings: Settings, landed: Landed, runs: int, failed: int, seconds: float) -> SoakResult:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        loaded = conn.execute("select event_id from streaming.streamed_events").fetchdf()["event_id"]
        quarantine = conn.execute("select reason from streaming.events_quarantine").fetchdf()["reason"]
    ids = set(loaded.astype(int).tolist())
    return SoakResult(
        landed=landed,
        events_loaded=len(loaded),
        distinct_events_loaded=len(ids),
        events_lost=len(landed.valid_event_ids - ids),
        events_unexpected=len(ids - landed.valid_event_ids),
        quarantined=len(quarantine),
        quarantined_without_reason=int(quarantine.isna().sum() + (quarantine.str.strip() == "").sum()),
        left_in_landing_zone=len(landed_files(settings.landing_dir)),
        dead_letters=len(dead_letter_files(settings.dead_letter_dir)),
        runs=runs,
        failed_runs=failed,
        seconds=seconds,
    )
