"""Business outputs on tiny hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketing_ml.decisions.business import (
    BusinessAssumptions,
    advisor_queue,
    advisory_revenue,
    campaign_targets,
    impact_table,
    targeting_comparison,
)
from marketing_ml.scoring.segments import client_segments
from marketing_ml.simulation.vocabulary import ACTION_NAMES


def test_queue_orders_by_expected_value_and_caps_each_advisor():
    a = BusinessAssumptions(advisor_daily_capacity=2, advisory_asset_share=0.5, advisory_fee_rate=0.01)
    scored = pd.DataFrame(
        {
            "client_id": [1, 2, 3, 4, 5],
            "advisor_id": [10, 10, 10, 20, 20],
            "p_conversion": [0.10, 0.50, 0.20, 0.05, 0.30],
            "investable_assets": [1_000_000, 100_000, 400_000, 2_000_000, 10_000],
        }
    )
    queue = advisor_queue(scored, a)
    # expected value = p x assets x 0.5 x 1%: client 1 = 500, 2 = 250, 3 = 400, 4 = 500, 5 = 15
    assert queue[queue["advisor_id"] == 10]["client_id"].tolist() == [1, 3]
    assert queue[queue["advisor_id"] == 20]["client_id"].tolist() == [4, 5]
    assert queue["rank"].tolist() == [1, 2, 1, 2]
    assert queue.loc[0, "expected_value"] == pytest.approx(500.0)
    assert advisory_revenue(np.array([200_000.0]), a)[0] == pytest.approx(1000.0)


def test_campaign_targets_pick_the_best_incremental_action_within_budget():
    a = BusinessAssumptions(campaign_daily_budget_usd=42.0)
    scores = pd.DataFrame({"client_id": [1, 2, 3]})
    for action in ACTION_NAMES:
        scores[f"score_{action}"] = 0.01
    scores.loc[0, "score_retirement_readiness_email"] = 0.11  # +0.10 for $0.5: 0.2 per dollar
    scores.loc[1, "score_advisor_meeting_invite"] = 0.41  # +0.40 for $40: 0.01 per dollar
    scores.loc[2, "score_no_contact"] = 0.5  # contacting cannot beat leaving alone
    plan = campaign_targets(scores, ACTION_NAMES, a)
    assert plan["client_id"].tolist() == [1, 2]
    assert plan["action"].tolist() == ["retirement_readiness_email", "advisor_meeting_invite"]
    assert plan["expected_incremental_response"].tolist() == pytest.approx([0.10, 0.40])
    assert plan["cumulative_cost_usd"].iloc[-1] <= a.campaign_daily_budget_usd
    tighter = campaign_targets(scores, ACTION_NAMES, BusinessAssumptions(campaign_daily_budget_usd=10.0))
    assert tighter["client_id"].tolist() == [1]  # the $40 invite no longer fits


def test_targeting_comparison_arithmetic():
    p_true = np.array([0.5, 0.1, 0.3, 0.1])
    value = np.array([1.0, 1.0, 1.0, 10.0])
    p_model = np.array([0.4, 0.3, 0.1, 0.05])  # ranks by p x value: 0 (0.4), 3 (0.5) ... model picks 3 then 0
    result = targeting_comparison(p_model, p_true, value, k=2)
    assert result["model"]["expected_outcomes"] == pytest.approx(0.6)  # clients 3 and 0
    assert result["model"]["expected_value"] == pytest.approx(1.5)  # 0.1 x 10 + 0.5 x 1
    assert result["oracle"]["expected_value"] == pytest.approx(1.5)
    assert result["random"]["expected_outcomes"] == pytest.approx(1.0 * 2 / 4)
    assert result["random"]["expected_value"] == pytest.approx((0.5 + 0.1 + 0.3 + 1.0) / 2)
    table = impact_table({"conversion": result}).set_index("policy")
    assert table.loc["model", "lift_vs_random_pct"] == pytest.approx(100 * (1.5 / 0.95 - 1))
    assert table.loc["model", "captured_pct"] == pytest.approx(100.0)


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
