"""Dagster wiring of the online feature table the real-time API serves (logic in `online_features`)."""

import dagster as dg

from marketing_ml.metadata import markdown_table
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.serving.online_features import (
    ONLINE_SCHEMA,
    ONLINE_TABLE,
    UPDATED_AT,
    build_online_features,
)

# `eager()` waits for every upstream partition to exist; this table only needs the latest built day, and
# a world whose history does not reach yesterday (any test or demo world) would otherwise never trigger it
FOLLOWS_NEW_FEATURE_PARTITIONS = (
    dg.AutomationCondition.eager()
    .without(~dg.AutomationCondition.any_deps_missing())
    .with_label("eager: any new feature partition")
)


@dg.asset(
    group_name="features",
    kinds={"python", "duckdb"},
    deps=["client_features_daily"],
    automation_condition=FOLLOWS_NEW_FEATURE_PARTITIONS,
    metadata={"schema": ONLINE_SCHEMA},
    description=(
        "One row per client active at the latest built as-of date: the client's feature row from "
        f"client_features_daily plus `{UPDATED_AT}` (UTC) - the online store the real-time API loads. "
        "Rebuilt whole when a feature partition lands; streaming rescoring replaces single rows with a newer "
        f"`{UPDATED_AT}`."
    ),
)
def online_client_features(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    build = build_online_features(warehouse)
    context.log.info(f"{ONLINE_TABLE}: {build.clients:,} clients as of {build.as_of_date}")
    summary = warehouse.query(
        f"select count(*) as clients, count(distinct client_id) as distinct_clients, min(as_of_date) as as_of_date, "
        f"max({UPDATED_AT}) as updated_at from {ONLINE_TABLE}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": build.clients,
            "as_of_date": build.as_of_date.isoformat(),
            "built_at_utc": build.built_at.isoformat(timespec="seconds"),
            "summary": dg.MetadataValue.md(markdown_table(summary)),
        }
    )
