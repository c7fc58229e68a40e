"""The day's decisions as Dagster assets: thin wiring around `day`, `business`, `reasons` and `impact`.

Daily partitioned on `as_of_date` (schema `scoring`), from the day's `daily_predictions` and
`uplift_scores` (the uplift champions' effect of each call on every active client, scored with the
predictions in `marketing_ml.scoring`):
- `advisor_queue`, `retention_list`, `campaign_targets`: one step (a multi-asset), because a client gets
  one contact a day across the three and each day's lists depend on who the earlier days' lists contacted;
- `business_impact`: those lists against random, value-only, propensity and the oracle (true effects); on
  a provider's data (no ground truth) against random, value-only and propensity, counted with the models'
  estimate of what each chosen contact causes, and labelled so.
"""

import datetime as dt
import functools
from collections.abc import Callable

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from marketing_ml.decisions import business, contacts, impact, reasons
from marketing_ml.decisions.day import EFFECT_COLUMNS, DayInputs, day_inputs, missing_champions
from marketing_ml.metadata import markdown_table, preview
from marketing_ml.partitions import by_day, daily_asset, partition_days
from marketing_ml.registry.predictor import load_champion
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.scoring.batch import FeatureDays
from marketing_ml.settings import NO_GROUND_TRUTH
from marketing_ml.uplift.store import PRIMARY_OUTCOME, UpliftChampion, uplift_champions

GROUP = "scoring"
SCHEMA = contacts.SCHEMA


class BusinessConfig(dg.Config):
    """The commercial assumptions and contact rules; see `business.BusinessAssumptions`."""

    advisory_fee_rate: float = Field(default=0.0075, description="Annual advisory fee on assets under advice.")
    advisory_asset_share: float = Field(default=0.5, description="Share of investable assets a new advisory client brings.")
    plan_fee_rate: float = Field(default=0.004, description="Annual plan revenue on a retained 401(k) balance.")
    response_value_usd: float = Field(default=20.0, description="Value of one campaign response.")
    advisor_outreach_cost_usd: float = Field(default=60.0, description="Cost of one advisor outreach call.")
    retention_call_cost_usd: float = Field(default=35.0, description="Cost of one retention call with its offer.")
    advisor_daily_capacity: int = Field(default=8, description="Queue entries per advisor per day.")
    retention_daily_capacity: int = Field(default=200, description="Retention calls per day.")
    campaign_daily_budget_usd: float = Field(default=2_000.0, description="Daily budget of campaign targets.")
    call_cooldown_days: int = Field(default=90, description="No call to a client called in the last N days "
                                    "(logged outreach or retention calls, and the platform's earlier lists).")
    campaign_cooldown_days: int = Field(default=14, description="No campaign to a client touched by one in the last N days.")
    campaign_action_costs_usd: dict[str, float] = Field(
        default_factory=lambda: dict(business.DEFAULT_ACTION_COSTS), description="Cost of one contact per campaign action.")

    def assumptions(self) -> business.BusinessAssumptions:
        return business.BusinessAssumptions(**self.model_dump())


def decide_days(warehouse: WarehouseResource, days: list[dt.date], predictions: pd.DataFrame, uplift: pd.DataFrame,
                a: business.BusinessAssumptions,
                decide: Callable[[dt.date, DayInputs], dict[str, pd.DataFrame]]) -> None:
    """`decide(day, inputs)` for each day in turn; the lists it returns count as contacts for the run's later
    days (the lists being built, or the built ones read back), so a range in one run and its days one at a
    time decide the same. The day-by-day reads share one warehouse session."""
    with warehouse.session():
        clients = contacts.pool_of_days(warehouse, days[0], days[-1])
        clients_of, predictions_of, uplift_of = by_day(clients), by_day(predictions), by_day(uplift)
        # the run's own contacts so far (client -> day; repeats are fine, `days_since` takes the latest), a
        # series grown per day: a dict of ~100k campaign contacts by the end of a 35-day run, made into a
        # series every day, cost more than the day's decisions
        in_run = {"calls": pd.Series(dtype="datetime64[ns]"), "campaigns": pd.Series(dtype="datetime64[ns]")}
        for day in days:
            calls, campaigns = contacts.logged_contacts(warehouse, a, day, days[0])
            inputs = day_inputs(clients_of(day).drop(columns=["as_of_date"]), predictions_of(day), uplift_of(day),
                                contacts.days_since(calls, in_run["calls"], day),
                                contacts.days_since(campaigns, in_run["campaigns"], day), a)
            for name, rows in decide(day, inputs).items():
                kind = "campaigns" if name == "campaign_targets" else "calls"
                listed = pd.Series(pd.Timestamp(day), index=rows["client_id"].to_numpy())
                if len(listed):  # pandas deprecates concatenating an empty series
                    in_run[kind] = listed if in_run[kind].empty else pd.concat([in_run[kind], listed])


