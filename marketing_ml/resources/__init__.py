"""Backends, chosen in one place: `build_resources` maps the settings to Dagster resources."""

from __future__ import annotations

from typing import Any

from dagster_duckdb_pandas import DuckDBPandasIOManager

from marketing_ml.features.project import dbt_executable, feature_dbt_project
from marketing_ml.resources.dbt import WarehouseDbtCliResource, dbt_profile_env
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.simulation import SimulationResource
from marketing_ml.resources.warehouse import DuckDBWarehouse, WarehouseResource
from marketing_ml.settings import Settings

__all__ = ["MLflowResource", "SimulationResource", "WarehouseDbtCliResource", "WarehouseResource", "build_resources"]


def build_resources(settings: Settings) -> dict[str, Any]:
    """The resources every asset uses, for the backend the settings select."""
    sim = settings.simulation
    simulation = SimulationResource(
        seed=sim.seed, n_clients=sim.n_clients, start_date=sim.start_date.isoformat()
    )
    path = str(settings.duckdb_path)
    return {
        "io_manager": DuckDBPandasIOManager(database=path),
        "warehouse": DuckDBWarehouse(path=path),
        "simulation": simulation,
        # dbt runs the profile target named like the backend, against this data directory's warehouse
        "dbt": WarehouseDbtCliResource(
            project_dir=feature_dbt_project(settings.warehouse),
            dbt_executable=dbt_executable(),
            profile_env=dbt_profile_env(settings.warehouse, settings.duckdb_path),
            artifacts_dir=str(settings.data_dir / "dbt"),
        ),
        "mlflow": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri, artifact_root=str(settings.mlflow_artifact_root)
        ),
    }
