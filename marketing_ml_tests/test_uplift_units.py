"""Uplift metrics and meta-learners as plain functions: hand-made frames and synthetic worlds with known effects."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.simulation.effects import CONTROL, true_effect
from marketing_ml.training.datasets import PlanError
from marketing_ml.training.families import FAMILIES, FitOptions
from marketing_ml.uplift.dataset import no_randomised_contacts, plan_uplift
from marketing_ml.uplift.evaluation import auuc, policy_comparison, qini_coefficient, qini_curve, truth_metrics
from marketing_ml.uplift.learners import LEARNERS, ArmData, fit_uplift
from marketing_ml.uplift.report import judge_uplift
from marketing_ml.uplift.store import beats_propensity

# score, treated, outcome: the Qini curve of this frame is worked out by hand in the test below
HAND = pd.DataFrame({
    "score": [8, 7, 6, 5, 4, 3, 2, 1],
    "treated": [1, 0, 1, 0, 1, 0, 1, 0],
    "y": [1, 0, 1, 1, 0, 0, 0, 1],
})


def test_qini_curve_and_coefficient_on_a_hand_made_frame():
    # Q(k) = treated outcomes - control outcomes x treated/control counts, over the top k:
    # k=1: 1 - 0; k=2: 1 - 0*1/1; k=3: 2 - 0; k=4: 2 - 1*2/2; k=5: 2 - 1*3/2; k=6: 2 - 1*3/3; k=7: 2 - 1*4/3; k=8: 2 - 2*4/4
    expected = np.array([1, 1, 2, 1, 0.5, 1, 2 - 4 / 3, 0])
    q = qini_curve(HAND["y"], HAND["treated"], HAND["score"])
    np.testing.assert_allclose(q, expected)
    # Q(N) = 0, so the random line is flat at 0 and the coefficient is the mean of Q per contact
    assert qini_coefficient(HAND["y"], HAND["treated"], HAND["score"]) == pytest.approx(expected.mean() / 8)
    # reversing the ranking can only be worse here
    assert qini_coefficient(HAND["y"], HAND["treated"], -HAND["score"]) < 0
    # AUUC: uplift of the top k times k, averaged, per contact; k=2 has rates 1/1 - 0/1
    rates_t = np.array([1, 1, 1, 1, 2 / 3, 2 / 3, 0.5, 0.5])
    rates_c = np.array([0, 0, 0, 0.5, 0.5, 1 / 3, 1 / 3, 0.5])
    assert auuc(HAND["y"], HAND["treated"], HAND["score"]) == pytest.approx(
        np.mean((rates_t - rates_c) * np.arange(1, 9)) / 8)


def test_policies_oracle_takes_everything_and_random_its_exact_expectation():
    truth = np.array([0.05, -0.02, 0.01, 0.0, 0.03])
    table = policy_comparison(truth, {"model": np.array([5, 4, 3, 2, 1])}, capacity=2).set_index("policy")
    assert table.loc["oracle", "true_incremental_outcomes"] == pytest.approx(0.08)
    assert table.loc["oracle", "share_of_oracle"] == pytest.approx(1.0)
    assert table.loc["random", "true_incremental_outcomes"] == pytest.approx(2 * truth.mean())
    assert table.loc["model", "true_incremental_outcomes"] == pytest.approx(0.03)
    assert (table["contacts"] == 2).all()


def test_true_effect_is_the_change_of_the_horizon_probability():
    h, shift = np.array([0.001]), np.array([0.002])
    # conversion: additive shift over the 30-day window, the whole horizon
    expected = (1 - (1 - 0.003) ** 30) - (1 - (1 - 0.001) ** 30)
    np.testing.assert_allclose(true_effect(h, shift, "conversion", 30, 30), expected)
    # churn: a log shift over a 30-day window, the rest of the 90-day horizon at the baseline
    shifted = 0.001 * np.exp(-0.5)
    expected = (1 - (1 - shifted) ** 30 * (1 - 0.001) ** 60) - (1 - (1 - 0.001) ** 90)
    np.testing.assert_allclose(true_effect(h, np.array([-0.5]), "churn", 30, 90), expected)
    # a harmful conversion shift stops at the floor: the hazard keeps a fifth of itself
    np.testing.assert_allclose(true_effect(h, np.array([-1.0]), "conversion", 30, 30),
                               (1 - (1 - 0.0002) ** 30) - (1 - (1 - 0.001) ** 30))


SPEC = ModelInputs(numeric=("x0", "x1", "x2", "x3"), categorical=())


def _synthetic_world(n: int, effect: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Randomised arms; propensity from x0, the advisor's effect from x1 (uncorrelated with x0)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=list(SPEC.numeric))
    frame["intervention"] = rng.choice([CONTROL, "advisor_outreach", "retention_call"], n)
    base = 1 / (1 + np.exp(-(-3.2 + 0.9 * frame["x0"])))
    tau = effect * np.where(frame["x1"] > 0, 1.0, -0.3)
    p = np.clip(base + tau * (frame["intervention"] == "advisor_outreach"), 0, 1)
    frame["converted"] = rng.random(n) < p
    return frame, tau


def _fit(frame: pd.DataFrame, learner: str):
    half = len(frame) // 2
    train, selection = frame.iloc[:half], frame.iloc[half:]
    return fit_uplift(learner, FAMILIES["logreg"], "conversion", 30, SPEC,
                      ArmData.from_frame(train, SPEC, "intervention", "converted"),
                      ArmData.from_frame(selection, SPEC, "intervention", "converted"), FitOptions(threads=1))


def _qini(model, frame: pd.DataFrame, score: np.ndarray | None = None) -> float:
    pair = frame["intervention"].isin([CONTROL, "advisor_outreach"]).to_numpy()
    if score is None:
        score = model.predict_effects(frame)["advisor_outreach"].to_numpy()
    return qini_coefficient(frame["converted"].to_numpy()[pair], (frame["intervention"] == "advisor_outreach").to_numpy()[pair],
                            score[pair])


@pytest.mark.parametrize("learner", LEARNERS)
def test_learners_find_effects_that_exist_and_none_where_there_are_none(learner):
    world, _ = _synthetic_world(120_000, effect=0.0, seed=1)
    fresh, _ = _synthetic_world(60_000, effect=0.0, seed=2)
    null_qini = _qini(_fit(world, learner), fresh)

    world, _ = _synthetic_world(120_000, effect=0.04, seed=1)
    fresh, tau = _synthetic_world(60_000, effect=0.04, seed=2)
    model = _fit(world, learner)
    effect_qini = _qini(model, fresh)
    oracle_qini = _qini(model, fresh, tau)
    assert abs(null_qini) < 0.15 * oracle_qini, (null_qini, oracle_qini)
    assert effect_qini > 0.5 * oracle_qini, (effect_qini, oracle_qini)
    assert truth_metrics(model.predict_effects(fresh)["advisor_outreach"], tau)["rank_correlation"] > 0.6


def test_the_gate_refuses_ranking_by_propensity_where_effect_and_propensity_are_unrelated():
    world, _ = _synthetic_world(120_000, effect=0.04, seed=3)
    fresh, _ = _synthetic_world(60_000, effect=0.04, seed=4)
    model = _fit(world, "t_learner")
    propensity = model.predict_control(fresh)
    by_propensity = _qini(model, fresh, propensity)
    by_model = _qini(model, fresh)
    # a "model" whose effects are the propensity earns exactly what propensity earns: refused
    assert not beats_propensity(by_propensity, by_propensity)
    assert beats_propensity(by_model, by_propensity)


def test_a_history_too_short_for_matured_contacts_is_refused_with_advice():
    start = dt.date(2025, 1, 1)
    with pytest.raises(PlanError, match="Build more history"):
        plan_uplift(start, start + dt.timedelta(days=120), warmup_days=90, selection_days=45, test_days=60,
                    fit_to_history=True)
    plan = plan_uplift(start, start + dt.timedelta(days=364), warmup_days=90, selection_days=45, test_days=60,
                       fit_to_history=True)
    train, selection, test = plan.ranges["train"], plan.ranges["selection"], plan.ranges["test"]
    assert train[1] < selection[0] <= selection[1] < test[0]
    assert test[1] == start + dt.timedelta(days=364 - 89)  # the last contact whose 90-day window has ended


def test_a_constant_prediction_has_no_rank_correlation():
    metrics = truth_metrics(np.full(5, 0.01), np.array([0.0, 0.01, 0.02, 0.03, 0.04]))
    assert np.isnan(metrics["rank_correlation"]) and metrics["pehe"] > 0


def test_without_ground_truth_a_model_is_judged_by_the_observed_arms_only():
    # a frame without the truth columns, as a provider's uplift set is
    world, _ = _synthetic_world(20_000, effect=0.04, seed=5)
    fresh, _ = _synthetic_world(10_000, effect=0.04, seed=6)
    model = _fit(world, "t_learner")
    report = judge_uplift(model, fresh, 0.1, {"advisor_outreach": 60.0, "retention_call": 35.0},
                          ground_truth=False)
    assert report.metrics["advisor_outreach.qini"] == pytest.approx(_qini(model, fresh))
    observed = {f"{i}.{m}" for i in ("advisor_outreach", "retention_call") for m in ("qini", "auuc", "qini_propensity")}
    # the truth figures are left out, not shown as 0 or NaN
    assert set(report.metrics) == observed | {"contacts"}
    assert report.policies == {}
    for deciles in report.deciles.values():
        assert "true_uplift" not in deciles and deciles["observed_uplift"].notna().all()


def test_a_contact_log_without_randomised_contacts_says_why_no_model_is_trained():
    assert "interventions table is empty" in no_randomised_contacts(0, 0)
    assert "none of the 1,200 logged contacts has an assignment_probability" in no_randomised_contacts(1_200, 0)
    assert no_randomised_contacts(1_200, 1) is None
