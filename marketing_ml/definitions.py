"""The one place that assembles the platform's `Definitions` from its concerns.

`build_definitions(settings)` is what tests call with their own settings; `defs` is what `dagster dev`
and `dagster definitions validate` load (lazily, so importing this module touches no files).
"""

from __future__ import annotations

import dagster as dg

from marketing_ml.features.assets import build_feature_assets
from marketing_ml.partitions import daily_partitions
from marketing_ml.resources import build_resources
from marketing_ml.settings import Settings, load_settings
from marketing_ml.simulation.assets import build_simulated_daily_activity, raw_clients, true_client_traits
from marketing_ml.steps import step_jobs
from marketing_ml.training.assets import training_assets


def build_definitions(settings: Settings) -> dg.Definitions:
    partitions = daily_partitions(settings.simulation.start_date)
    assets = [
        raw_clients,
        true_client_traits,
        build_simulated_daily_activity(partitions),
        *build_feature_assets(partitions, settings.warehouse),
        *training_assets(),
    ]
    groups = {spec.group_name for a in assets for spec in a.specs}
    return dg.Definitions(
        assets=assets,
        jobs=step_jobs(groups),
        resources=build_resources(settings),
        # DuckDB has a single writer: steps of a run take turns in one process instead of fighting
        # over the file lock from several.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(load_settings())