def build_decision_assets(partitions: dg.PartitionsDefinition, ground_truth: bool) -> list[dg.AssetsDefinition]:
    """The decision assets; `ground_truth` (`Settings.ground_truth`): whether business impact is counted
    with the simulator's true effects or with the models' estimate."""
    outs = {
        "advisor_queue": (
            "Each advisor's morning list: at most `advisor_daily_capacity` clients by expected incremental "
            "annual advisory revenue of a call (uplift on conversion x revenue) minus its cost, only where "
            "positive; reasons are the features that make the call more effective for the client. Falls back "
            "to P(conversion) x revenue, said so in `ranked_by`, while there is no uplift champion."),
        "retention_list": (
            "The `retention_daily_capacity` clients with the largest expected saved plan revenue of a "
            "retention call (uplift on churn x 401(k) balance x plan fee); never a client the call is "
            "expected to push out; reasons as for the advisor queue."),
        "campaign_targets": (
            "One action per client (or none): the one with the largest expected incremental response value "
            "minus its cost (the next-best-action champion's uplift over no contact), by net value per dollar "
            "within the daily budget."),
    }

    @dg.multi_asset(
        outs={name: dg.AssetOut(description=text, metadata={"schema": SCHEMA, "partition_expr": "as_of_date"},
                                kinds={"python", "duckdb"}) for name, text in outs.items()},
        ins={"daily_predictions": dg.AssetIn(), "uplift_scores": dg.AssetIn()},
        name="contact_lists", group_name=GROUP, partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        description="The day's three contact lists, one contact per client across them (priority: advisor "
                    "queue, retention list, campaigns), under the contact rules.",
    )
    def contact_lists(context: dg.AssetExecutionContext, config: BusinessConfig, warehouse: WarehouseResource,
                      mlflow: MLflowResource, daily_predictions: pd.DataFrame, uplift_scores: pd.DataFrame):
        a = config.assumptions()
        champions = uplift_champions(mlflow.tracking_uri)
        days = partition_days(context)
        built: dict[str, list[pd.DataFrame]] = {name: [] for name in outs}
        notes: list[str] = []

        def decide(day: dt.date, inputs: DayInputs) -> dict[str, pd.DataFrame]:
            if day == days[0]:
                notes.extend(missing_champions(inputs))
                for note in notes:
                    context.log.warning(note)
            # one read of the day's feature rows (in the session): a query for a few hundred listed ids
            # costs as much as the day (measured), and the typical values need the day anyway
            lists = lists_of_day(inputs, champions, feature_days.frame(day), a)
            for name, rows in lists.items():
                built[name].append(rows.assign(as_of_date=pd.Timestamp(day)))
            context.log.info(f"{day} ({len(built['advisor_queue'])}/{len(days)}): "
                             + ", ".join(f"{len(rows):,} {name.replace('_', ' ')}" for name, rows in lists.items()))
            return lists

        with warehouse.session(), FeatureDays(warehouse, days) as feature_days:
            decide_days(warehouse, days, daily_predictions, uplift_scores, a, decide)
        for name in outs:
            frame = pd.concat(built[name], ignore_index=True)
            yield dg.Output(frame, output_name=name, metadata={
                "rows": len(frame), "ranked_by": str(frame["ranked_by"].iloc[0]) if len(frame) else "",
                **({"per action": dg.MetadataValue.md(markdown_table(business.campaign_summary(frame)))}
                   if name == "campaign_targets" else {}),
                **({"fallback": dg.MetadataValue.md("\n".join(f"- {n}" for n in notes))} if notes else {}),
                "preview": preview(frame),
            })

    if ground_truth:
        counted = ("counted with the simulator's true effects, and the oracle (the same selection on the true "
                   "effects)")
    else:
        counted = (f"counted with {impact.MODEL_ESTIMATE}: the uplift champions' predicted effect of each "
                   "policy's chosen calls and the next-best-action champion's response uplift of its campaigns; no "
                   "oracle, and a call list without an uplift champion is not judged (the true effects are "
                   f"{NO_GROUND_TRUTH})")

    @dg.asset(
        ins={name: dg.AssetIn() for name in ("daily_predictions", "uplift_scores", *outs)},
        **daily_asset(
            "business_impact", GROUP, SCHEMA,
            "One row per list x policy of the day: the platform's lists (uplift) against random, value-only and "
            "propensity in the same pool with the same calls and spend: contacts, cost, incremental outcomes and "
            f"revenue, ROI, {counted}; `counted_from` says which.",
            partitions, deps=["true_daily_hazards", "true_client_traits"] if ground_truth else [],
        ),
    )
    def business_impact(context: dg.AssetExecutionContext, config: BusinessConfig, warehouse: WarehouseResource,
                        mlflow: MLflowResource, daily_predictions: pd.DataFrame, uplift_scores: pd.DataFrame,
                        advisor_queue: pd.DataFrame, retention_list: pd.DataFrame,
                        campaign_targets: pd.DataFrame) -> pd.DataFrame:
        a = config.assumptions()
        days = partition_days(context)
        horizons = champion_horizons(mlflow.tracking_uri)
        truth = truth_of_days(warehouse, days[0], days[-1]) if ground_truth else None
        listed = {"advisor_queue": by_day(advisor_queue), "retention_list": by_day(retention_list),
                  "campaign_targets": by_day(campaign_targets)}
        truth_of = by_day(truth) if truth is not None else None
        tables = []
        notes: list[str] = []

        def judge(day: dt.date, inputs: DayInputs) -> dict[str, pd.DataFrame]:
            if day == days[0] and not ground_truth:
                notes.extend(impact.unjudged_lists(inputs.uplift_lists))
                for note in notes:
                    context.log.warning(note)
            lists = {name: rows_of(day) for name, rows_of in listed.items()}
            gains = day_gains(inputs, truth_of(day) if truth_of is not None else None, horizons)
            tables.append(impact_of_lists(inputs, lists, gains, a).assign(as_of_date=pd.Timestamp(day)))
            context.log.info(f"{day} ({len(tables)}/{len(days)}): impact of {sum(map(len, lists.values())):,} contacts")
            return lists

        decide_days(warehouse, days, daily_predictions, uplift_scores, a, judge)
        table = pd.concat(tables, ignore_index=True)
        latest = table[table["as_of_date"] == table["as_of_date"].max()].drop(columns=["as_of_date"])
        summed = impact.over_days(table)
        estimate = "" if ground_truth else ", the models' estimate"  # every figure below says it is one
        context.add_output_metadata({
            "counted_from": impact.TRUE_EFFECTS if ground_truth else impact.MODEL_ESTIMATE,
            **({} if ground_truth else {"oracle": NO_GROUND_TRUTH}),
            **({"not judged": dg.MetadataValue.md("\n".join(f"- {n}" for n in notes))} if notes else {}),
            f"impact (latest day{estimate})": dg.MetadataValue.md(markdown_table(latest)),
            f"impact ({len(days)} days, distinct contacts summed{estimate})":
                dg.MetadataValue.md(markdown_table(summed)),
            f"kpis (latest day{estimate})": dg.MetadataValue.json(impact.kpis(latest)),
            f"kpis (all days{estimate})": dg.MetadataValue.json(impact.kpis(summed)),
            "horizons_days": dg.MetadataValue.json(horizons),
            "assumptions": dg.MetadataValue.md(markdown_table(a.as_table())),
            "plot": dg.MetadataValue.md(impact.impact_plot(latest)),
        })
        return table

    return [contact_lists, business_impact]


