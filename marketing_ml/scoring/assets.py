"""Daily scoring and business outputs as Dagster assets: thin wiring around `batch` and `business`.

All assets are daily partitioned on `as_of_date` (schema `scoring`): `daily_predictions` and
`prediction_explanations` read the day's feature rows with SQL and the champions from the MLflow
registry; the business outputs read the day's predictions through the IO manager. A backfill of a
range is one run that works day by day, so memory stays bounded by one day of clients.
"""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from marketing_ml.metadata import figure_markdown, markdown_table, preview
from marketing_ml.partitions import partition_dates
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.scoring import business
from marketing_ml.scoring.batch import TASKS, explain_clients, score_clients
from marketing_ml.simulation.vocabulary import ACTION_NAMES
from marketing_ml.training.evaluation import oracle_horizon_probability, policy_evaluation
from marketing_ml.training.predictor import LoadedModel, load_champion

SCORING_SCHEMA = "scoring"
FEATURES = dg.AssetKey("client_features_daily")
CHAMPIONS = [dg.AssetKey(f"{task}_champion") for task in TASKS]


class BusinessConfig(dg.Config):
    """The commercial assumptions behind every dollar figure; see `business.BusinessAssumptions`."""

    advisory_fee_rate: float = Field(default=0.0075, description="Annual advisory fee on assets under advice.")
    advisory_asset_share: float = Field(default=0.5, description="Share of investable assets a new advisory client brings.")
    plan_fee_rate: float = Field(default=0.004, description="Annual plan revenue on a retained 401(k) balance.")
    churn_save_rate: float = Field(default=0.25, description="Share of contacted would-be leavers a retention call keeps.")
    advisor_daily_capacity: int = Field(default=8, description="Queue entries per advisor per day.")
    retention_daily_capacity: int = Field(default=200, description="Retention calls per day.")
    campaign_daily_budget_usd: float = Field(default=2_000.0, description="Daily marketing budget for campaign targets.")

    def assumptions(self) -> business.BusinessAssumptions:
        return business.BusinessAssumptions(**self.model_dump())


def _daily(name: str, description: str, deps=(), kinds=("python", "duckdb")) -> dict:
    return dict(
        name=name,
        group_name="scoring",
        kinds=set(kinds),
        deps=list(deps),
        description=description,
        metadata={"schema": SCORING_SCHEMA, "partition_expr": "as_of_date"},
        backfill_policy=dg.BackfillPolicy.single_run(),
    )


def _days(context: dg.AssetExecutionContext) -> list[dt.date]:
    first, last = partition_dates(context)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _features_of(warehouse: WarehouseResource, day: dt.date) -> pd.DataFrame:
    return warehouse.query("select * from features.client_features_daily where as_of_date = ?", [day])


def _champions(mlflow: MLflowResource) -> dict[str, LoadedModel]:
    return {task: load_champion(task, mlflow.tracking_uri) for task in TASKS}


