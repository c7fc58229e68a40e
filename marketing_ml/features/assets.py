"""The features as Dagster assets: the dbt project (staging views, the daily feature snapshots and their
dbt tests as asset checks), data-quality checks, and the feature catalog.

Wiring only; the logic lives in the dbt project (dbt_project/), `quality` and `catalog`.
"""

import datetime as dt
import json
from typing import Any

import dagster as dg
import pandas as pd
from dagster_dbt import DagsterDbtTranslatorSettings, DbtProject, dbt_assets

from marketing_ml.features.catalog import (
    FEATURE_MODEL,
    FEATURE_SCHEMA,
    catalog_frame,
    load_feature_catalog,
    model_input_features,
)
from marketing_ml.features.quality import (
    COMPLETENESS_THRESHOLD,
    feature_statistics,
    latest_as_of_date,
    measure_completeness,
    measure_freshness,
    window_summary,
)
from marketing_ml.features.translator import GROUP, FeatureDbtTranslator
from marketing_ml.metadata import markdown_table
from marketing_ml.partitions import partition_dates
from marketing_ml.resources.dbt import WarehouseDbtCliResource
from marketing_ml.resources.warehouse import WarehouseResource

FEATURES_KEY = dg.AssetKey(FEATURE_MODEL)
# the tags Dagster gives a run over one partition or a range of them (the CLI and backfills set them)
PARTITION_TAG = "dagster/partition"
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
PREVIEW_COLUMNS = (
    "client_id", "as_of_date", "lifecycle_segment", "events_30d", "days_since_last_event",
    "dominant_channel_90d", "touches_180d", "retirement_readiness", "is_converted",
)


def window_vars(first: dt.date, last: dt.date) -> str:
    """The dbt vars of a run over the as-of dates first..last."""
    return json.dumps({"min_date": first.isoformat(), "max_date": last.isoformat()})


