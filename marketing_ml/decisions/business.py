"""Whom to contact today, and with what: the advisor queue, the retention list and campaign targets.

A contact only pays if it changes what the client does, so each list ranks the day's eligible clients by
the *incremental* value a contact is expected to cause, under its capacity:

- the advisor queue: per advisor at most `advisor_daily_capacity` clients, by the expected incremental
  annual advisory revenue of an advisor's outreach (uplift on conversion x advisory revenue) minus the
  call's cost, only where that is positive;
- the retention list: the `retention_daily_capacity` clients with the largest expected saved plan revenue
  (uplift of a retention call on churn x 401(k) balance x plan fee), never a sleeping dog (a client whom
  the call is expected to push out);
- campaign targets: one action per client (or none), the one with the largest expected incremental
  response value minus its cost, by net value per dollar until the daily budget is spent.

A client gets at most one contact a day: the lists are filled in that priority order (advisor time is
the scarcest and most valuable), each from the clients the earlier ones left. Who may be contacted at all
is the contact rules' business (`eligible`).

A `Policy` is the scores one way of deciding gives every client; the platform's own is the uplift
champions' (`uplift_policy`), and `impact` runs the same selection with the scores of the baselines and
of the simulator's truth. Everything is vectorised numpy/pandas on one day's clients, tested on hand-made
frames; dollars rest on `BusinessAssumptions`, configuration shown beside every figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from marketing_ml.simulation.vocabulary import ACTIONS

NO_CONTACT = "no_contact"
CAMPAIGN_ACTIONS = tuple(a.name for a in ACTIONS if a.name != NO_CONTACT)
DEFAULT_ACTION_COSTS = {a.name: a.cost_usd for a in ACTIONS if a.name != NO_CONTACT}
USE_CASES = ("advisor_queue", "retention_list", "campaign_targets")
# the interventions behind the two call lists (`simulation.effects.INTERVENTIONS`)
LIST_INTERVENTION = {"advisor_queue": "advisor_outreach", "retention_list": "retention_call"}


@dataclass(frozen=True)
class BusinessAssumptions:
    """The commercial assumptions and contact rules behind every list and dollar figure (run config)."""

    advisory_fee_rate: float = 0.0075  # annual advisory fee on assets under advice
    advisory_asset_share: float = 0.5  # share of investable assets a new advisory client brings
    plan_fee_rate: float = 0.004  # annual plan revenue on a 401(k) balance that stays with the plan
    response_value_usd: float = 20.0  # value of one campaign response (a re-engaged participant)
    advisor_outreach_cost_usd: float = 60.0  # an advisor's outreach call
    retention_call_cost_usd: float = 35.0  # a retention call with its offer
    advisor_daily_capacity: int = 8  # queue entries per advisor per day
    retention_daily_capacity: int = 200  # retention calls per day
    campaign_daily_budget_usd: float = 2_000.0
    call_cooldown_days: int = 90  # no call to a client called (outreach or retention) in the last N days
    campaign_cooldown_days: int = 14  # no campaign to a client touched by one in the last N days
    campaign_action_costs_usd: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ACTION_COSTS))

    def as_table(self) -> pd.DataFrame:
        return pd.DataFrame({"assumption": list(asdict(self)), "value": [str(v) for v in asdict(self).values()]})

    @property
    def action_costs(self) -> np.ndarray:
        """USD per contact of each of `CAMPAIGN_ACTIONS`."""
        missing = [x for x in CAMPAIGN_ACTIONS if x not in self.campaign_action_costs_usd]
        if missing:
            raise ValueError(f"campaign_action_costs_usd lacks {', '.join(missing)}: give a cost for every action")
        return np.asarray([self.campaign_action_costs_usd[x] for x in CAMPAIGN_ACTIONS], dtype=np.float64)


def advisory_revenue(investable_assets, a: BusinessAssumptions) -> np.ndarray:
    """Annual advisory revenue if the client converts: fee x the assets they bring into advisory."""
    return np.asarray(investable_assets, dtype=np.float64) * a.advisory_asset_share * a.advisory_fee_rate


def plan_revenue(balance_401k, a: BusinessAssumptions) -> np.ndarray:
    """Annual plan revenue a client who stays keeps: fee x the 401(k) balance."""
    return np.asarray(balance_401k, dtype=np.float64) * a.plan_fee_rate


# ---- contact rules ------------------------------------------------------------------------------------

POOL_COLUMNS = ("client_id", "advisor_id", "investable_assets", "balance_401k", "contact_opt_out", "is_converted")


def eligible(pool: pd.DataFrame, last_call_days_ago: pd.Series, last_campaign_days_ago: pd.Series,
             a: BusinessAssumptions) -> pd.DataFrame:
    """The day's clients with the lists each may enter: `may_call` (advisor queue, retention list) and
    `may_campaign`; opted-out clients are dropped.

    `pool` is one row per active client (`POOL_COLUMNS`); the two series give, per client_id, the days since
    their latest call and campaign contact (absent: never). A null opt-out is no opt-out recorded. Calls skip converted clients, as the
    randomised experiment the uplift models learnt from did, so no model is asked about clients it never
    saw contacted.
    """
    pool = pool[~pool["contact_opt_out"].fillna(False).astype(bool)].reset_index(drop=True)
    call_ago = pool["client_id"].map(last_call_days_ago)
    campaign_ago = pool["client_id"].map(last_campaign_days_ago)
    return pool.assign(
        may_call=~pool["is_converted"].astype(bool) & ~(call_ago <= a.call_cooldown_days).to_numpy(),
        may_campaign=~(campaign_ago <= a.campaign_cooldown_days).to_numpy(),
    )


# ---- one way of deciding --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Policy:
    """The scores one way of deciding gives each pool row, higher first.

    `advisor` and `retention`: one score per row; `campaign`: one per row and campaign action. Where a
    list's scores are expected *incremental* values (`incremental[list]`: the uplift models', the
    oracle's) it contacts only where the score is positive; otherwise (value only, propensity) it fills
    the capacity, as a list ranked by value or by P(outcome) x value does.
    """

    name: str
    advisor: np.ndarray
    retention: np.ndarray
    campaign: np.ndarray
    incremental: Mapping[str, bool]

    @staticmethod
    def mixed(name: str, by_list: Mapping[str, Policy]) -> Policy:
        """Each list's scores from its own policy (e.g. uplift where a champion exists, else propensity)."""
        return Policy(name, by_list["advisor_queue"].advisor, by_list["retention_list"].retention,
                      by_list["campaign_targets"].campaign,
                      {u: by_list[u].incremental[u] for u in USE_CASES})


