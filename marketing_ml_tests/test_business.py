"""Decisions and their business impact on small hand-made frames with known true effects."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from marketing_ml.decisions import impact
from marketing_ml.decisions.business import (
    CAMPAIGN_ACTIONS,
    BusinessAssumptions,
    advisory_revenue,
    eligible,
    plan_day,
    plan_revenue,
    propensity_policy,
    select_campaign,
    uplift_scores_policy,
    use_case_pools,
    value_policy,
)
from marketing_ml.decisions.contacts import days_since
from marketing_ml.decisions.reasons import effect_reasons, typical_values
from marketing_ml.scoring.segments import client_segments
from marketing_ml.settings import NO_GROUND_TRUTH

A = BusinessAssumptions(advisor_daily_capacity=2, retention_daily_capacity=2, campaign_daily_budget_usd=3.0,
                        advisory_asset_share=0.5, advisory_fee_rate=0.01, plan_fee_rate=0.01, response_value_usd=10.0,
                        advisor_outreach_cost_usd=50.0, retention_call_cost_usd=10.0, call_cooldown_days=5,
                        campaign_cooldown_days=2)
NEVER = pd.Series(dtype=float)


def clients(n: int = 8, **columns) -> pd.DataFrame:
    frame = pd.DataFrame({
        "client_id": np.arange(1, n + 1), "advisor_id": np.where(np.arange(n) < n // 2, 10, 20),
        "investable_assets": np.full(n, 1_000_000.0), "balance_401k": np.full(n, 100_000.0),
        "contact_opt_out": np.zeros(n, bool), "is_converted": np.zeros(n, bool),
    })
    return frame.assign(**columns)


def gains(n: int, advisor, retention, campaign=None) -> impact.Gains:
    campaign = np.zeros((n, len(CAMPAIGN_ACTIONS))) if campaign is None else np.asarray(campaign, dtype=float)
    return impact.Gains(np.asarray(advisor, float), np.full(n, 0.1), np.asarray(retention, float), np.full(n, 0.2),
                        campaign, np.full(n, 0.05), impact.TRUE_EFFECTS)


def test_the_queue_ranks_by_incremental_net_value_caps_each_advisor_and_skips_non_positive():
    pool = eligible(clients(), NEVER, NEVER, A)
    # revenue if converted: 1M x 0.5 x 1% = 5,000; net = uplift x 5,000 - 50
    uplift = np.array([0.02, 0.05, 0.001, 0.03, 0.0, 0.04, 0.01, -0.02])
    policy = uplift_scores_policy("uplift", pool, uplift, np.zeros(8), np.zeros((8, len(CAMPAIGN_ACTIONS))), A)
    plan = plan_day(pool, policy, A)
    chosen = pool["client_id"].to_numpy()[plan.advisor].tolist()
    # advisor 10: clients 2 (200), 4 (100), 1 (50) -> capped at 2; client 3 nets -45. Advisor 20: 6 (150), 7 (0: out)
    assert chosen == [2, 4, 6]
    assert advisory_revenue([200_000.0], A)[0] == pytest.approx(1000.0)
    # propensity fills the capacity whatever a call changes
    propensity = propensity_policy(pool, np.linspace(0.9, 0.2, 8), np.zeros(8), np.zeros((8, len(CAMPAIGN_ACTIONS))), A)
    assert pool["client_id"].to_numpy()[plan_day(pool, propensity, A).advisor].tolist() == [1, 2, 5, 6]


def test_contact_rules_cool_down_opt_out_and_converted_clients():
    frame = clients(contact_opt_out=np.arange(8) == 0, is_converted=np.arange(8) == 1)
    day = dt.date(2026, 3, 10)
    called = days_since(pd.Series({3: dt.date(2026, 3, 9)}), {4: dt.date(2026, 3, 5)}, day)  # yesterday; 5 days ago
    campaigned = days_since(NEVER, {5: dt.date(2026, 3, 9)}, day)
    pool = eligible(frame, called, campaigned, A)
    assert 1 not in set(pool["client_id"])  # opted out: in no list at all
    may = pool.set_index("client_id")
    assert not may.loc[2, "may_call"] and may.loc[2, "may_campaign"]  # converted: campaigns only
    assert not may.loc[3, "may_call"] and not may.loc[4, "may_call"]  # called 1 and 5 days ago, cool-down 5
    assert not may.loc[5, "may_campaign"] and may.loc[5, "may_call"]
    assert may.loc[[6, 7, 8], "may_call"].all()
    # everyone wants a call: only the eligible ones get one
    policy = uplift_scores_policy("uplift", pool, np.full(len(pool), 0.5), np.full(len(pool), -0.5),
                                  np.full((len(pool), len(CAMPAIGN_ACTIONS)), 0.5), A)
    plan = plan_day(pool, policy, A)
    called_today = set(pool["client_id"].to_numpy()[np.r_[plan.advisor, plan.retention]])
    assert called_today.isdisjoint({1, 2, 3, 4})
    # with no cool-down, yesterday's call does not block today's
    relaxed = BusinessAssumptions(**{**A.__dict__, "call_cooldown_days": 0})
    assert eligible(frame, called, campaigned, relaxed).set_index("client_id").loc[3, "may_call"]


def test_one_contact_per_client_per_day_across_the_three_lists():
    pool = eligible(clients(12), NEVER, NEVER, A)
    n = len(pool)
    # the same clients top every list: each list must take the next ones
    score = np.linspace(1.0, 0.1, n)
    policy = uplift_scores_policy("uplift", pool, score, -score, np.repeat(score[:, None], len(CAMPAIGN_ACTIONS), 1), A)
    plan = plan_day(pool, policy, A)
    lists = [set(plan.advisor), set(plan.retention), set(plan.campaign)]
    assert all(lists) and sum(map(len, lists)) == len(set().union(*lists))
    pools = use_case_pools(pool, plan.advisor, plan.retention)
    assert not pools["retention_list"][plan.advisor].any() and not pools["campaign_targets"][plan.retention].any()


def test_the_retention_list_never_calls_a_sleeping_dog():
    pool = eligible(clients(), NEVER, NEVER, A)
    churn_uplift = np.array([-0.10, 0.05, -0.02, 0.01, -0.20, 0.0, 0.3, -0.01])  # positive: the call pushes out
    policy = uplift_scores_policy("uplift", pool, np.zeros(8), churn_uplift, np.zeros((8, len(CAMPAIGN_ACTIONS))), A)
    chosen = plan_day(pool, policy, A).retention
    assert pool["client_id"].to_numpy()[chosen].tolist() == [5, 1]
    assert plan_revenue([100_000.0], A)[0] == pytest.approx(1_000.0)


def test_campaign_action_costs_are_configuration():
    cheap = BusinessAssumptions(campaign_action_costs_usd={x: 1.0 for x in CAMPAIGN_ACTIONS})
    assert (cheap.action_costs == 1.0).all() and len(BusinessAssumptions().action_costs) == len(CAMPAIGN_ACTIONS)
    with pytest.raises(ValueError, match="give a cost for every action"):
        _ = BusinessAssumptions(campaign_action_costs_usd={}).action_costs


def test_campaigns_take_the_best_net_action_by_value_per_dollar_within_budget():
    costs = np.array([1.0, 2.0])
    score = np.array([[0.5, 3.0], [2.0, 1.0], [-1.0, -0.5], [0.4, 0.1]])
    rows, action = select_campaign(score, costs, np.ones(4, bool), budget=3.0, positive_only=True)
    # best action per client: 1 (3.0, $2), 0 (2.0, $1), none (all negative), 0 (0.4, $1); per dollar 1.5, 2.0, 0.4
    assert rows.tolist() == [1, 0] and action.tolist() == [0, 1]
    rows, _ = select_campaign(score, costs, np.ones(4, bool), budget=4.0, positive_only=True)
    assert rows.tolist() == [1, 0, 3]


def test_the_oracle_captures_everything_and_random_is_its_exact_expectation():
    n = 8
    pool = eligible(clients(n), NEVER, NEVER, A)
    advisor = np.array([0.02, 0.05, 0.001, 0.03, 0.0, 0.04, 0.01, -0.02])
    retention = np.array([0.1, -0.05, 0.02, 0.0, 0.2, 0.01, -0.3, 0.01])
    campaign = np.tile(np.linspace(0.0, 0.2, len(CAMPAIGN_ACTIONS)), (n, 1)) * np.arange(n)[:, None] / n
    truth = gains(n, advisor, retention, campaign)
    plan = plan_day(pool, impact.oracle_policy(pool, truth, A), A)
    pools = use_case_pools(pool, plan.advisor, plan.retention)
    policies = {"value_only": value_policy(pool, A),
                # an uplift model that knows the truth is the oracle
                "uplift": uplift_scores_policy("uplift", pool, advisor, -retention, campaign, A)}
    capacity = impact.Capacity({10: 2, 20: 2}, A.retention_daily_capacity, A.campaign_daily_budget_usd)
    table = impact.impact_of_day(pool, truth, policies, pools, capacity, A,
                                 ("advisor_queue", "retention_list", "campaign_targets"))
    by = table.set_index(["use_case", "policy"])
    for use_case in ("advisor_queue", "retention_list", "campaign_targets"):
        assert by.loc[(use_case, "oracle"), "share_of_oracle_outcomes"] == pytest.approx(1.0)
        assert by.loc[(use_case, "uplift"), "incremental_outcomes"] == pytest.approx(by.loc[(use_case, "oracle"), "incremental_outcomes"])
    # random, per advisor: min(2, 4) of advisor 10's clients (mean 0.02525) and of advisor 20's (mean 0.0075)
    assert by.loc[("advisor_queue", "random"), "incremental_outcomes"] == pytest.approx(2 * 0.02525 + 2 * 0.0075)
    assert by.loc[("advisor_queue", "random"), "contacts"] == 4
    # the retention pool is what the queue left: oracle queue = clients 2, 4 (advisor 10) and 6 (advisor 20)
    left = np.setdiff1d(np.arange(n), plan.advisor)
    assert by.loc[("retention_list", "random"), "incremental_outcomes"] == pytest.approx(2 * retention[left].mean())
    # ROI: (revenue - cost) / cost, from the row's own sums
    row = by.loc[("advisor_queue", "oracle")]
    assert row["roi"] == pytest.approx((row["incremental_revenue_usd"] - row["cost_usd"]) / row["cost_usd"])
    assert row["incremental_revenue_usd"] == pytest.approx(advisor[plan.advisor].sum() * 5_000)


def test_every_policy_gets_the_calls_the_platform_made_per_advisor():
    pool = eligible(clients(8), NEVER, NEVER, A)
    truth = gains(8, np.linspace(0.05, 0.01, 8), np.zeros(8))
    pools = {"advisor_queue": np.ones(8, bool), "retention_list": np.ones(8, bool), "campaign_targets": np.ones(8, bool)}
    # the platform called one client of advisor 10 and none of advisor 20
    capacity = impact.Capacity({10: 1}, 0, 0.0)
    table = impact.impact_of_day(pool, truth, {"value_only": value_policy(pool, A)}, pools, capacity, A, ())
    by = table.set_index(["use_case", "policy"])
    assert by.loc[("advisor_queue", "value_only"), "contacts"] == 1 and by.loc[("advisor_queue", "random"), "contacts"] == 1
    assert by.loc[("advisor_queue", "random"), "incremental_outcomes"] == pytest.approx(truth.advisor[:4].mean())
    assert by.loc[("retention_list", "value_only"), "contacts"] == 0


def test_a_range_sums_distinct_contacts_and_never_multiplies_a_day():
    n = 8
    frame = clients(n)
    truth = gains(n, np.linspace(0.05, 0.01, n), np.linspace(0.1, 0.0, n))
    days, tables, contacted, seen = [dt.date(2026, 3, 1) + dt.timedelta(days=k) for k in range(3)], [], {}, []
    for day in days:
        pool = eligible(frame, days_since(NEVER, contacted, day), NEVER, A)
        keep = frame["client_id"].isin(pool["client_id"]).to_numpy()
        day_truth = impact.Gains(*(getattr(truth, f)[keep] for f in truth.__dataclass_fields__ if f != "counted_from"),
                                 truth.counted_from)
        policy = impact.oracle_policy(pool, day_truth, A)
        plan = plan_day(pool, policy, A)
        called = pool["client_id"].to_numpy()[np.r_[plan.advisor, plan.retention]]
        seen.extend(called.tolist())
        contacted.update(dict.fromkeys(called.tolist(), day))
        capacity = impact.Capacity(pool["advisor_id"].iloc[plan.advisor].value_counts().to_dict(), len(plan.retention), 0.0)
        tables.append(impact.impact_of_day(pool, day_truth, {}, use_case_pools(pool, plan.advisor, plan.retention), capacity, A, ())
                      .assign(as_of_date=day))
    assert len(seen) == len(set(seen))  # a client called once in the cool-down
    daily = pd.concat(tables)
    summed = impact.over_days(daily).set_index(["use_case", "policy"])
    oracle = daily[(daily["use_case"] == "advisor_queue") & (daily["policy"] == "oracle")]
    assert summed.loc[("advisor_queue", "oracle"), "incremental_outcomes"] == pytest.approx(oracle["incremental_outcomes"].sum())
    assert summed.loc[("advisor_queue", "oracle"), "contacts"] == oracle["contacts"].sum()
    # day two's and three's queues hold new clients, so the range is not the first day times three
    assert oracle["incremental_outcomes"].iloc[1] < oracle["incremental_outcomes"].iloc[0]


def test_kpis_are_ratios_of_the_rows():
    table = impact.with_ratios(pd.DataFrame([
        {"use_case": "advisor_queue", "policy": "uplift", "contacts": 200.0, "cost_usd": 1.0, "incremental_outcomes": 6.0,
         "baseline_outcomes": 4.0, "incremental_revenue_usd": 3.0},
        {"use_case": "advisor_queue", "policy": "propensity", "contacts": 200.0, "cost_usd": 1.0,
         "incremental_outcomes": 2.0, "baseline_outcomes": 20.0, "incremental_revenue_usd": 1.0},
        {"use_case": "retention_list", "policy": "uplift", "contacts": 10.0, "cost_usd": 1.0, "incremental_outcomes": 1.0,
         "baseline_outcomes": 4.0, "incremental_revenue_usd": 1.0},
        {"use_case": "campaign_targets", "policy": "uplift", "contacts": 10.0, "cost_usd": 10.0,
         "incremental_outcomes": 1.0, "baseline_outcomes": 1.0, "incremental_revenue_usd": 30.0},
        {"use_case": "campaign_targets", "policy": "oracle", "contacts": 10.0, "cost_usd": 10.0,
         "incremental_outcomes": 1.0, "baseline_outcomes": 1.0, "incremental_revenue_usd": 50.0},
    ]))
    k = impact.kpis(table)
    assert k["conversion_rate_lift_pct"] == pytest.approx(150.0) and k["churn_reduction_pct"] == pytest.approx(25.0)
    assert k["advisor_efficiency_uplift"] == pytest.approx(3.0) and k["advisor_efficiency_propensity"] == pytest.approx(1.0)
    assert k["campaign_roi"] == pytest.approx(2.0) and k["campaign_roi_share_of_oracle"] == pytest.approx(0.5)


def test_reasons_name_the_features_that_raise_the_effect():
    rows = pd.DataFrame({"saver": [0.9, 0.1], "digital": [0.1, 0.9], "tier": pd.Categorical(["gold", "basic"])})
    typical = typical_values(pd.DataFrame({"saver": [0.5] * 3, "digital": [0.5] * 3,
                                           "tier": pd.Categorical(["basic"] * 3, categories=["basic", "gold"])}),
                             ("saver", "digital"), ("tier",))

    def effect(f: pd.DataFrame) -> np.ndarray:  # savers, non-digital and gold clients respond to a call
        return 2 * f["saver"].to_numpy() - f["digital"].to_numpy() + 0.1 * (f["tier"].astype(str) == "gold").to_numpy()

    why = effect_reasons(effect, rows, typical)
    assert why.iloc[0].tolist() == ["saver", "digital", "tier"]
    assert why.iloc[1].tolist() == ["", "", ""]  # nothing about client 2 makes a call work better than usual


def test_segments_cover_every_client_once():
    scored = pd.DataFrame(
        {
            "client_id": range(6),
            "lifecycle_segment": ["new", "new", "engaged", "engaged", "dormant", "at_risk"],
            "investable_assets": [10_000, 60_000, 300_000, 20_000, 5_000, 500_000],
            "p_conversion": [0.01, 0.02, 0.10, 0.03, 0.00, 0.05],
            "p_churn": [0.01, 0.03, 0.01, 0.06, 0.10, 0.2],
        }
    )
    segments = client_segments(scored)
    assert segments["clients"].sum() == 6 and segments["share"].sum() == pytest.approx(1.0)
    row = segments[(segments["lifecycle_segment"] == "engaged") & (segments["value_tier"] == "affluent")].iloc[0]
    assert row["risk_band"] == "low" and row["clients"] == 1
    assert set(segments["risk_band"]) == {"low", "medium", "high"}


def test_without_ground_truth_impact_counts_the_models_estimate_with_no_oracle_and_no_unestimated_list():
    n = 8
    advisor = np.array([0.02, 0.05, 0.001, 0.03, 0.0, 0.04, 0.01, -0.02])
    response = np.tile(np.linspace(0.02, 0.1, len(CAMPAIGN_ACTIONS)), (n, 1))
    pool = eligible(clients(n), NEVER, NEVER, A).assign(
        p_conversion=np.full(n, 0.1), p_churn=np.full(n, 0.2),
        # the advisor outreach has an uplift champion; the retention call has none (NaN)
        effect_conversion_advisor_outreach=advisor, effect_churn_retention_call=np.nan,
        score_no_contact=np.full(n, 0.01), **{f"score_{x}": response[:, k] for k, x in enumerate(CAMPAIGN_ACTIONS)})
    estimate = impact.estimated_gains(pool)
    assert estimate.counted_from == impact.MODEL_ESTIMATE and not estimate.from_truth
    np.testing.assert_allclose(estimate.advisor, advisor)
    np.testing.assert_allclose(estimate.campaign, response - 0.01)
    uplift = uplift_scores_policy("uplift", pool, advisor, np.full(n, np.nan), response - 0.01, A)
    plan = plan_day(pool, uplift, A)
    pools = use_case_pools(pool, plan.advisor, plan.retention)
    capacity = impact.Capacity({10: 2, 20: 2}, A.retention_daily_capacity, A.campaign_daily_budget_usd)
    judged = ("advisor_queue", "campaign_targets")
    table = impact.impact_of_day(pool, estimate, {"value_only": value_policy(pool, A), "uplift": uplift}, pools,
                                 capacity, A, judged)
    # no oracle (no truth: nothing says what the best could be), no share of it, no retention list (nothing
    # estimates what its calls cause), and every row says what its outcomes are counted from
    assert set(table["policy"]) == {"random", "value_only", "uplift"}
    assert set(table["use_case"]) == set(judged)
    assert "share_of_oracle_outcomes" not in table and set(table["counted_from"]) == {impact.MODEL_ESTIMATE}
    assert table[["incremental_outcomes", "baseline_outcomes", "incremental_revenue_usd"]].notna().all().all()
    by = table.set_index(["use_case", "policy"])
    # the uplift queue: advisor 10 nets 50, 200, -45, 100 (clients 2 and 4), advisor 20 -50, 150, 0, -150
    # (client 6 only: a call that nets nothing is not made); credited with the effects the champion predicts
    assert pool["client_id"].to_numpy()[plan.advisor].tolist() == [2, 4, 6]
    assert by.loc[("advisor_queue", "uplift"), "incremental_outcomes"] == pytest.approx(0.05 + 0.03 + 0.04)
    assert by.loc[("advisor_queue", "uplift"), "baseline_outcomes"] == pytest.approx(3 * 0.1)
    # random: 2 of advisor 10's 4 clients (mean 0.02525), 2 of advisor 20's (mean 0.0075), estimated the same way
    assert by.loc[("advisor_queue", "random"), "incremental_outcomes"] == pytest.approx(2 * 0.02525 + 2 * 0.0075)
    summed = impact.over_days(table.assign(as_of_date=dt.date(2026, 3, 1)))
    assert set(summed["counted_from"]) == {impact.MODEL_ESTIMATE} and "share_of_oracle_outcomes" not in summed
    [note] = impact.unjudged_lists(judged)
    assert note.startswith("retention_list: not judged") and NO_GROUND_TRUTH in note


def test_with_ground_truth_every_row_says_it_is_counted_from_the_true_effects():
    n = 8
    pool = eligible(clients(n), NEVER, NEVER, A)
    truth = gains(n, np.linspace(0.05, 0.01, n), np.linspace(0.1, 0.0, n))
    plan = plan_day(pool, impact.oracle_policy(pool, truth, A), A)
    capacity = impact.Capacity({10: 2, 20: 2}, A.retention_daily_capacity, A.campaign_daily_budget_usd)
    table = impact.impact_of_day(pool, truth, {}, use_case_pools(pool, plan.advisor, plan.retention), capacity, A, ())
    assert set(table["counted_from"]) == {impact.TRUE_EFFECTS} and "share_of_oracle_outcomes" in table
