"""The streaming domain: ingestion of landed event files, rescoring, and the landing-zone sensor."""

from typing import Any

import dagster as dg

from marketing_ml.settings import Settings
from marketing_ml.streaming.assets import build_realtime_scores, build_streaming_ingestion
from marketing_ml.streaming.sensors import build_landing_zone_sensor
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition, dbt_manifest: dict[str, Any]) -> dg.Definitions:
    """Rescoring runs dbt's online feature model from the manifest the Definitions prepared once."""
    ingestion = build_streaming_ingestion(settings)
    return dg.Definitions(
        assets=domain_assets([ingestion, build_realtime_scores(dbt_manifest)], settings.warehouse),
        sensors=[build_landing_zone_sensor(settings.landing_dir, settings.dead_letter_dir, settings.ingestion,
                                           ingestion)],
    )