def build_feature_assets(partitions_def: dg.PartitionsDefinition, project: DbtProject, manifest: dict[str, Any]
                         ) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """The features' assets and checks for the daily partitions, on the project prepared for the warehouse
    backend in use (`feature_dbt_project`, `prepared_manifest`)."""
    translator = FeatureDbtTranslator(DagsterDbtTranslatorSettings(enable_code_references=True))

    @dbt_assets(
        manifest=manifest, project=project, select="tag:staging", name="feature_staging",
        dagster_dbt_translator=translator,
    )
    def feature_staging(context: dg.AssetExecutionContext, dbt: WarehouseDbtCliResource):
        """Views over the raw tables, and the dbt tests of keys, vocabularies and relationships.

        In a run over a range of days (the features step, the daily job's days) the tests read only the
        raw rows of those days, which are the rows that run added: re-testing the whole history made a
        daily run scan a year of events. Materialised on its own (no range), the tests read everything.
        """
        # cautious: a test that also reads the feature table (its relationship to stg_clients) runs
        # with the feature table, not before it exists
        args = ["build", "--indirect-selection", "cautious"]
        window = _run_window(context)
        if window is None:
            context.log.info("Building the staging views and testing every raw row")
        else:
            context.log.info(f"Building the staging views and testing the raw rows of {window[0]}..{window[1]}")
            args += ["--vars", window_vars(*window)]
        yield from dbt.cli(args, context=context).stream()

    @dbt_assets(
        manifest=manifest, project=project, select="tag:daily", name="daily_features",
        dagster_dbt_translator=translator, partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def daily_features(context: dg.AssetExecutionContext, dbt: WarehouseDbtCliResource, warehouse: WarehouseResource):
        """One dbt build for the whole partition range: features for every as-of date of it."""
        first, last = partition_dates(context)
        context.log.info(f"Building features as of {first}..{last} in one dbt run")
        invocation = dbt.cli(["build", "--vars", window_vars(first, last)], context=context, raise_on_error=False)
        # dbt holds the warehouse until it exits (DuckDB has one writer), so its events are collected and
        # the row metadata is read afterwards; dbt's own log streams to the run's compute logs meanwhile.
        events = list(invocation.stream())
        written = _written_metadata(warehouse, first, last) if invocation.is_successful() else {}
        days = (last - first).days + 1
        # recording a materialisation per partition takes a while for a long range: say so, not silence
        context.log.info(f"dbt finished; recording {days} partition{'s' if days > 1 else ''} of {FEATURE_MODEL}")
        for event in events:
            if isinstance(event, dg.Output) and context.asset_key_for_output(event.output_name) == FEATURES_KEY:
                event = event.with_metadata({**event.metadata, **written})
            yield event
        if not invocation.is_successful():
            raise invocation.get_error() or RuntimeError("dbt build failed; see the run's logs")

    @dg.asset_check(
        asset=FEATURES_KEY,
        blocking=True,
        description=(
            f"Share of non-null feature cells in the as-of dates just built, overall and per feature, is at "
            f"least {COMPLETENESS_THRESHOLD:.1%}."
        ),
    )
    def feature_completeness(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        first, last = _checked_window(context, warehouse)
        result = measure_completeness(warehouse, [f.name for f in load_feature_catalog()], first, last)
        below = result.below()
        worst = pd.Series(result.by_feature, name="non-null share").sort_values().head(5).rename_axis("feature").reset_index()
        return dg.AssetCheckResult(
            passed=result.passed(),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "as-of dates": f"{first}..{last}",
                "rows": result.rows,
                "completeness": dg.MetadataValue.float(result.overall),
                "threshold": COMPLETENESS_THRESHOLD,
                "features below threshold": len(below),
                "least complete features": dg.MetadataValue.md(markdown_table(worst)),
            },
        )

    @dg.asset_check(
        asset=FEATURES_KEY,
        description="The latest as-of date covers the latest day of raw events (features are not behind).",
    )
    def feature_freshness(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        result = measure_freshness(warehouse)
        yesterday = dt.date.today() - dt.timedelta(days=1)
        lag = (yesterday - result.latest_as_of_date).days if result.latest_as_of_date else None
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "latest as-of date": str(result.latest_as_of_date),
                "latest event date": str(result.latest_event_date),
                "days behind yesterday": lag,
            },
        )

    @dg.asset(
        name="feature_catalog",
        group_name=GROUP,
        kinds={"python", project.target},
        deps=[FEATURES_KEY],
        metadata={"schema": FEATURE_SCHEMA},
        description=(
            "One row per feature of client_features_daily: description, group, dtype, version, owner, entity, "
            "SQL hash, and its statistics on the latest as-of date."
        ),
    )
    def feature_catalog(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> pd.DataFrame:
        inputs = model_input_features()
        as_of = latest_as_of_date(warehouse)
        if as_of is None:
            raise dg.Failure(f"{FEATURE_MODEL} has no rows yet: materialize a partition of it first")
        stats = feature_statistics(warehouse, list(inputs.numeric), list(inputs.categorical), as_of)
        catalog = catalog_frame().merge(stats, on="name", how="left")
        catalog.insert(0, "statistics_as_of", pd.Timestamp(as_of))
        shown = ["name", "group", "dtype", "version", "owner", "description"]
        context.add_output_metadata({
            "features": len(catalog),
            "statistics as of": str(as_of),
            "catalog": dg.MetadataValue.md(markdown_table(catalog[shown])),
            "by group": dg.MetadataValue.md(markdown_table(catalog.groupby("group").size().rename("features").reset_index())),
            "statistics": dg.MetadataValue.table(
                records=[dg.TableRecord(_plain(r)) for r in catalog.drop(columns=["description", "statistics_as_of"]).to_dict("records")],
            ),
        })
        return catalog

    # the dbt translator links dbt assets to their SQL; the catalog gets a link to its Python here
    return ([feature_staging, daily_features, *dg.with_source_code_references([feature_catalog])],
            [feature_completeness, feature_freshness])


def _run_window(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date] | None:
    """The days of the run's partition range (its tags), for an unpartitioned asset that runs beside the
    daily ones; None when the run has no partitions."""
    tags = context.run.tags
    first = tags.get(PARTITION_RANGE_START_TAG, tags.get(PARTITION_TAG))
    last = tags.get(PARTITION_RANGE_END_TAG, tags.get(PARTITION_TAG))
    if first is None or last is None:
        return None
    return dt.date.fromisoformat(first), dt.date.fromisoformat(last)


def _checked_window(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> tuple[dt.date, dt.date]:
    """The as-of dates the run built; a check run on its own looks at the latest as-of date."""
    if context.has_partition_key_range:
        return partition_dates(context)
    latest = latest_as_of_date(warehouse) or dt.date.min
    return latest, latest


def _written_metadata(warehouse: WarehouseResource, first: dt.date, last: dt.date) -> dict[str, Any]:
    mix = window_summary(warehouse, first, last)
    rows = int(mix["client_days"].sum())
    days = (last - first).days + 1
    sample = warehouse.query(
        f"select {', '.join(PREVIEW_COLUMNS)} from {FEATURE_SCHEMA}.{FEATURE_MODEL}"
        " where as_of_date = ? order by client_id limit 10",
        [last],
    )
    return {
        "as-of dates": f"{first}..{last}",
        "rows in window": dg.MetadataValue.int(rows),
        "clients per as-of date": dg.MetadataValue.float(rows / days),
        "lifecycle segments": dg.MetadataValue.md(markdown_table(mix)),
        "preview": dg.MetadataValue.md(markdown_table(sample)),
    }


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """Table records take str/int/float/bool; NaN (no statistic) becomes None."""
    out = {}
    for key, value in record.items():
        if value is None or (isinstance(value, float) and pd.isna(value)):
            out[key] = None
        elif hasattr(value, "item"):
            out[key] = value.item()
        else:
            out[key] = value
    return out