def lists_of_day(inputs: DayInputs, champions: dict[str, UpliftChampion], features: pd.DataFrame,
                 a: business.BusinessAssumptions) -> dict[str, pd.DataFrame]:
    """The day's three lists under the platform's policy, with reasons for the two call lists (from the
    day's feature rows: the listed clients' and the typical values of all)."""
    plan = business.plan_day(inputs.pool, inputs.platform, a)
    lists = business.list_frames(inputs.pool, inputs.platform, plan, a)
    features = features.set_index("client_id")
    # the uplift champions usually share one feature spec: the day's typical values are computed once for it
    typical = functools.cache(lambda numeric, categorical: reasons.typical_values(features, numeric, categorical))
    for use_case in ("advisor_queue", "retention_list"):
        rows = lists[use_case]
        intervention = business.LIST_INTERVENTION[use_case]
        champion = champions.get(intervention) if use_case in inputs.uplift_lists else None
        if champion is None:
            why = pd.DataFrame({f"reason_{k + 1}": [""] * len(rows) for k in range(reasons.REASONS)}, index=rows.index)
        else:
            outcome = PRIMARY_OUTCOME[intervention]
            sign = 1.0 if outcome == "conversion" else -1.0  # a fall in churn is the benefit
            model = champion.models[outcome]
            listed = features.loc[rows["client_id"]].reset_index().set_index(rows.index)
            why = reasons.effect_reasons(lambda f: sign * champion.effect(f, outcome).to_numpy(), listed,
                                         typical(model.spec.numeric, model.spec.categorical))
        lists[use_case] = pd.concat([rows, why], axis=1).assign(ranked_by=inputs.ranked_by(use_case))
    lists["advisor_queue"]["expected_conversion_uplift"] = lists["advisor_queue"][EFFECT_COLUMNS["advisor_queue"]]
    lists["retention_list"]["expected_churn_reduction"] = -lists["retention_list"][EFFECT_COLUMNS["retention_list"]]
    lists["campaign_targets"] = lists["campaign_targets"].assign(ranked_by=inputs.ranked_by("campaign_targets"))
    return {name: frame[LIST_COLUMNS[name]] for name, frame in lists.items()}


