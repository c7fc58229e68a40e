"""Business impact: what each way of deciding would *cause*, counted with the simulator's true effects, or,
on a provider's data (no ground truth), with the models' estimate of them.

For each list and day, in the same pool of eligible clients (the pool the platform's own list chose from)
and with the same resources it used (`Capacity`: as many calls per advisor as the platform's queue made, as
many retention calls, the same campaign spend), the policies:

- `random`: the exact expectation of a uniform choice (per advisor for the queue; for campaigns a random
  action per random client until the budget is spent, the last contact counted fractionally);
- `value_only`: the most valuable clients, no model;
- `propensity`: P(outcome) x value, from the outcome champions: who converts, leaves or responds anyway;
- `uplift`: the platform's lists (uplift champions; the next-best-action champion's response uplift for
  campaigns), absent for a list whose intervention has no uplift champion (said so);
- `oracle`: the same selection rule on the true effects, the most any model could earn.

For each: contacts, cost, incremental outcomes (conversions caused, churns prevented, responses caused:
true effects of the chosen clients, in expectation), incremental annual revenue, net value, ROI
((revenue - cost) / cost) and the share of the oracle's incremental outcomes. Evaluation only: this module
reads the truth, and nothing it computes feeds a decision.

Without ground truth (`estimated_gains`) a chosen contact is credited with what the champions predict it
causes: the uplift champions' effect of a call, the next-best-action champion's response uplift of a
campaign. Every table says which (`counted_from`). There is no oracle then (the best any model could do
is unknown, so no share of it), and a call list whose intervention has no uplift champion is not judged
at all: nothing estimates what its calls cause (`unjudged_lists` says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketing_ml.decisions.business import (
    CAMPAIGN_ACTIONS,
    LIST_INTERVENTION,
    NO_CONTACT,
    BusinessAssumptions,
    Policy,
    advisory_revenue,
    plan_revenue,
    select_campaign,
    select_per_advisor,
    select_top,
    uplift_scores_policy,
)
from marketing_ml.decisions.day import EFFECT_COLUMNS
from marketing_ml.metadata import figure_markdown
from marketing_ml.settings import NO_GROUND_TRUTH
from marketing_ml.simulation.effects import INTERVENTIONS, shift_column, true_effect

POLICIES = ("random", "value_only", "propensity", "uplift", "oracle")
OUTCOME_OF = {"advisor_queue": "conversions caused", "retention_list": "churns prevented",
              "campaign_targets": "responses caused"}
_WINDOW = {i.name: i.window_days for i in INTERVENTIONS}
# what the incremental outcomes of a table are counted from (its `counted_from` column)
TRUE_EFFECTS = "true effects (simulator)"
MODEL_ESTIMATE = "the models' estimate (uplift and next-best-action champions; no ground truth)"
# what `true_gains` reads from `ground_truth.true_client_traits`, beside the day's uncontacted hazards
TRUTH_TRAIT_COLUMNS = (shift_column("advisor_outreach", "conversion"), shift_column("retention_call", "churn"),
                       *(f"p_response_{x}" for x in (*CAMPAIGN_ACTIONS, NO_CONTACT)))


@dataclass(frozen=True)
class Gains:
    """Per pool row, what a contact would cause and the outcome without it (expectations): the simulator's
    truth (`true_gains`) or the models' estimate (`estimated_gains`), as `counted_from` says."""

    advisor: np.ndarray  # change of P(convert within the conversion horizon) if an advisor calls
    advisor_baseline: np.ndarray  # P(convert within the horizon) without a call
    retention: np.ndarray  # fall of P(churn within the churn horizon) if a retention call is made
    retention_baseline: np.ndarray
    campaign: np.ndarray  # (rows, CAMPAIGN_ACTIONS): change of P(respond) over no contact
    campaign_baseline: np.ndarray  # P(respond) without contact
    counted_from: str  # TRUE_EFFECTS or MODEL_ESTIMATE

    @property
    def from_truth(self) -> bool:
        return self.counted_from == TRUE_EFFECTS


