"""Daily scoring as Dagster assets: thin wiring around `batch`, `context` and `segments`.

All assets are daily partitioned on `as_of_date` (schema `scoring`): `daily_predictions` and
`prediction_explanations` read the day's feature rows with SQL and the champions from the MLflow
registry; `client_segments` reads the day's predictions through the IO manager. A backfill of a range is
one run that works day by day, so memory stays bounded by one day of clients.
"""

import dagster as dg
import pandas as pd

from marketing_ml.features.catalog import FEATURE_MODEL
from marketing_ml.metadata import markdown_table, preview
from marketing_ml.partitions import daily_asset, partition_days
from marketing_ml.registry.tasks import OUTCOME_TASKS, TASK_NAMES, champion_key
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.scoring.batch import explain_clients, features_of_day, load_champions, score_clients
from marketing_ml.scoring.context import with_client_context
from marketing_ml.scoring.segments import client_segments as segments_of_day

GROUP = "scoring"
SCORING_SCHEMA = "scoring"
FEATURES = dg.AssetKey(FEATURE_MODEL)
CHAMPIONS = [champion_key(task) for task in TASK_NAMES]


def build_scoring_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        **daily_asset(
            "daily_predictions", GROUP, SCORING_SCHEMA,
            "One row per client active on the day: P(conversion within 30 days) (empty once converted), "
            "P(churn within 90 days), the response probability of each next-best action and the recommended "
            "one, and the champion model versions that produced them.",
            partitions, deps=[FEATURES, *CHAMPIONS], kinds=("python", "mlflow", "duckdb"),
        ),
    )
    def daily_predictions(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource) -> pd.DataFrame:
        champions = load_champions(mlflow.tracking_uri)
        context.log.info("champions: " + ", ".join(f"{t} v{m.version}" for t, m in champions.items()))
        days = []
        for day in partition_days(context):
            features = features_of_day(warehouse, day)
            days.append(score_clients(features, champions))
            context.log.info(f"{day}: scored {len(features):,} clients")
        predictions = pd.concat(days, ignore_index=True)
        context.add_output_metadata(
            {
                "model_versions": dg.MetadataValue.json({t: m.version for t, m in champions.items()}),
                "mean_p_conversion": float(predictions["p_conversion"].mean()),
                "mean_p_churn": float(predictions["p_churn"].mean()),
                "recommended_actions": dg.MetadataValue.md(
                    markdown_table(predictions["recommended_action"].value_counts(normalize=True).rename("share").reset_index())
                ),
                "preview": preview(predictions),
            }
        )
        return predictions

    @dg.asset(
        **daily_asset(
            "prediction_explanations", GROUP, SCORING_SCHEMA,
            "One row per scored client: the three features that raised its conversion and its churn score "
            "most, with their contributions (exact additive attributions of the champion's family).",
            partitions, deps=[FEATURES, *CHAMPIONS], kinds=("python", "mlflow", "duckdb"),
        ),
    )
    def prediction_explanations(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource) -> pd.DataFrame:
        champions = load_champions(mlflow.tracking_uri)
        days = []
        for day in partition_days(context):
            days.append(explain_clients(features_of_day(warehouse, day), champions))
            context.log.info(f"{day}: explained {len(days[-1]):,} clients")
        explained = pd.concat(days, ignore_index=True)
        top = pd.concat(
            [explained[f"{task}_reason_1"].value_counts().rename("clients").rename_axis("feature").reset_index().assign(task=task)
             for task in OUTCOME_TASKS],
            ignore_index=True,
        ).sort_values("clients", ascending=False).head(12)
        context.add_output_metadata({"most frequent top reason": dg.MetadataValue.md(markdown_table(top)), "preview": preview(explained)})
        return explained

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

    return [daily_predictions, prediction_explanations, client_segments]
