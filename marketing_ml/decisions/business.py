"""Business decisions from a day's scores: the advisor queue, campaign targets and their impact.

Everything here is plain pandas/numpy on one day's scored clients, vectorised (sorts, group ranks,
cumulative sums), so each piece is tested on hand-made frames. Money figures rest on the assumptions in
`BusinessAssumptions`, which are configuration, shown beside every figure they produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from marketing_ml.simulation.vocabulary import ACTIONS

ACTION_COST = {a.name: a.cost_usd for a in ACTIONS}
NO_CONTACT = "no_contact"


@dataclass(frozen=True)
class BusinessAssumptions:
    """The commercial assumptions behind every dollar figure (configurable per run)."""

    advisory_fee_rate: float = 0.0075  # annual advisory fee on assets under advice
    advisory_asset_share: float = 0.5  # share of investable assets a new advisory client brings
    plan_fee_rate: float = 0.004  # annual revenue on a 401(k) balance that stays with the plan
    churn_save_rate: float = 0.25  # share of contacted would-be leavers that a retention call keeps
    advisor_daily_capacity: int = 8  # queue entries per advisor per day
    retention_daily_capacity: int = 200  # retention calls per day
    campaign_daily_budget_usd: float = 2_000.0
    conversion_horizon_days: int = 30
    churn_horizon_days: int = 90

    def as_table(self) -> pd.DataFrame:
        return pd.DataFrame({"assumption": list(asdict(self)), "value": [str(v) for v in asdict(self).values()]})


def advisory_revenue(investable_assets: np.ndarray | pd.Series, a: BusinessAssumptions) -> np.ndarray:
    """Annual advisory revenue if the client converts: fee x the assets they bring into advisory."""
    return np.asarray(investable_assets, dtype=np.float64) * a.advisory_asset_share * a.advisory_fee_rate


def advisor_queue(scored: pd.DataFrame, a: BusinessAssumptions) -> pd.DataFrame:
    """Each advisor's morning list: not-yet-converted clients by expected value, at most `capacity` each.

    `scored` needs client_id, advisor_id, p_conversion, investable_assets (extra columns, e.g. reasons, are
    carried along). Expected value = P(conversion within the horizon) x annual advisory revenue.
    """
    queue = scored.assign(expected_value=scored["p_conversion"] * advisory_revenue(scored["investable_assets"], a))
    queue = queue.sort_values(["advisor_id", "expected_value", "client_id"], ascending=[True, False, True], kind="stable")
    queue["rank"] = queue.groupby("advisor_id").cumcount() + 1
    return queue[queue["rank"] <= a.advisor_daily_capacity].reset_index(drop=True)


QUEUE_COLUMNS = ["as_of_date", "advisor_id", "rank", "client_id", "expected_value", "p_conversion", "investable_assets",
                 "conversion_reason_1", "conversion_reason_2", "conversion_reason_3"]


def advisor_queues(scored: pd.DataFrame, explanations: pd.DataFrame, a: BusinessAssumptions) -> pd.DataFrame:
    """Every day's advisor queues: scored clients with their client context (`scoring.context`) and the
    conversion reasons of `prediction_explanations`; converted clients (no conversion score) never queue."""
    reasons = ["client_id", "as_of_date", "conversion_reason_1", "conversion_reason_2", "conversion_reason_3"]
    eligible = scored[scored["p_conversion"].notna()].merge(explanations[reasons], on=["client_id", "as_of_date"], how="left")
    queues = [advisor_queue(day, a) for _, day in eligible.groupby("as_of_date")]
    return pd.concat(queues, ignore_index=True)[QUEUE_COLUMNS]


def campaign_plans(predictions: pd.DataFrame, actions: Sequence[str], a: BusinessAssumptions) -> pd.DataFrame:
    """`campaign_targets` for every day of `predictions`."""
    plans = [campaign_targets(scores, actions, a).assign(as_of_date=day) for day, scores in predictions.groupby("as_of_date")]
    return pd.concat(plans, ignore_index=True)


def campaign_summary(targets: pd.DataFrame) -> pd.DataFrame:
    """Clients, expected and incremental responses and cost per action of a campaign plan."""
    return targets.groupby("action").agg(
        clients=("client_id", "size"), expected_responses=("expected_response", "sum"),
        incremental_responses=("expected_incremental_response", "sum"), cost_usd=("cost_usd", "sum"),
    ).reset_index()


def campaign_targets(scores: pd.DataFrame, actions: Sequence[str], a: BusinessAssumptions) -> pd.DataFrame:
    """Whom to contact today, with which action, within the daily budget.

    Per client the paid action with the highest expected *incremental* response over not contacting
    (score(action) - score(no_contact)); clients are then taken in order of incremental response per
    dollar until the budget is spent. `scores` needs client_id and score_<action> for every action.
    """
    paid = [x for x in actions if x != NO_CONTACT]
    matrix = scores[[f"score_{x}" for x in paid]].to_numpy(dtype=np.float64)
    baseline = scores[f"score_{NO_CONTACT}"].to_numpy(dtype=np.float64)
    best = matrix.argmax(axis=1)
    rows = np.arange(len(scores))
    expected = matrix[rows, best]
    incremental = expected - baseline
    cost = np.asarray([ACTION_COST[x] for x in paid])[best]
    plan = pd.DataFrame(
        {
            "client_id": scores["client_id"].to_numpy(),
            "action": np.asarray(paid, dtype=object)[best],
            "expected_response": expected,
            "expected_incremental_response": incremental,
            "cost_usd": cost,
        }
    )
    plan = plan[plan["expected_incremental_response"] > 0]
    plan = plan.assign(value_per_dollar=plan["expected_incremental_response"] / plan["cost_usd"].clip(lower=0.01))
    plan = plan.sort_values(["value_per_dollar", "client_id"], ascending=[False, True], kind="stable")
    plan["cumulative_cost_usd"] = plan["cost_usd"].cumsum()
    return plan[plan["cumulative_cost_usd"] <= a.campaign_daily_budget_usd].reset_index(drop=True)


def targeting_comparison(p_model: np.ndarray, p_true: np.ndarray, value: np.ndarray, k: int) -> dict[str, dict[str, float]]:
    """Expected outcomes and value of contacting k clients chosen by the model, at random, or by the oracle.

    The model and the oracle rank by expected value (probability x value); random targeting is the exact
    expectation of a uniform draw of k clients (no sampling noise). Outcomes are counted with the true
    probabilities: that is what each choice would actually yield.
    """
    p_model, p_true, value = (np.asarray(x, dtype=np.float64) for x in (p_model, p_true, value))
    k = int(min(k, len(p_true)))
    if k == 0:
        zero = {"contacts": 0.0, "expected_outcomes": 0.0, "expected_value": 0.0}
        return {"model": zero, "random": zero, "oracle": zero}

    def chosen(score: np.ndarray) -> dict[str, float]:
        top = np.argsort(-score, kind="stable")[:k]
        return {"contacts": float(k), "expected_outcomes": float(p_true[top].sum()), "expected_value": float((p_true * value)[top].sum())}

    share = k / len(p_true)
    return {
        "model": chosen(p_model * value),
        "random": {"contacts": float(k), "expected_outcomes": float(p_true.sum() * share), "expected_value": float((p_true * value).sum() * share)},
        "oracle": chosen(p_true * value),
    }


def impact_table(comparisons: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """One row per (use case, policy) with lift over random and the share of the oracle's gain captured."""
    rows = []
    for use_case, by_policy in comparisons.items():
        random_value = by_policy["random"]["expected_value"]
        span = by_policy["oracle"]["expected_value"] - random_value
        for policy, r in by_policy.items():
            rows.append(
                {
                    "use_case": use_case,
                    "policy": policy,
                    **r,
                    "lift_vs_random_pct": 100 * (r["expected_value"] / random_value - 1) if random_value else float("nan"),
                    "captured_pct": 100 * (r["expected_value"] - random_value) / span if span > 0 else float("nan"),
                }
            )
    return pd.DataFrame(rows)
