"""The business impact of a day's targeting: the models' choices against random and the oracle's at the
same capacity, counted with the simulator's true probabilities (evaluation only)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from marketing_ml.decisions import business
from marketing_ml.metadata import figure_markdown
from marketing_ml.registry.evaluation import oracle_horizon_probability, policy_evaluation
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.simulation.vocabulary import ACTION_NAMES


def true_probabilities(warehouse: WarehouseResource, days: list[dt.date]) -> pd.DataFrame:
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


def business_impact(scored: pd.DataFrame, truth: pd.DataFrame, a: business.BusinessAssumptions) -> pd.DataFrame:
    """`impact_of_day` for every day of `scored` (predictions with their client context), against `truth`
    (`true_probabilities` of the same days)."""
    tables = [impact_of_day(day, rows.merge(truth, on=["client_id", "as_of_date"]), a) for day, rows in scored.groupby("as_of_date")]
    return pd.concat(tables, ignore_index=True)


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