def true_gains(truth: pd.DataFrame, horizons: Mapping[str, int]) -> Gains:
    """From the truth columns of the pool's rows: the uncontacted daily hazards of the day, the client's
    hazard shifts and true response probabilities; `horizons` by outcome come from the champions."""
    def effect(outcome: str, intervention: str) -> np.ndarray:
        return true_effect(truth[f"p_{outcome}_daily_uncontacted"].to_numpy(),
                           truth[shift_column(intervention, outcome)].to_numpy(), outcome,
                           _WINDOW[intervention], horizons[outcome])

    def baseline(outcome: str) -> np.ndarray:
        h = np.clip(truth[f"p_{outcome}_daily_uncontacted"].to_numpy(dtype=np.float64), 0, 1)
        return 1.0 - np.power(1.0 - h, horizons[outcome])

    response = truth[[f"p_response_{x}" for x in CAMPAIGN_ACTIONS]].to_numpy(dtype=np.float64)
    none = truth[f"p_response_{NO_CONTACT}"].to_numpy(dtype=np.float64)
    return Gains(effect("conversion", "advisor_outreach"), baseline("conversion"),
                 -effect("churn", "retention_call"), baseline("churn"), response - none[:, None], none, TRUE_EFFECTS)


def estimated_gains(pool: pd.DataFrame) -> Gains:
    """From the pool's scores (`day.day_inputs`): the uplift champions' effects (NaN where an intervention
    has no champion), the outcome champions' P(conversion) and P(churn) within their horizons as the
    outcomes without a call, and the next-best-action champion's response scores."""
    response = pool[[f"score_{x}" for x in CAMPAIGN_ACTIONS]].to_numpy(dtype=np.float64)
    none = pool[f"score_{NO_CONTACT}"].to_numpy(dtype=np.float64)
    return Gains(pool[EFFECT_COLUMNS["advisor_queue"]].to_numpy(dtype=np.float64),
                 pool["p_conversion"].to_numpy(dtype=np.float64),
                 -pool[EFFECT_COLUMNS["retention_list"]].to_numpy(dtype=np.float64),
                 pool["p_churn"].to_numpy(dtype=np.float64), response - none[:, None], none, MODEL_ESTIMATE)


def unjudged_lists(uplift_lists: tuple[str, ...]) -> list[str]:
    """Without ground truth, one line per call list the impact table leaves out: one whose intervention has
    no uplift champion (not in `uplift_lists`), so nothing estimates what its calls cause."""
    return [f"{u}: not judged: no uplift champion for {LIST_INTERVENTION[u]} estimates what its calls cause, and "
            f"the true effects are {NO_GROUND_TRUTH}" for u in LIST_INTERVENTION if u not in uplift_lists]


def oracle_policy(pool: pd.DataFrame, gains: Gains, a: BusinessAssumptions) -> Policy:
    return uplift_scores_policy("oracle", pool, gains.advisor, -gains.retention, gains.campaign, a)


@dataclass(frozen=True)
class Capacity:
    """The resources the platform's lists used on a day, which every policy gets: the platform contacts only
    where it expects a positive net value, so comparing at its contacts asks who makes better use of them."""

    per_advisor: Mapping[int, int]  # calls in each advisor's queue
    retention_calls: int
    campaign_budget_usd: float

    def advisor_rows(self, advisor_id: np.ndarray) -> np.ndarray:
        """Each pool row's advisor's capacity."""
        return pd.Series(advisor_id).map(self.per_advisor).fillna(0).to_numpy(dtype=np.int64)


def _row(use_case: str, policy: str, contacts: float, cost: float, outcomes: float, baseline: float,
         revenue: float) -> dict:
    return {"use_case": use_case, "policy": policy, "contacts": float(contacts), "cost_usd": float(cost),
            "incremental_outcomes": float(outcomes), "baseline_outcomes": float(baseline),
            "incremental_revenue_usd": float(revenue)}


def _mean(x: np.ndarray) -> float:
    """The mean of an empty pool's gains is no gain."""
    return float(x.mean()) if len(x) else 0.0


