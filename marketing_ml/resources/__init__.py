"""Backends, chosen in one place: `build_resources` maps the settings to Dagster resources."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DbtProject
from dagster_duckdb_pandas import DuckDBPandasIOManager

from marketing_ml.resources.dbt import WarehouseDbtCliResource, dbt_executable, dbt_profile_env
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.simulation import SimulationResource
from marketing_ml.resources.warehouse import DuckDBWarehouse, WarehouseResource
from marketing_ml.resources.webhook import alert_webhook
from marketing_ml.settings import Settings

__all__ = [
    "MLflowResource", "SimulationResource", "WarehouseDbtCliResource", "WarehouseResource", "build_resources",
    "resolved_warehouse", "warehouse_resources",
]


def build_resources(settings: Settings, dbt_project: DbtProject, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The resources every asset uses, for the backend the settings select; dbt runs `dbt_project` (built
    once, by the Definitions).

    DuckDB (the default) needs nothing; Snowflake takes its credentials from the environment (`env`,
    default `os.environ`) and fails fast, naming any missing variable.
    """
    env = os.environ if env is None else env
    return {
        **warehouse_resources(settings, env),
        "simulation": SimulationResource.from_config(settings.simulation),
        "mlflow": MLflowResource(tracking_uri=settings.mlflow_tracking_uri, artifact_root=str(settings.mlflow_artifact_root)),
        # dbt runs the profile target named like the backend, against this data directory's warehouse
        "dbt": WarehouseDbtCliResource(
            project_dir=dbt_project,
            dbt_executable=dbt_executable(),
            profile_env=dbt_profile_env(settings.warehouse, settings.duckdb_path),
            artifacts_dir=str(settings.data_dir / "dbt"),
        ),
        "alert_webhook": alert_webhook(env),
    }


def warehouse_resources(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The IO manager and the `warehouse` SQL resource of the selected backend, and nothing else."""
    if settings.warehouse == "snowflake":
        from marketing_ml.resources.snowflake import snowflake_resources

        return snowflake_resources(os.environ if env is None else env)
    path = str(settings.duckdb_path)
    return {"io_manager": DuckDBPandasIOManager(database=path), "warehouse": DuckDBWarehouse(path=path)}


def resolved_warehouse(settings: Settings) -> WarehouseResource:
    """The warehouse for a process that reads it outside Dagster runs (the real-time API, a notebook), with
    its configuration resolved: Dagster reads `EnvVar` credentials when it initialises a resource for a run,
    and a resource used directly would see the variables' names instead of their values."""
    with dg.build_resources({"warehouse": warehouse_resources(settings)["warehouse"]}) as resources:
        return resources.warehouse
