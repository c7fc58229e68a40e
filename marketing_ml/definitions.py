"""The one place that assembles the platform's `Definitions`: it merges every domain's own definitions and
decides the resources and the executor.

`build_definitions(settings)` is what tests call with their own settings; `defs` is what `dagster dev`
and `dagster definitions validate` load (lazily, so importing this module touches no files).

| domain | what it owns |
| --- | --- |
| `simulation` | raw data and ground truth from the simulated provider |
| `sources` | or: raw data from the provider's own files, checked against the data contract |
| `features` | dbt staging and feature snapshots, their checks, the feature catalog |
| `training` | training sets and the model assets |
| `registry` | the model contract and the `@champion` gate |
| `uplift` | the effect of contacts: randomised-log training set, meta-learners, their champions |
| `scoring` | daily predictions, explanations, segments |
| `decisions` | advisor queue, campaign targets, business impact |
| `monitoring` | drift, realised performance, alerts, the retraining sensor |
| `serving` | the online feature table the API loads |
| `streaming` | ingestion of landed files, rescoring, the landing-zone sensor |
| `pipeline` | a job per demo step, the daily job and its schedule |
"""

from __future__ import annotations

import dagster as dg

from marketing_ml.decisions import definitions as decisions
from marketing_ml.features import definitions as features
from marketing_ml.features.project import feature_dbt_project, prepared_manifest
from marketing_ml.monitoring import definitions as monitoring
from marketing_ml.partitions import daily_partitions
from marketing_ml.pipeline import definitions as pipeline
from marketing_ml.registry import definitions as registry
from marketing_ml.resources import build_resources
from marketing_ml.scoring import definitions as scoring
from marketing_ml.serving import definitions as serving
from marketing_ml.settings import Settings, load_settings
from marketing_ml.simulation import definitions as simulation
from marketing_ml.sources import definitions as sources
from marketing_ml.streaming import definitions as streaming
from marketing_ml.training import definitions as training
from marketing_ml.uplift import definitions as uplift
from marketing_ml.wiring import hide_dagster_beta_notices


def build_definitions(settings: Settings) -> dg.Definitions:
    dbt_project = feature_dbt_project(settings.warehouse)
    # before the manifest is parsed: on Snowflake this checks the credentials, so a missing variable is one
    # error naming it rather than dbt's failure to render its profile
    resources = build_resources(settings, dbt_project)
    dbt_manifest = prepared_manifest(dbt_project)
    partitions = daily_partitions(settings.simulation.start_date)
    # the raw tables: the simulator's (and its ground truth), or the provider's own files
    raw = simulation.definitions(settings, partitions) if settings.source is None else sources.definitions(settings, partitions)
    domains = dg.Definitions.merge(
        raw,
        features.definitions(settings, partitions, dbt_project, dbt_manifest),
        training.definitions(settings, partitions),
        registry.definitions(settings, partitions),
        uplift.definitions(settings, partitions),
        scoring.definitions(settings, partitions),
        decisions.definitions(settings, partitions),
        monitoring.definitions(settings, partitions),
        serving.definitions(settings, partitions),
        streaming.definitions(settings, partitions, dbt_manifest),
    )
    return dg.Definitions.merge(
        domains,
        pipeline.definitions(domains, partitions),
        dg.Definitions(
            resources=resources,
            # DuckDB has a single writer: steps of a run take turns in one process instead of fighting
            # over the file lock from several. Snowflake takes concurrent writers.
            executor=dg.in_process_executor if settings.warehouse == "duckdb" else dg.multiprocess_executor,
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    # the code location's process starts here (`dagster dev`, its run workers): no beta notices in their logs
    hide_dagster_beta_notices()
    return build_definitions(load_settings())