def build_scoring_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions,
        **_daily(
            "daily_predictions",
            "One row per client active on the day: P(conversion within 30 days) (empty once converted), "
            "P(churn within 90 days), the response probability of each next-best action and the recommended "
            "one, and the champion model versions that produced them.",
            deps=[FEATURES, *CHAMPIONS],
            kinds=("python", "mlflow", "duckdb"),
        ),
    )
    def daily_predictions(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource) -> pd.DataFrame:
        champions = _champions(mlflow)
        context.log.info("champions: " + ", ".join(f"{t} v{m.version}" for t, m in champions.items()))
        days = []
        for day in _days(context):
            features = _features_of(warehouse, day)
            if features.empty:
                raise dg.Failure(f"no feature rows for {day}: build the features step for that day first")
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
        partitions_def=partitions,
        **_daily(
            "prediction_explanations",
            "One row per scored client: the three features that raised its conversion and its churn score "
            "most, with their contributions (exact additive attributions of the champion's family).",
            deps=[FEATURES, *CHAMPIONS],
            kinds=("python", "mlflow", "duckdb"),
        ),
    )
    def prediction_explanations(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource) -> pd.DataFrame:
        champions = _champions(mlflow)
        explained = pd.concat([explain_clients(_features_of(warehouse, day), champions) for day in _days(context)], ignore_index=True)
        top = pd.concat(
            [explained[f"{task}_reason_1"].value_counts().rename("clients").rename_axis("feature").reset_index().assign(task=task)
             for task in ("conversion", "churn")],
            ignore_index=True,
        ).sort_values("clients", ascending=False).head(12)
        context.add_output_metadata({"most frequent top reason": dg.MetadataValue.md(markdown_table(top)), "preview": preview(explained)})
        return explained

    @dg.asset(
        partitions_def=partitions,
        ins={"daily_predictions": dg.AssetIn(), "prediction_explanations": dg.AssetIn()},
        **_daily(
            "advisor_queue",
            "Each advisor's morning list: not-yet-converted clients ranked by expected advisory revenue "
            "(P(conversion) x annual fee on the assets they would bring), capped per advisor, with reasons.",
        ),
    )
    def advisor_queue(
        context: dg.AssetExecutionContext, config: BusinessConfig, warehouse: WarehouseResource,
        daily_predictions: pd.DataFrame, prediction_explanations: pd.DataFrame,
    ) -> pd.DataFrame:
        a = config.assumptions()
        scored = _with_client_context(warehouse, daily_predictions, _days(context))
        scored = scored[scored["p_conversion"].notna()].merge(
            prediction_explanations[["client_id", "as_of_date", "conversion_reason_1", "conversion_reason_2", "conversion_reason_3"]],
            on=["client_id", "as_of_date"], how="left",
        )
        queue = pd.concat([business.advisor_queue(day, a) for _, day in scored.groupby("as_of_date")], ignore_index=True)
        queue = queue[["as_of_date", "advisor_id", "rank", "client_id", "expected_value", "p_conversion", "investable_assets",
                       "conversion_reason_1", "conversion_reason_2", "conversion_reason_3"]]
        context.add_output_metadata(
            {"advisors": int(queue["advisor_id"].nunique()), "expected_value_usd": float(queue["expected_value"].sum()),
             "preview": preview(queue)}
        )
        return queue

    @dg.asset(
        partitions_def=partitions,
        ins={"daily_predictions": dg.AssetIn()},
        **_daily(
            "campaign_targets",
            "One row per client to contact today: the action with the best expected incremental response "
            "over no contact, chosen by response per dollar until the daily budget is spent.",
        ),
    )
    def campaign_targets(context: dg.AssetExecutionContext, config: BusinessConfig, daily_predictions: pd.DataFrame) -> pd.DataFrame:
        a = config.assumptions()
        plans = []
        for day, scores in daily_predictions.groupby("as_of_date"):
            plans.append(business.campaign_targets(scores, ACTION_NAMES, a).assign(as_of_date=day))
        targets = pd.concat(plans, ignore_index=True)
        summary = targets.groupby("action").agg(
            clients=("client_id", "size"), expected_responses=("expected_response", "sum"),
            incremental_responses=("expected_incremental_response", "sum"), cost_usd=("cost_usd", "sum"),
        ).reset_index()
        context.add_output_metadata({"per action": dg.MetadataValue.md(markdown_table(summary)), "preview": preview(targets)})
        return targets

    @dg.asset(
        partitions_def=partitions,
        ins={"daily_predictions": dg.AssetIn()},
        **_daily(
            "client_segments",
            "One row per lifecycle x value tier x churn-risk segment of the day: size, share and average scores.",
        ),
    )
    def client_segments(context: dg.AssetExecutionContext, warehouse: WarehouseResource, daily_predictions: pd.DataFrame) -> pd.DataFrame:
        scored = _with_client_context(warehouse, daily_predictions, _days(context))
        segments = pd.concat(
            [business.client_segments(day).assign(as_of_date=d) for d, day in scored.groupby("as_of_date")], ignore_index=True
        )
        context.add_output_metadata({"segments": dg.MetadataValue.md(markdown_table(segments.head(20)))})
        return segments

    @dg.asset(
        partitions_def=partitions,
        ins={"daily_predictions": dg.AssetIn()},
        **_daily(
            "business_impact",
            "One row per use case x policy of the day: expected conversions, churn saves and responses when "
            "targeting with the models, at random and with the simulator's truth (oracle) at the same "
            "capacity, with lift, captured share and revenue under the stated assumptions.",
        ),
    )
    def business_impact(
        context: dg.AssetExecutionContext, config: BusinessConfig, warehouse: WarehouseResource, daily_predictions: pd.DataFrame
    ) -> pd.DataFrame:
        a = config.assumptions()
        days = _days(context)
        scored = _with_client_context(warehouse, daily_predictions, days)
        truth = _truth(warehouse, days)
        tables = [impact_of_day(day, rows.merge(truth, on=["client_id", "as_of_date"]), a) for day, rows in scored.groupby("as_of_date")]
        impact = pd.concat(tables, ignore_index=True)
        latest = impact[impact["as_of_date"] == impact["as_of_date"].max()]
        context.add_output_metadata(
            {
                "impact (latest day)": dg.MetadataValue.md(markdown_table(latest.drop(columns=["as_of_date"]))),
                "assumptions": dg.MetadataValue.md(markdown_table(a.as_table())),
                "plot": dg.MetadataValue.md(impact_plot(latest)),
                **headline_figures(latest),
            }
        )
        return impact

    return [daily_predictions, prediction_explanations, advisor_queue, campaign_targets, client_segments, business_impact]