def _random_rows(pool: pd.DataFrame, gains: Gains, pools: Mapping[str, np.ndarray], capacity: Capacity,
                 a: BusinessAssumptions, use_cases: tuple[str, ...]) -> list[dict]:
    rows = []
    value = advisory_revenue(pool["investable_assets"], a)
    ok = pools["advisor_queue"]
    # per advisor: k = min(its calls, clients), each client equally likely, so E = k x the advisor's mean
    by = pd.DataFrame({"advisor": pool["advisor_id"].to_numpy()[ok], "gain": gains.advisor[ok],
                       "base": gains.advisor_baseline[ok], "revenue": (gains.advisor * value)[ok]})
    means = by.groupby("advisor").agg(n=("gain", "size"), gain=("gain", "mean"), base=("base", "mean"),
                                      revenue=("revenue", "mean"))
    k = np.minimum(means["n"], means.index.map(lambda x: capacity.per_advisor.get(x, 0)).to_numpy())
    rows.append(_row("advisor_queue", "random", k.sum(), k.sum() * a.advisor_outreach_cost_usd,
                     (k * means["gain"]).sum(), (k * means["base"]).sum(), (k * means["revenue"]).sum()))
    ok = pools["retention_list"]
    k = min(int(ok.sum()), capacity.retention_calls)
    saved = (gains.retention * plan_revenue(pool["balance_401k"], a))[ok]
    rows.append(_row("retention_list", "random", k, k * a.retention_call_cost_usd, k * _mean(gains.retention[ok]),
                     k * _mean(gains.retention_baseline[ok]), k * _mean(saved)))
    ok = pools["campaign_targets"]
    mean_cost = float(a.action_costs.mean())
    k = min(float(ok.sum()), capacity.campaign_budget_usd / mean_cost)
    responses = k * _mean(gains.campaign[ok])
    rows.append(_row("campaign_targets", "random", k, k * mean_cost, responses, k * _mean(gains.campaign_baseline[ok]),
                     responses * a.response_value_usd))
    return [row for row in rows if row["use_case"] in use_cases]


def _policy_rows(pool: pd.DataFrame, gains: Gains, policy: Policy, pools: Mapping[str, np.ndarray],
                 capacity: Capacity, a: BusinessAssumptions, use_cases: tuple[str, ...]) -> list[dict]:
    rows = []
    if "advisor_queue" in use_cases:
        advisor_id = pool["advisor_id"].to_numpy()
        chosen = select_per_advisor(advisor_id, policy.advisor, pools["advisor_queue"], capacity.advisor_rows(advisor_id),
                                    policy.incremental["advisor_queue"])
        value = advisory_revenue(pool["investable_assets"].to_numpy()[chosen], a)
        rows.append(_row("advisor_queue", policy.name, len(chosen), len(chosen) * a.advisor_outreach_cost_usd,
                         gains.advisor[chosen].sum(), gains.advisor_baseline[chosen].sum(),
                         (gains.advisor[chosen] * value).sum()))
    if "retention_list" in use_cases:
        chosen = select_top(policy.retention, pools["retention_list"], capacity.retention_calls,
                            policy.incremental["retention_list"])
        value = plan_revenue(pool["balance_401k"].to_numpy()[chosen], a)
        rows.append(_row("retention_list", policy.name, len(chosen), len(chosen) * a.retention_call_cost_usd,
                         gains.retention[chosen].sum(), gains.retention_baseline[chosen].sum(),
                         (gains.retention[chosen] * value).sum()))
    if "campaign_targets" in use_cases:
        chosen, action = select_campaign(policy.campaign, a.action_costs, pools["campaign_targets"],
                                         capacity.campaign_budget_usd, policy.incremental["campaign_targets"])
        responses = gains.campaign[chosen, action].sum()
        rows.append(_row("campaign_targets", policy.name, len(chosen), a.action_costs[action].sum(), responses,
                         gains.campaign_baseline[chosen].sum(), responses * a.response_value_usd))
    return rows


def impact_of_day(pool: pd.DataFrame, gains: Gains, policies: Mapping[str, Policy], pools: Mapping[str, np.ndarray],
                  capacity: Capacity, a: BusinessAssumptions, uplift_lists: tuple[str, ...]) -> pd.DataFrame:
    """Every policy in `policies` (value_only, propensity, uplift) plus random and the oracle on one day's
    pools with the day's `capacity`; the uplift policy only for `uplift_lists` (those with a champion).
    With estimated gains (no ground truth) only the `uplift_lists` are judged, and there is no oracle."""
    judged = tuple(pools) if gains.from_truth else tuple(u for u in pools if u in uplift_lists)
    rows = _random_rows(pool, gains, pools, capacity, a, judged)
    for name, policy in policies.items():
        rows += _policy_rows(pool, gains, policy, pools, capacity, a, uplift_lists if name == "uplift" else judged)
    if gains.from_truth:
        rows += _policy_rows(pool, gains, oracle_policy(pool, gains, a), pools, capacity, a, judged)
    return with_ratios(pd.DataFrame(rows).assign(counted_from=gains.counted_from))


