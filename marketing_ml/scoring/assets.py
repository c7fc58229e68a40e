"""Daily scoring as Dagster assets: thin wiring around `batch`, `context` and `segments`.

All assets are daily partitioned on `as_of_date` (schema `scoring`). `daily_predictions`,
`prediction_explanations` and `uplift_scores` are one step (`scored_clients`, a multi-asset): each day's
feature rows are read once and go through every champion, the outcome and next-best-action champions
and the uplift champions, instead of once per asset. Any one of them can still be materialised alone.
`client_segments` reads the day's predictions through the IO manager. A backfill of a range is one run
that works day by day, so memory stays bounded by one day of clients.
"""

import dagster as dg
import pandas as pd

from marketing_ml.decisions.day import EFFECT_COLUMNS, score_uplift, version_column
from marketing_ml.features.catalog import FEATURE_MODEL
from marketing_ml.metadata import markdown_table, preview
from marketing_ml.partitions import daily_asset, partition_days
from marketing_ml.registry.tasks import OUTCOME_TASKS, TASK_NAMES, champion_key
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.scoring.batch import explain_clients, load_champions, score_clients, score_days
from marketing_ml.scoring.context import with_client_context
from marketing_ml.scoring.segments import client_segments as segments_of_day
from marketing_ml.simulation.effects import INTERVENTION_NAMES
from marketing_ml.uplift.assets import CHAMPIONS as UPLIFT_CHAMPIONS
from marketing_ml.uplift.store import uplift_champions

GROUP = "scoring"
SCORING_SCHEMA = "scoring"
FEATURES = dg.AssetKey(FEATURE_MODEL)
CHAMPIONS = [champion_key(task) for task in TASK_NAMES]

SCORED = {
    "daily_predictions": (
        "One row per client active on the day: P(conversion within 30 days) (empty once converted), "
        "P(churn within 90 days), the response probability of each next-best action and the recommended "
        "one, and the champion model versions that produced them.", CHAMPIONS),
    "prediction_explanations": (
        "One row per scored client: the three features that raised its conversion and its churn score "
        "most, with their contributions (exact additive attributions of the champion's family).",
        [champion_key(task) for task in OUTCOME_TASKS]),
    "uplift_scores": (
        "One row per active client: the uplift champions' predicted effect of an advisor's outreach on "
        "P(conversion) and of a retention call on P(churn) within their horizons (empty where an "
        "intervention has no champion), with the versions that produced them.", [dg.AssetKey(UPLIFT_CHAMPIONS)]),
}


def build_scoring_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.multi_asset(
        outs={name: dg.AssetOut(description=text, metadata={"schema": SCORING_SCHEMA, "partition_expr": "as_of_date"},
                                kinds={"python", "mlflow", "duckdb"}, is_required=False)
              for name, (text, _) in SCORED.items()},
        deps=[FEATURES, *CHAMPIONS, dg.AssetKey(UPLIFT_CHAMPIONS)],
        internal_asset_deps={name: {FEATURES, *upstream} for name, (_, upstream) in SCORED.items()},
        name="scored_clients", group_name=GROUP, partitions_def=partitions, can_subset=True,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description="The day's feature rows, read once, through every champion: predictions, their "
                    "explanations and the uplift scores.",
    )
    def scored_clients(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource):
        selected = [name for name in SCORED if dg.AssetKey(name) in context.selected_asset_keys]
        scorers = {}
        if {"daily_predictions", "prediction_explanations"} & set(selected):
            champions = load_champions(mlflow.tracking_uri)
            context.log.info("champions: " + ", ".join(f"{t} v{m.version}" for t, m in champions.items()))
            if "daily_predictions" in selected:
                scorers["daily_predictions"] = lambda f: score_clients(f, champions)
            if "prediction_explanations" in selected:
                scorers["prediction_explanations"] = lambda f: explain_clients(f, champions)
        if "uplift_scores" in selected:
            effects = uplift_champions(mlflow.tracking_uri)
            for intervention in INTERVENTION_NAMES:
                context.log.info(f"{intervention}: " + (f"uplift champion v{effects[intervention].version}"
                                                        if intervention in effects else "no uplift champion"))
            scorers["uplift_scores"] = lambda f: score_uplift(f, effects)
        scored = score_days(warehouse, partition_days(context), scorers, context.log.info)
        for name, frame in scored.items():
            yield dg.Output(frame, output_name=name, metadata={**SCORED_METADATA[name](frame), "preview": preview(frame)})

    @dg.asset(
        ins={"daily_predictions": dg.AssetIn()},
        **daily_asset(
            "client_segments", GROUP, SCORING_SCHEMA,
            "One row per lifecycle x value tier x churn-risk segment of the day: size, share and average scores.",
            partitions,
        ),
    )
    def client_segments(context: dg.AssetExecutionContext, warehouse: WarehouseResource, daily_predictions: pd.DataFrame) -> pd.DataFrame:
        scored = with_client_context(warehouse, daily_predictions, partition_days(context))
        segments = pd.concat(
            [segments_of_day(day).assign(as_of_date=d) for d, day in scored.groupby("as_of_date")], ignore_index=True
        )
        context.add_output_metadata({"segments": dg.MetadataValue.md(markdown_table(segments.head(20)))})
        return segments

    return [scored_clients, client_segments]


def _prediction_metadata(predictions: pd.DataFrame) -> dict:
    versions = {t: str(predictions[f"{t}_model_version"].iloc[0]) for t in TASK_NAMES} if len(predictions) else {}
    return {
        "model_versions": dg.MetadataValue.json(versions),
        "mean_p_conversion": float(predictions["p_conversion"].mean()),
        "mean_p_churn": float(predictions["p_churn"].mean()),
        "recommended_actions": dg.MetadataValue.md(
            markdown_table(predictions["recommended_action"].value_counts(normalize=True).rename("share").reset_index())
        ),
    }


def _explanation_metadata(explained: pd.DataFrame) -> dict:
    top = pd.concat(
        [explained[f"{task}_reason_1"].value_counts().rename("clients").rename_axis("feature").reset_index().assign(task=task)
         for task in OUTCOME_TASKS],
        ignore_index=True,
    ).sort_values("clients", ascending=False).head(12)
    return {"most frequent top reason": dg.MetadataValue.md(markdown_table(top))}


def _uplift_metadata(scores: pd.DataFrame) -> dict:
    versions = {i: str(scores[version_column(i)].iloc[0]) for i in INTERVENTION_NAMES
                if len(scores) and scores[version_column(i)].notna().any()}
    return {"model_versions": dg.MetadataValue.json(versions),
            **{f"mean_{c}": float(scores[c].mean()) for c in EFFECT_COLUMNS.values() if scores[c].notna().any()}}


SCORED_METADATA = {"daily_predictions": _prediction_metadata, "prediction_explanations": _explanation_metadata,
                   "uplift_scores": _uplift_metadata}