def _with_client_context(warehouse: WarehouseResource, predictions: pd.DataFrame, days: list[dt.date]) -> pd.DataFrame:
    """Predictions joined to what the business outputs need from features and the client record."""
    context = warehouse.query(
        """select f.client_id, f.as_of_date, f.investable_assets, f.lifecycle_segment, c.assigned_advisor_id as advisor_id
           from features.client_features_daily f join raw.raw_clients c using (client_id)
           where f.as_of_date between ? and ?""",
        [min(days), max(days)],
    )
    return predictions.merge(context, on=["client_id", "as_of_date"], how="left")


def _truth(warehouse: WarehouseResource, days: list[dt.date]) -> pd.DataFrame:
    """The simulator's truth for the days (evaluation only): daily hazards and action response probabilities."""
    actions = ", ".join(f"t.p_response_{a}" for a in ACTION_NAMES)
    return warehouse.query(
        f"""select h.client_id, h.as_of_date, h.p_conversion_daily, h.p_churn_daily, {actions}
            from ground_truth.true_daily_hazards h join ground_truth.true_client_traits t using (client_id)
            where h.as_of_date between ? and ?""",
        [min(days), max(days)],
    )


def impact_of_day(day, rows: pd.DataFrame, a: business.BusinessAssumptions) -> pd.DataFrame:
    """Model vs random vs oracle for the three use cases on one day's clients."""
    eligible = rows[rows["p_conversion"].notna()]
    conversion = business.targeting_comparison(
        eligible["p_conversion"].to_numpy(),
        oracle_horizon_probability(eligible["p_conversion_daily"], a.conversion_horizon_days),
        business.advisory_revenue(eligible["investable_assets"], a),
        k=a.advisor_daily_capacity * max(int(rows["advisor_id"].nunique()), 1),
    )
    p_churn_true = oracle_horizon_probability(rows["p_churn_daily"], a.churn_horizon_days)
    churn = business.targeting_comparison(
        rows["p_churn"].to_numpy(), p_churn_true,
        # a save keeps the balance's plan revenue for a year; value per contacted leaver
        a.churn_save_rate * rows["investable_assets"].to_numpy() * a.plan_fee_rate, k=a.retention_daily_capacity,
    )
    truth = rows[[f"p_response_{x}" for x in ACTION_NAMES]].to_numpy()
    recommended = pd.Categorical(rows["recommended_action"], categories=ACTION_NAMES).codes
    policy = policy_evaluation(recommended, truth, ACTION_NAMES, baseline_action=ACTION_NAMES.index("no_contact"))
    n = len(rows)
    nba = {
        name: {"contacts": float(n), "expected_outcomes": float(policy[key] * n), "expected_value": float(policy[key] * n)}
        for name, key in (("model", "policy_value"), ("random", "policy_value_random"), ("oracle", "policy_value_oracle"))
    }
    table = business.impact_table({"conversion": conversion, "churn": churn, "next_best_action": nba})
    # churn outcomes are expected leavers reached; saves are the share a retention call keeps
    is_churn = table["use_case"] == "churn"
    table.loc[is_churn, "expected_outcomes"] *= a.churn_save_rate
    table["annual_revenue_usd"] = np.where(table["use_case"] == "next_best_action", np.nan, table["expected_value"])
    return table.assign(as_of_date=day).drop(columns=["expected_value"])


def headline_figures(latest: pd.DataFrame) -> dict[str, float]:
    """The demo's headline numbers, computed: lift over random and incremental revenue of one day's targeting."""
    by = latest.set_index(["use_case", "policy"])
    out = {}
    for use_case in ("conversion", "churn", "next_best_action"):
        out[f"{use_case}_lift_vs_random_pct"] = float(by.loc[(use_case, "model"), "lift_vs_random_pct"])
    incremental = sum(
        by.loc[(u, "model"), "annual_revenue_usd"] - by.loc[(u, "random"), "annual_revenue_usd"] for u in ("conversion", "churn")
    )
    out["incremental_annual_revenue_usd_per_day_of_targeting"] = float(incremental)
    # a month of daily targeting at this day's rate: a projection, labelled as such
    out["incremental_annual_revenue_usd_30_days_projection"] = float(incremental * 30)
    return out


def impact_plot(latest: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, use_case, label in zip(
        axes, ("conversion", "churn", "next_best_action"), ("expected conversions", "expected churn saves", "expected responses")
    ):
        rows = latest[latest["use_case"] == use_case].set_index("policy").loc[["random", "model", "oracle"]]
        ax.bar(rows.index, rows["expected_outcomes"], color=["#999999", "#4C72B0", "#55A868"])
        ax.set_title(use_case.replace("_", " "))
        ax.set_ylabel(label)
    fig.tight_layout()
    return figure_markdown(fig, "model vs random vs oracle")