def uplift_scores_policy(name: str, pool: pd.DataFrame, advisor_conversion_uplift: np.ndarray,
                         retention_churn_uplift: np.ndarray, response_uplift: np.ndarray,
                         a: BusinessAssumptions) -> Policy:
    """The policy of effect estimates (the uplift champions', or the truth's): advisor = uplift x advisory
    revenue - the call's cost; retention = saved plan revenue (- uplift on churn x plan revenue), not net of
    the call's cost (the list has a fixed capacity); campaign = response uplift x response value - cost."""
    return Policy(
        name,
        advisor=np.asarray(advisor_conversion_uplift) * advisory_revenue(pool["investable_assets"], a)
        - a.advisor_outreach_cost_usd,
        retention=-np.asarray(retention_churn_uplift) * plan_revenue(pool["balance_401k"], a),
        campaign=np.asarray(response_uplift) * a.response_value_usd - a.action_costs[None, :],
        incremental=dict.fromkeys(USE_CASES, True),
    )


def propensity_policy(pool: pd.DataFrame, p_conversion: np.ndarray, p_churn: np.ndarray,
                      p_response: np.ndarray, a: BusinessAssumptions) -> Policy:
    """Ranking by P(outcome) x value, the way a propensity model is used: it finds who converts, leaves or
    responds, contacted or not."""
    return Policy(
        "propensity",
        advisor=np.nan_to_num(np.asarray(p_conversion, dtype=np.float64), nan=-np.inf)
        * advisory_revenue(pool["investable_assets"], a),
        retention=np.asarray(p_churn) * plan_revenue(pool["balance_401k"], a),
        campaign=np.asarray(p_response) * a.response_value_usd - a.action_costs[None, :],
        incremental=dict.fromkeys(USE_CASES, False),
    )


def value_policy(pool: pd.DataFrame, a: BusinessAssumptions) -> Policy:
    """No model: the most valuable clients first (investable assets for advice, the balance for retention),
    and the cheapest campaign action for everyone."""
    value = np.asarray(pool["investable_assets"], dtype=np.float64)
    campaign = np.full((len(pool), len(CAMPAIGN_ACTIONS)), -np.inf)
    campaign[:, int(np.argmin(a.action_costs))] = value
    return Policy("value_only", advisor=value, retention=np.asarray(pool["balance_401k"], dtype=np.float64),
                  campaign=campaign, incremental=dict.fromkeys(USE_CASES, False))


# ---- selections under capacity ---------------------------------------------------------------------------

def _candidates(score: np.ndarray, available: np.ndarray, positive_only: bool) -> np.ndarray:
    """Rows a list may choose: available, scored, and (for incremental scores) expected to gain."""
    return np.flatnonzero(available & np.isfinite(score) & ((score > 0) if positive_only else True))


