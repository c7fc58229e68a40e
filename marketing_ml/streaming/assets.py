"""Streaming ingestion (the Snowpipe analogue): a sensor on the landing zone and the ingestion asset.

The sensor only lists file names, so no file content can break it; the run it requests parses the
files, loads valid events exactly once and quarantines the rest with a reason, then archives the files.
Exactly once holds at two levels: a file recorded in `streaming.ingested_files` is never loaded again,
and an event id already in `streaming.streamed_events` is never inserted again.
"""

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from marketing_ml.metadata import markdown_table
from marketing_ml.resources.dbt import WarehouseDbtCliResource
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.scoring.batch import TASKS
from marketing_ml.serving.online_features import utc_now
from marketing_ml.streaming import rescoring
from marketing_ml.streaming.ingest import STREAMING_SCHEMA, drop_duplicate_events, parse_event_file
from marketing_ml.training.predictor import load_champion

EVENT_FILE_GLOB = "events-*.jsonl"


class IngestConfig(dg.Config):
    """Which landed files to ingest; the sensor fills it in. Empty = every file in the landing zone."""

    files: list[str] = []


def landed_files(landing_dir: Path) -> list[Path]:
    return sorted(landing_dir.glob(EVENT_FILE_GLOB)) if landing_dir.exists() else []


def build_streaming_ingestion(landing_dir: Path) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                "streamed_events",
                group_name="streaming",
                kinds={"python", "duckdb"},
                deps=["raw_clients"],
                description="One row per streamed event, loaded exactly once from the landing zone's micro-batch files.",
                metadata={"schema": STREAMING_SCHEMA},
            ),
            dg.AssetSpec(
                "events_quarantine",
                group_name="streaming",
                kinds={"python", "duckdb"},
                description="One row per rejected streamed record: file, line, the raw text and why it was rejected.",
                metadata={"schema": STREAMING_SCHEMA},
            ),
        ],
        can_subset=False,
    )
    def ingest_landed_events(context: dg.AssetExecutionContext, config: IngestConfig, warehouse: WarehouseResource):
        requested = [landing_dir / name for name in config.files] if config.files else landed_files(landing_dir)
        summary = ingest_files(requested, landing_dir, warehouse, log=context.log.info)
        context.log.info(
            f"{summary['files']} files: {summary['events']} events loaded, {summary['quarantined']} quarantined, "
            f"{summary['duplicates']} duplicates skipped"
        )
        reasons = pd.DataFrame(summary["reasons"].items(), columns=["reason", "records"])
        yield dg.MaterializeResult(
            asset_key="streamed_events",
            metadata={
                "files": summary["files"],
                "events_loaded": summary["events"],
                "duplicates_skipped": summary["duplicates"],
                "clients_affected": len(summary["clients"]),
            },
        )
        yield dg.MaterializeResult(
            asset_key="events_quarantine",
            metadata={
                "records_quarantined": summary["quarantined"],
                "reasons": dg.MetadataValue.md(markdown_table(reasons) if len(reasons) else "nothing quarantined"),
            },
        )

    return ingest_landed_events


def ingest_files(paths: list[Path], landing_dir: Path, warehouse: WarehouseResource, log=print) -> dict:
    """Load each landed file once; archive it afterwards. Returns counts, reasons and affected clients."""
    known_clients = warehouse.query("select client_id from raw.raw_clients")["client_id"].to_numpy()
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
        parsed = parse_event_file(path, known_clients)
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
            }
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


def build_realtime_scores(dbt_manifest: dict) -> dg.AssetsDefinition:
    """The rescoring half of a streaming run (see `rescoring`): online rows, then scores."""
    @dg.asset(
        name="realtime_scores",
        group_name="streaming",
        kinds={"python", "dbt", "mlflow", "duckdb"},
        deps=["streamed_events", "online_client_features", *(f"{task}_champion" for task in TASKS)],
        metadata={"schema": STREAMING_SCHEMA},
        output_required=False,
        description=(
            "One row per rescoring of a client with new streamed events: the champions' scores on its feature "
            "row as of the day after its newest event (raw plus streamed events), also written to the online "
            "feature table the API serves."
        ),
    )
    def realtime_scores(context: dg.AssetExecutionContext, warehouse: WarehouseResource, dbt: WarehouseDbtCliResource,
                        mlflow: MLflowResource):
        request = rescoring.pending_request(warehouse)
        if request is None:
            context.log.info("no streamed events since the last rescoring")
            return
        online_columns = rescoring.online_table_columns(warehouse)
        if not online_columns:
            context.log.warning("streamed events are ingested, but rescoring waits for the online feature table: "
                                "run `marketing-ml run --step features` first")
            return
        began = utc_now()
        build = rescoring.start_online_feature_build(dbt, dbt_manifest, request)
        try:
            champions = {task: load_champion(task, mlflow.tracking_uri) for task in TASKS}
        except LookupError as missing:
            build.wait()
            context.log.warning(f"streamed events are ingested, but rescoring waits for champions: {missing}")
            return
        rows = rescoring.online_feature_rows(build, warehouse)
        rescoring.replace_online_rows(warehouse, online_columns, utc_now())
        scores = rescoring.realtime_scores(rows, champions, request, utc_now())
        warehouse.append({rescoring.SCORES_TABLE: scores})
        context.log.info(f"rescored {len(scores):,} clients as of {request.as_of_date}")
        yield dg.MaterializeResult(
            metadata={
                "clients_rescored": len(scores),
                "as_of_date": request.as_of_date.isoformat(),
                "seconds": (utc_now() - began).total_seconds(),
                "mean_p_conversion": float(scores["p_conversion"].mean()),
                "mean_p_churn": float(scores["p_churn"].mean()),
                "preview": dg.MetadataValue.md(markdown_table(scores.head(10))),
            }
        )

    return realtime_scores
