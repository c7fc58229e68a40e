"""The landing-zone sensor (the Snowpipe analogue): new event files become one ingestion run.

The sensor only lists file names, so no file content can break it; the run it requests parses the files.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from marketing_ml.streaming.ingestion import landed_files


def build_landing_zone_sensor(landing_dir: Path, ingestion: dg.AssetsDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_zone_sensor",
        asset_selection=dg.AssetSelection.groups("streaming"),
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests one ingestion run for the event files that landed since the last tick.",
    )
    def landing_zone_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        return evaluate_landing_zone(landing_dir, context.cursor, ingestion.op.name)

    return landing_zone_sensor


def evaluate_landing_zone(landing_dir: Path, cursor: str | None, op_name: str) -> dg.SensorResult | dg.SkipReason:
    """Files present and not yet requested become one run request; the cursor remembers requested files
    that are still in the landing zone (ingested files are archived, so the cursor stays small)."""
    try:
        present = [p.name for p in landed_files(landing_dir)]
    except OSError as error:
        return dg.SkipReason(f"cannot list {landing_dir}: {error}")
    try:
        requested = set(json.loads(cursor)) if cursor else set()
    except (ValueError, TypeError):
        requested = set()  # a damaged cursor costs at most a re-request; ingestion skips loaded files
    new = [name for name in present if name not in requested]
    still_pending = sorted((requested & set(present)) | set(new))
    if not new:
        return dg.SkipReason(f"no new files in {landing_dir}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{new[0]}..{new[-1]}",
                run_config={"ops": {op_name: {"config": {"files": new}}}},
                tags={"marketing_ml/files": str(len(new))},
            )
        ],
        cursor=json.dumps(still_pending),
    )