def select_per_advisor(advisor_id: np.ndarray, score: np.ndarray, available: np.ndarray, capacity: int | np.ndarray,
                       positive_only: bool) -> np.ndarray:
    """Rows of each advisor's top available clients by score (ties: lower row first), in (advisor, rank)
    order: `capacity` of them, or per row its advisor's capacity when an array."""
    rows = _candidates(score, available, positive_only)
    order = rows[np.lexsort((rows, -score[rows], advisor_id[rows]))]
    group = advisor_id[order]
    starts = np.r_[0, np.flatnonzero(group[1:] != group[:-1]) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    limit = capacity[order] if isinstance(capacity, np.ndarray) else capacity
    return order[rank < limit]


def select_top(score: np.ndarray, available: np.ndarray, capacity: int, positive_only: bool) -> np.ndarray:
    """Rows of the top `capacity` available clients by score, best first."""
    rows = _candidates(score, available, positive_only)
    return rows[np.lexsort((rows, -score[rows]))][:capacity]


def select_campaign(score: np.ndarray, costs: np.ndarray, available: np.ndarray, budget: float,
                    positive_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """(rows, action index): each available client's best-scoring action, clients by score per dollar,
    the longest prefix within the budget."""
    best = np.argmax(np.where(np.isfinite(score), score, -np.inf), axis=1) if len(score) else np.zeros(0, int)
    best_score = score[np.arange(len(score)), best]
    rows = _candidates(best_score, available, positive_only)
    per_dollar = best_score[rows] / costs[best[rows]]
    rows = rows[np.lexsort((rows, -per_dollar))]
    within = np.cumsum(costs[best[rows]]) <= budget + 1e-9
    rows = rows[within]
    return rows, best[rows]


@dataclass(frozen=True)
class DayPlan:
    """One policy's contacts of a day, as rows of the pool."""

    advisor: np.ndarray
    retention: np.ndarray
    campaign: np.ndarray
    campaign_action: np.ndarray  # index into CAMPAIGN_ACTIONS, aligned with `campaign`


def plan_day(pool: pd.DataFrame, policy: Policy, a: BusinessAssumptions) -> DayPlan:
    """The three lists of one policy, in priority order, one contact per client (see the module docstring)."""
    free = np.ones(len(pool), dtype=bool)
    may_call, may_campaign = pool["may_call"].to_numpy(bool), pool["may_campaign"].to_numpy(bool)
    advisor = select_per_advisor(pool["advisor_id"].to_numpy(), policy.advisor, may_call, a.advisor_daily_capacity,
                                 policy.incremental["advisor_queue"])
    free[advisor] = False
    retention = select_top(policy.retention, may_call & free, a.retention_daily_capacity,
                           policy.incremental["retention_list"])
    free[retention] = False
    campaign, action = select_campaign(policy.campaign, a.action_costs, may_campaign & free,
                                       a.campaign_daily_budget_usd, policy.incremental["campaign_targets"])
    return DayPlan(advisor, retention, campaign, action)


def use_case_pools(pool: pd.DataFrame, advisor: np.ndarray, retention: np.ndarray) -> dict[str, np.ndarray]:
    """Who each list chose from, given the rows the platform's own advisor queue and retention list called:
    the eligible clients the higher-priority lists left. The baselines are compared with the platform inside
    these same pools."""
    free = np.ones(len(pool), dtype=bool)
    pools = {"advisor_queue": pool["may_call"].to_numpy(bool).copy()}
    free[advisor] = False
    pools["retention_list"] = pools["advisor_queue"] & free
    free[retention] = False
    pools["campaign_targets"] = pool["may_campaign"].to_numpy(bool) & free
    return pools


def list_frames(pool: pd.DataFrame, policy: Policy, plan: DayPlan, a: BusinessAssumptions) -> dict[str, pd.DataFrame]:
    """The plan as the three tables the teams work from (pool columns carried along)."""
    advisor = pool.iloc[plan.advisor].assign(expected_value=policy.advisor[plan.advisor],
                                             cost_usd=a.advisor_outreach_cost_usd)
    advisor["rank"] = advisor.groupby("advisor_id").cumcount() + 1
    retention = pool.iloc[plan.retention].assign(expected_saved_revenue_usd=policy.retention[plan.retention],
                                                 cost_usd=a.retention_call_cost_usd)
    retention["rank"] = np.arange(1, len(retention) + 1)
    campaign = pool.iloc[plan.campaign].assign(
        action=np.asarray(CAMPAIGN_ACTIONS, dtype=object)[plan.campaign_action],
        expected_net_value_usd=policy.campaign[plan.campaign, plan.campaign_action],
        cost_usd=a.action_costs[plan.campaign_action],
    )
    campaign["cumulative_cost_usd"] = campaign["cost_usd"].cumsum()
    return {"advisor_queue": advisor.reset_index(drop=True), "retention_list": retention.reset_index(drop=True),
            "campaign_targets": campaign.reset_index(drop=True)}


def campaign_summary(targets: pd.DataFrame) -> pd.DataFrame:
    """Clients, expected net value and cost per action of a campaign plan."""
    return targets.groupby("action").agg(
        clients=("client_id", "size"), expected_net_value_usd=("expected_net_value_usd", "sum"),
        cost_usd=("cost_usd", "sum"),
    ).reset_index()