LIST_COLUMNS = {
    "advisor_queue": ["advisor_id", "rank", "client_id", "expected_value", "expected_conversion_uplift", "p_conversion",
                      "investable_assets", "cost_usd", "ranked_by", "reason_1", "reason_2", "reason_3"],
    "retention_list": ["rank", "client_id", "advisor_id", "expected_saved_revenue_usd", "expected_churn_reduction",
                       "p_churn", "balance_401k", "cost_usd", "ranked_by", "reason_1", "reason_2", "reason_3"],
    "campaign_targets": ["client_id", "action", "expected_net_value_usd", "cost_usd", "cumulative_cost_usd", "ranked_by"],
}


def truth_of_days(warehouse: WarehouseResource, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The simulator's truth for the days (evaluation only): uncontacted hazards, effects, response probabilities."""
    shifts = ", ".join(f"t.{c}" for c in impact.TRUTH_TRAIT_COLUMNS)
    return warehouse.query(
        f"""select h.client_id, h.as_of_date, h.p_conversion_daily_uncontacted, h.p_churn_daily_uncontacted, {shifts}
            from ground_truth.true_daily_hazards h join ground_truth.true_client_traits t using (client_id)
            where h.as_of_date between ? and ?""",
        [first, last],
    )


def champion_horizons(tracking_uri: str) -> dict[str, int]:
    """Each outcome's horizon: the uplift champion's where there is one, else the outcome champion's."""
    champions = uplift_champions(tracking_uri)
    horizons = {}
    for intervention, outcome in PRIMARY_OUTCOME.items():
        champion = champions.get(intervention)
        horizons[outcome] = (champion.models[outcome].horizon_days if champion
                             else load_champion(outcome, tracking_uri).predictor.horizon_days)
    return horizons


def day_gains(inputs: DayInputs, truth: pd.DataFrame | None, horizons: dict[str, int]) -> impact.Gains:
    """What a contact of each pool row causes on the day: from the simulator's `truth` of the day, or, when
    there is none (a provider's data), the models' estimate from the pool's scores."""
    if truth is None:
        return impact.estimated_gains(inputs.pool)
    rows = inputs.pool[["client_id"]].merge(truth, on="client_id", how="left", validate="one_to_one")
    return impact.true_gains(rows, horizons)


def impact_of_lists(inputs: DayInputs, lists: dict[str, pd.DataFrame], gains: impact.Gains,
                    a: business.BusinessAssumptions) -> pd.DataFrame:
    """One day's impact table: the platform's lists define the pools, every policy is judged in them."""
    pool = inputs.pool
    position = pd.Series(np.arange(len(pool)), index=pool["client_id"])
    pools = business.use_case_pools(pool, position.loc[lists["advisor_queue"]["client_id"]].to_numpy(),
                                    position.loc[lists["retention_list"]["client_id"]].to_numpy())
    capacity = impact.Capacity(lists["advisor_queue"].groupby("advisor_id").size().to_dict(),
                               len(lists["retention_list"]), float(lists["campaign_targets"]["cost_usd"].sum()))
    policies = {**inputs.baselines, "uplift": inputs.platform}
    return impact.impact_of_day(pool, gains, policies, pools, capacity, a, inputs.uplift_lists + ("campaign_targets",))