def with_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """Net value, ROI and the share of the oracle's incremental outcomes, from the summed columns (so a
    multi-day table gets them from its sums, never by averaging days)."""
    table = table.assign(net_value_usd=table["incremental_revenue_usd"] - table["cost_usd"])
    table["roi"] = np.where(table["cost_usd"] > 0, table["net_value_usd"] / table["cost_usd"].where(table["cost_usd"] > 0), np.nan)
    oracle = table[table["policy"] == "oracle"].set_index("use_case")["incremental_outcomes"]
    if len(oracle):  # no oracle without ground truth: no share of it either (not NaN)
        table["share_of_oracle_outcomes"] = table["incremental_outcomes"] / table["use_case"].map(oracle)
    return table


SUMMED = ["contacts", "cost_usd", "incremental_outcomes", "baseline_outcomes", "incremental_revenue_usd"]


def over_days(daily: pd.DataFrame) -> pd.DataFrame:
    """A range of days: the sums of each day's distinct contacts (the contact rules keep a called client
    out of later lists for the cool-down), ratios recomputed from the sums; never one day multiplied."""
    summed = daily.groupby(["use_case", "policy", "counted_from"], sort=False)[SUMMED].sum().reset_index()
    return with_ratios(summed)


def kpis(table: pd.DataFrame) -> dict[str, float]:
    """The demo's four KPIs, from one day's or a range's impact table (expectations: true, or the models'
    estimate, as the table's `counted_from` says):

    - conversion-rate lift: conversions among the uplift queue's clients with the call vs without it;
    - churn reduction: churn among the retention list's clients with the call vs without it;
    - campaign ROI of the uplift plan;
    - advisor efficiency: incremental conversions per 100 advisor calls, uplift vs propensity queue.
    Absent when the list has no uplift champion.
    """
    by = table.set_index(["use_case", "policy"])
    out: dict[str, float] = {}

    def has(use_case: str, policy: str = "uplift") -> bool:
        return (use_case, policy) in by.index and by.loc[(use_case, policy), "contacts"] > 0

    if has("advisor_queue"):
        r = by.loc[("advisor_queue", "uplift")]
        out["conversion_rate_lift_pct"] = 100 * r["incremental_outcomes"] / r["baseline_outcomes"]
        for policy in ("uplift", "propensity"):
            if has("advisor_queue", policy):
                p = by.loc[("advisor_queue", policy)]
                out[f"advisor_efficiency_{policy}"] = 100 * p["incremental_outcomes"] / p["contacts"]
    if has("retention_list"):
        r = by.loc[("retention_list", "uplift")]
        out["churn_reduction_pct"] = 100 * r["incremental_outcomes"] / r["baseline_outcomes"]
    if has("campaign_targets"):
        out["campaign_roi"] = float(by.loc[("campaign_targets", "uplift"), "roi"])
        if has("campaign_targets", "oracle"):
            out["campaign_roi_share_of_oracle"] = out["campaign_roi"] / float(by.loc[("campaign_targets", "oracle"), "roi"])
    return {k: float(v) for k, v in out.items()}


def impact_plot(table: pd.DataFrame) -> str:
    """Incremental outcomes per policy, one panel per list, titled with what they are counted from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"random": "#999999", "value_only": "#C4AD66", "propensity": "#DD8452", "uplift": "#4C72B0",
               "oracle": "#55A868"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (use_case, label) in zip(axes, OUTCOME_OF.items()):
        rows = table[table["use_case"] == use_case].set_index("policy")
        rows = rows.loc[[p for p in POLICIES if p in rows.index]]
        ax.bar(rows.index, rows["incremental_outcomes"], color=[colours[p] for p in rows.index])
        ax.set_title(use_case.replace("_", " ") + ("" if len(rows) else " (not judged)"))
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelrotation=30)
    counted_from = ", ".join(table["counted_from"].unique())
    fig.suptitle(f"counted from {counted_from}", fontsize=10)
    fig.tight_layout()
    return figure_markdown(fig, f"incremental outcomes by policy ({counted_from})")
