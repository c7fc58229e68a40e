"""The one place that assembles the platform's `Definitions` from its concerns.

`build_definitions(settings)` is what tests call with their own settings; `defs` is what `dagster dev`
and `dagster definitions validate` load (lazily, so importing this module touches no files).
"""

from __future__ import annotations

import dagster as dg

from marketing_ml.automation import daily_job, daily_schedule
from marketing_ml.features.assets import build_feature_assets
from marketing_ml.features.project import feature_dbt_project, prepared_manifest
from marketing_ml.monitoring.assets import build_monitoring_assets
from marketing_ml.monitoring.sensors import build_retraining_sensor, retrain_job
from marketing_ml.partitions import daily_partitions
from marketing_ml.resources import build_resources
from marketing_ml.scoring.assets import build_scoring_assets
from marketing_ml.serving.assets import online_client_features
from marketing_ml.settings import Settings, load_settings
from marketing_ml.simulation.assets import build_simulated_daily_activity, raw_clients, true_client_traits
from marketing_ml.steps import step_jobs
from marketing_ml.streaming.assets import (
    build_landing_zone_sensor,
    build_realtime_scores,
    build_streaming_ingestion,
)
from marketing_ml.training.assets import training_assets


def build_definitions(settings: Settings) -> dg.Definitions:
    # first: on Snowflake this checks the credentials, so a missing variable is one error naming it
    # rather than dbt's failure to render its profile while the manifest is parsed below
    resources = build_resources(settings)
    partitions = daily_partitions(settings.simulation.start_date)
    ingestion = build_streaming_ingestion(settings.landing_dir)
    dbt_project = feature_dbt_project(settings.warehouse)
    dbt_manifest = prepared_manifest(dbt_project)
    assets = with_storage_kind(
        [
            raw_clients,
            true_client_traits,
            build_simulated_daily_activity(partitions),
            online_client_features,
            *training_assets(),
            *build_scoring_assets(partitions),
            *build_monitoring_assets(partitions),
            ingestion,
            build_realtime_scores(dbt_manifest),
        ],
        settings.warehouse,
    ) + build_feature_assets(partitions, dbt_project, dbt_manifest)  # dbt assets carry their own storage kind
    groups = {spec.group_name for a in assets for spec in a.specs}
    daily = daily_job(assets, partitions)
    return dg.Definitions(
        assets=assets,
        jobs=[*step_jobs(groups), daily, retrain_job()],
        schedules=[daily_schedule(daily)],
        sensors=[build_landing_zone_sensor(settings.landing_dir, ingestion), build_retraining_sensor()],
        resources=resources,
        # DuckDB has a single writer: steps of a run take turns in one process instead of fighting
        # over the file lock from several. Snowflake takes concurrent writers.
        executor=dg.in_process_executor if settings.warehouse == "duckdb" else dg.multiprocess_executor,
    )


def with_storage_kind(assets: list[dg.AssetsDefinition], warehouse: str) -> list[dg.AssetsDefinition]:
    """Assets declare the embedded `duckdb` kind; on another warehouse the UI shows that one instead."""
    if warehouse == "duckdb":
        return assets

    def swap(spec: dg.AssetSpec) -> dg.AssetSpec:
        if "duckdb" not in spec.kinds:
            return spec
        return spec.replace_attributes(kinds=(set(spec.kinds) - {"duckdb"}) | {warehouse})

    return list(dg.map_asset_specs(swap, assets))


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
