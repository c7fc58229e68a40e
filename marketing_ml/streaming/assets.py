"""Streaming as Dagster assets: the ingestion of landed event files, and the rescoring of the clients they
touch. Wiring only: parsing is `ingest`, loading `ingestion`, rescoring `rescoring`; the landing-zone
sensor that requests these runs is in `sensors`."""

import dagster as dg
import pandas as pd

from marketing_ml.metadata import markdown_table
from marketing_ml.registry.tasks import TASK_NAMES, champion_key
from marketing_ml.resources.dbt import WarehouseDbtCliResource
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.settings import Settings
from marketing_ml.streaming import rescoring
from marketing_ml.streaming.ingest import STREAMING_SCHEMA
from marketing_ml.streaming.ingestion import ingest_files, landed_files
from marketing_ml.streaming.sensors import dead_letter_files

GROUP = "streaming"


class IngestConfig(dg.Config):
    """Which landed files to ingest; the sensor fills it in. Empty = every file in the landing zone."""

    files: list[str] = []


def build_streaming_ingestion(settings: Settings) -> dg.AssetsDefinition:
    landing_dir = settings.landing_dir

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                "streamed_events",
                group_name=GROUP,
                kinds={"python", "duckdb"},
                deps=["raw_clients"],
                description="One row per streamed event, loaded exactly once from the landing zone's micro-batch files.",
                metadata={"schema": STREAMING_SCHEMA},
            ),
            dg.AssetSpec(
                "events_quarantine",
                group_name=GROUP,
                kinds={"python", "duckdb"},
                description="One row per rejected streamed record: file, line, the raw text and why it was rejected.",
                metadata={"schema": STREAMING_SCHEMA},
            ),
        ],
        can_subset=False,
    )
    def ingest_landed_events(context: dg.AssetExecutionContext, config: IngestConfig, warehouse: WarehouseResource):
        requested = [landing_dir / name for name in config.files] if config.files else landed_files(landing_dir)
        summary = ingest_files(requested, landing_dir, warehouse, settings.ingestion, log=context.log.info)
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
                # files the landing-zone sensor gave up on after repeated failed runs (see `sensors`)
                "dead_letter_files": dg.MetadataValue.json(dead_letter_files(settings.dead_letter_dir)),
            },
        )

    return ingest_landed_events


def build_realtime_scores(dbt_manifest: dict) -> dg.AssetsDefinition:
    """The rescoring half of a streaming run (see `rescoring`): online rows, then scores."""
    @dg.asset(
        name="realtime_scores",
        group_name=GROUP,
        kinds={"python", "dbt", "mlflow", "duckdb"},
        deps=["streamed_events", "online_client_features", *(champion_key(task) for task in TASK_NAMES)],
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
        done = rescoring.rescore_pending(warehouse, dbt, dbt_manifest, mlflow.tracking_uri,
                                         log=context.log.info, warn=context.log.warning)
        if done is None:
            return
        scores = done.scores
        yield dg.MaterializeResult(
            metadata={
                "clients_rescored": len(scores),
                "as_of_date": done.request.as_of_date.isoformat(),
                "seconds": done.seconds,
                "mean_p_conversion": float(scores["p_conversion"].mean()),
                "mean_p_churn": float(scores["p_churn"].mean()),
                "preview": dg.MetadataValue.md(markdown_table(scores.head(10))),
            }
        )

    return realtime_scores
