"""The day's decisions as Dagster assets: thin wiring around `business` and `impact`.

Daily partitioned on `as_of_date` (schema `scoring`); each reads the day's predictions through the IO
manager and writes whom to contact, with what, and what that is worth.
"""

import dagster as dg
import pandas as pd
from pydantic import Field

from marketing_ml.decisions import business, impact
from marketing_ml.metadata import markdown_table, preview
from marketing_ml.partitions import daily_asset, partition_days
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.scoring.context import with_client_context
from marketing_ml.simulation.vocabulary import ACTION_NAMES

GROUP = "scoring"
SCHEMA = "scoring"


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


def build_decision_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        ins={"daily_predictions": dg.AssetIn(), "prediction_explanations": dg.AssetIn()},
        **daily_asset(
            "advisor_queue", GROUP, SCHEMA,
            "Each advisor's morning list: not-yet-converted clients ranked by expected advisory revenue "
            "(P(conversion) x annual fee on the assets they would bring), capped per advisor, with reasons.",
            partitions,
        ),
    )
    def advisor_queue(
        context: dg.AssetExecutionContext, config: BusinessConfig, warehouse: WarehouseResource,
        daily_predictions: pd.DataFrame, prediction_explanations: pd.DataFrame,
    ) -> pd.DataFrame:
        scored = with_client_context(warehouse, daily_predictions, partition_days(context))
        queue = business.advisor_queues(scored, prediction_explanations, config.assumptions())
        context.add_output_metadata(
            {"advisors": int(queue["advisor_id"].nunique()), "expected_value_usd": float(queue["expected_value"].sum()),
             "preview": preview(queue)}
        )
        return queue

    @dg.asset(
        ins={"daily_predictions": dg.AssetIn()},
        **daily_asset(
            "campaign_targets", GROUP, SCHEMA,
            "One row per client to contact today: the action with the best expected incremental response "
            "over no contact, chosen by response per dollar until the daily budget is spent.",
            partitions,
        ),
    )
    def campaign_targets(context: dg.AssetExecutionContext, config: BusinessConfig, daily_predictions: pd.DataFrame) -> pd.DataFrame:
        targets = business.campaign_plans(daily_predictions, ACTION_NAMES, config.assumptions())
        context.add_output_metadata({
            "per action": dg.MetadataValue.md(markdown_table(business.campaign_summary(targets))), "preview": preview(targets),
        })
        return targets

    @dg.asset(
        ins={"daily_predictions": dg.AssetIn()},
        **daily_asset(
            "business_impact", GROUP, SCHEMA,
            "One row per use case x policy of the day: expected conversions, churn saves and responses when "
            "targeting with the models, at random and with the simulator's truth (oracle) at the same "
            "capacity, with lift, captured share and revenue under the stated assumptions.",
            partitions,
        ),
    )
    def business_impact(
        context: dg.AssetExecutionContext, config: BusinessConfig, warehouse: WarehouseResource, daily_predictions: pd.DataFrame
    ) -> pd.DataFrame:
        a = config.assumptions()
        days = partition_days(context)
        scored = with_client_context(warehouse, daily_predictions, days)
        table = impact.business_impact(scored, impact.true_probabilities(warehouse, days), a)
        latest = table[table["as_of_date"] == table["as_of_date"].max()]
        context.add_output_metadata(
            {
                "impact (latest day)": dg.MetadataValue.md(markdown_table(latest.drop(columns=["as_of_date"]))),
                "assumptions": dg.MetadataValue.md(markdown_table(a.as_table())),
                "plot": dg.MetadataValue.md(impact.impact_plot(latest)),
                **impact.headline_figures(latest),
            }
        )
        return table

    return [advisor_queue, campaign_targets, business_impact]
