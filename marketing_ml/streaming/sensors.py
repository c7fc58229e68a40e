"""The landing-zone sensor (the Snowpipe analogue): new event files become one ingestion run, and files
whose run failed are requested again with backoff, then moved to the dead-letter folder.

The sensor only lists file names, so no file content can break it; the run it requests parses the files.
A file stays in the landing zone until a run ingests it (and archives it). For a requested file still
present, the sensor asks Dagster how its run ended: succeeded (a file of that name landed again) means a
new request; failed means a wait of `retry_backoff_seconds` (doubling after each failure) and a new
request; after `max_attempts` failed runs it moves the file to `dead_letter/` beside `<file>.error.txt`,
the last run's error, and reports it as an observation of `events_quarantine` (visible on the asset's
page in the UI).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from marketing_ml.settings import IngestionPolicy
from marketing_ml.streaming.ingestion import landed_files

REQUEST_TAG = "marketing_ml/ingest_request"
ERROR_SUFFIX = ".error.txt"


@dataclass(frozen=True)
class EndedRun:
    error: str | None  # None: the run succeeded
    ended_at: float  # unix seconds


@dataclass(frozen=True)
class DeadLetter:
    file_name: str
    attempts: int
    error: str


@dataclass(frozen=True)
class LandingZonePlan:
    """What one tick does: the files to request (and the request's key), the files to give up on, and the
    cursor: per file still in the landing zone, its request key, attempts so far and when to retry."""

    request: list[str]
    request_key: str | None
    dead_letters: list[DeadLetter]
    state: dict[str, dict]


def plan_landing_zone(present: list[str], state: dict[str, dict], outcome: Callable[[str], EndedRun | None],
                      policy: IngestionPolicy, now: float) -> LandingZonePlan:
    """Decide one tick. `state` is the previous plan's; `outcome(request_key)` says how that request's run
    ended (None: not yet, it is queued or running)."""
    request: list[str] = []
    dead: list[DeadLetter] = []
    kept: dict[str, dict] = {}
    for name in present:
        entry = state.get(name)
        if entry is None:
            request.append(name)
            continue
        if entry.get("retry_at") is None:
            ended = outcome(entry["key"])
            if ended is None:
                kept[name] = entry
                continue
            if ended.error is None:  # that run ingested (and archived) it: a file of that name landed again
                request.append(name)
                continue
            if entry["attempts"] >= policy.max_attempts:
                dead.append(DeadLetter(name, entry["attempts"], ended.error))
                continue
            backoff = policy.retry_backoff_seconds * 2 ** (entry["attempts"] - 1)
            entry = {**entry, "retry_at": ended.ended_at + backoff}
        if now >= entry["retry_at"]:
            request.append(name)
        kept[name] = entry
    key = f"{request[0]}..{request[-1]}@{now:.3f}" if request else None
    for name in request:
        kept[name] = {"key": key, "attempts": kept.get(name, {}).get("attempts", 0) + 1, "retry_at": None}
    return LandingZonePlan(request, key, dead, kept)


def move_to_dead_letters(landing_dir: Path, dead_letter_dir: Path, letter: DeadLetter) -> Path:
    """The file into the dead-letter folder, with its error beside it."""
    dead_letter_dir.mkdir(parents=True, exist_ok=True)
    (dead_letter_dir / f"{letter.file_name}{ERROR_SUFFIX}").write_text(
        f"{letter.attempts} ingestion runs failed; the last one with:\n{letter.error}\n")
    return Path(shutil.move(str(landing_dir / letter.file_name), dead_letter_dir / letter.file_name))


def dead_letter_files(dead_letter_dir: Path) -> list[str]:
    if not dead_letter_dir.exists():
        return []
    return sorted(p.name for p in dead_letter_dir.iterdir() if not p.name.endswith(ERROR_SUFFIX))


def read_cursor(cursor: str | None) -> dict[str, dict]:
    try:
        state = json.loads(cursor) if cursor else {}
    except (ValueError, TypeError):
        return {}  # a damaged cursor costs at most a re-request; ingestion skips loaded files
    return state if isinstance(state, dict) else {}


def run_outcome(instance: dg.DagsterInstance, request_key: str) -> EndedRun | None:
    """How the run of a request ended, with its error when it failed or was canceled; None while it has not."""
    records = instance.get_run_records(dg.RunsFilter(tags={REQUEST_TAG: request_key}), limit=1)
    if not records or not records[0].dagster_run.is_finished:
        return None
    record = records[0]
    ended_at = record.end_time or time.time()
    if record.dagster_run.is_success:
        return EndedRun(error=None, ended_at=ended_at)
    run_id = record.dagster_run.run_id
    failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    if failures:
        error = failures[-1].dagster_event.step_failure_data.error
        text = error.to_string() if error else failures[-1].message
    else:
        text = f"run {run_id} ended {record.dagster_run.status.value}"
    return EndedRun(error=f"run {run_id}: {text}", ended_at=ended_at)


def build_landing_zone_sensor(landing_dir: Path, dead_letter_dir: Path, policy: IngestionPolicy,
                              ingestion: dg.AssetsDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_zone_sensor",
        asset_selection=dg.AssetSelection.groups("streaming"),
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests one ingestion run for the event files that landed since the last tick, retries "
                    "files whose run failed with backoff, and moves them to the dead-letter folder after "
                    f"{policy.max_attempts} failed runs.",
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        return evaluate_landing_zone(landing_dir, dead_letter_dir, policy, context.cursor, ingestion.op.name,
                                     outcome=lambda key: run_outcome(context.instance, key),
                                     now=time.time(), log=context.log.warning)

    return landing_zone_sensor


def evaluate_landing_zone(landing_dir: Path, dead_letter_dir: Path, policy: IngestionPolicy, cursor: str | None,
                          op_name: str, outcome: Callable[[str], EndedRun | None], now: float,
                          log: Callable[[str], None] = print) -> dg.SensorResult | dg.SkipReason:
    """One tick: list the landing zone, plan, move dead letters, request the rest in one run."""
    try:
        present = [p.name for p in landed_files(landing_dir)]
    except OSError as error:
        return dg.SkipReason(f"cannot list {landing_dir}: {error}")
    plan = plan_landing_zone(present, read_cursor(cursor), outcome, policy, now)
    observations = []
    for letter in plan.dead_letters:
        moved = move_to_dead_letters(landing_dir, dead_letter_dir, letter)
        log(f"{letter.file_name}: {letter.attempts} ingestion runs failed; moved to {moved}. Last error: {letter.error}")
        observations.append(dg.AssetObservation(
            asset_key="events_quarantine",
            metadata={"dead_letter_file": str(moved), "failed_runs": letter.attempts,
                      "error": dg.MetadataValue.text(letter.error),
                      "dead_letter_files": len(dead_letter_files(dead_letter_dir))},
        ))
    requests = []
    if plan.request:
        requests.append(dg.RunRequest(
            run_key=plan.request_key,
            run_config={"ops": {op_name: {"config": {"files": plan.request}}}},
            tags={REQUEST_TAG: plan.request_key, "marketing_ml/files": str(len(plan.request))},
        ))
    skip = None
    if not requests and not observations:
        waiting = sum(1 for entry in plan.state.values() if entry.get("retry_at") is not None)
        skip = f"no new files in {landing_dir}" + (f"; {waiting} waiting to be retried" if waiting else "")
    return dg.SensorResult(run_requests=requests, asset_events=observations, skip_reason=skip,
                           cursor=json.dumps(plan.state))
