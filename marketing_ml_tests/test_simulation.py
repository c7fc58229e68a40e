"""The simulator is the ground truth: deterministic, causal and shaped like the real thing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from marketing_ml.resources.simulation import SimulationResource
from marketing_ml.simulation.config import RegimeShift, SimulationConfig
from marketing_ml.simulation.effects import ARMS, CONTROL, INTERVENTIONS, OUTCOMES, hazard_shifts, shift_frame, true_effect
from marketing_ml.simulation.engine import simulate_days
from marketing_ml.simulation.population import client_profiles, generate_population
from marketing_ml.simulation.vocabulary import ACTION_NAMES, CHANNELS, EVENT_TYPES
from marketing_ml_tests.conftest import TEST_START

CONFIG = SimulationConfig(start_date=TEST_START, n_clients=2_000)


@pytest.fixture(scope="module")
def history():
    return simulate_days(CONFIG, TEST_START, TEST_START + dt.timedelta(days=119), workers=1)


def _day(frame: pd.DataFrame, column: str, day: dt.date) -> pd.DataFrame:
    return frame[frame[column] == day].reset_index(drop=True)


def test_a_day_is_identical_whatever_range_builds_it(history):
    day = TEST_START + dt.timedelta(days=45)
    alone = simulate_days(CONFIG, day, day, workers=1)
    for table, column in (("events", "event_date"), ("touches", "touch_date"), ("outcomes", "outcome_date"), ("hazards", "as_of_date")):
        pd.testing.assert_frame_equal(getattr(alone, table), _day(getattr(history, table), column, day))
    assert len(alone.events) > 0 and len(alone.hazards) > 0


def test_parallel_blocks_give_the_same_rows_as_one_process():
    config = SimulationConfig(start_date=TEST_START, n_clients=9_000, burn_in_days=30)  # two blocks
    day = TEST_START + dt.timedelta(days=3)
    serial = simulate_days(config, TEST_START, day, workers=1)
    parallel = simulate_days(config, TEST_START, day, workers=2)
    pd.testing.assert_frame_equal(serial.events, parallel.events)
    pd.testing.assert_frame_equal(serial.hazards, parallel.hazards)
    assert serial.events["client_id"].max() > 8192  # the second block produced rows


def test_ids_are_unique_and_vocabularies_closed(history):
    events = history.events
    assert events["event_id"].is_unique
    assert history.touches["touch_id"].is_unique
    assert history.outcomes["outcome_id"].is_unique
    assert set(events["channel"].unique()) == set(CHANNELS)
    assert set(events["event_type"].unique()) <= set(EVENT_TYPES)
    assert set(history.touches["action"].unique()) == set(ACTION_NAMES)


def test_event_volume_is_realistic(history):
    per_client_year = len(history.events) / CONFIG.n_clients / 120 * 365
    assert 100 <= per_client_year <= 200


def test_no_events_after_churn_and_no_second_conversion(history):
    outcomes = history.outcomes
    churn = outcomes[outcomes["outcome_type"] == "churn"][["client_id", "outcome_date"]]
    assert len(churn) > 10
    late = history.events.merge(churn, on="client_id")
    assert (late["event_date"] <= late["outcome_date"]).all()
    assert outcomes.groupby(["client_id", "outcome_type"]).size().max() == 1


def test_events_only_after_enrollment(history):
    clients = client_profiles(CONFIG, generate_population(CONFIG))[["client_id", "enrollment_date"]]
    joined = history.events.merge(clients, on="client_id")
    assert (joined["event_date"] > joined["enrollment_date"]).all()
    assert (clients["enrollment_date"] > TEST_START).any()  # some clients join during the history


def test_converters_engage_more_before_converting_than_others(history):
    events, outcomes = history.events, history.outcomes
    conversions = outcomes[(outcomes["outcome_type"] == "conversion") & (outcomes["outcome_date"] >= TEST_START + dt.timedelta(days=30))]
    assert len(conversions) >= 20
    advice = events[events["event_type"].isin(["calculator_use", "advisor_call", "advisor_meeting", "webinar_attendance"])]

    def advice_events_before(rows: pd.DataFrame) -> np.ndarray:
        window = advice.merge(rows[["client_id", "outcome_date"]], on="client_id")
        window = window[(window["event_date"] < window["outcome_date"]) & (window["event_date"] >= window["outcome_date"] - pd.Timedelta(days=30))]
        counts = window.groupby("client_id").size()
        return counts.reindex(rows["client_id"], fill_value=0).to_numpy()

    # compare with other clients active on the same dates
    converted_ids = set(outcomes["client_id"])
    others = history.hazards[~history.hazards["client_id"].isin(converted_ids)]
    rng = np.random.default_rng(0)
    controls = []
    for date in conversions["outcome_date"]:
        pool = others[others["as_of_date"] == date]["client_id"].to_numpy()
        controls.append(pd.DataFrame({"client_id": rng.choice(pool, 5), "outcome_date": date}))
    converters = advice_events_before(conversions).mean()
    non_converters = advice_events_before(pd.concat(controls)).mean()
    assert converters > 1.5 * non_converters


def test_outcome_probability_is_the_true_hazard_of_that_day(history):
    joined = history.outcomes.merge(history.hazards, left_on=["client_id", "outcome_date"], right_on=["client_id", "as_of_date"])
    assert len(joined) == len(history.outcomes)
    expected = np.where(joined["outcome_type"] == "churn", joined["p_churn_daily"], joined["p_conversion_daily"])
    np.testing.assert_allclose(joined["p_true"], expected, rtol=1e-6)
    # outcomes happen where the hazard is high: mean p_true of outcomes is above the population mean
    assert joined["p_true"][joined["outcome_type"] == "conversion"].mean() > history.hazards["p_conversion_daily"].mean()


def test_touches_are_a_random_experiment_with_known_truth(history):
    touches = history.touches
    shares = touches["action"].value_counts(normalize=True)
    assert shares.max() - shares.min() < 0.06  # uniform over six actions
    truth = touches[[f"p_true_{a}" for a in ACTION_NAMES]].to_numpy()
    chosen = touches["action"].map({a: i for i, a in enumerate(ACTION_NAMES)}).to_numpy()
    np.testing.assert_allclose(touches["p_response_true"], truth[np.arange(len(touches)), chosen])
    # observed response rate agrees with the true probabilities (binomial tolerance)
    p = touches["p_response_true"].to_numpy()
    assert abs(touches["responded"].mean() - p.mean()) < 4 * np.sqrt((p * (1 - p)).sum()) / len(p)
    # the best action differs between clients
    assert len(set(truth.argmax(axis=1))) >= 3


def test_client_profiles_are_rich_and_plausible():
    clients = client_profiles(CONFIG, generate_population(CONFIG))
    assert len(clients) == CONFIG.n_clients and clients["client_id"].is_unique
    assert len(clients.columns) >= 20
    assert clients["email"].str.contains("@").all()
    assert clients["annual_income"].between(5_000, 2_000_000).all()
    assert (clients["balance_401k"] >= 0).all()
    assert clients["contribution_rate"].between(0, 0.2).all()
    assert clients["service_tier"].nunique() == 3


def test_a_regime_shift_changes_behaviour_only_from_its_date():

    shift_day = TEST_START + dt.timedelta(days=20)
    shifted = SimulationConfig(start_date=TEST_START, n_clients=2_000, regime_shift=RegimeShift(start=shift_day))
    base = simulate_days(CONFIG, TEST_START, TEST_START + dt.timedelta(days=39), workers=1).events
    after = simulate_days(shifted, TEST_START, TEST_START + dt.timedelta(days=39), workers=1).events
    before_shift = lambda e: e[e["event_date"] < shift_day]  # noqa: E731
    pd.testing.assert_frame_equal(before_shift(base).reset_index(drop=True), before_shift(after).reset_index(drop=True))
    mobile = lambda e: (e[e["event_date"] >= shift_day]["channel"] == "mobile_app").mean()  # noqa: E731
    assert mobile(after) > mobile(base) + 0.1


def test_interventions_are_a_randomised_experiment_with_a_cool_down(history):
    arms = history.interventions
    assert set(arms["intervention"]) == set(ARMS)
    shares = arms["intervention"].value_counts(normalize=True)
    assert shares.max() - shares.min() < 0.05  # uniform over the three arms
    np.testing.assert_allclose(arms["assignment_probability"], 1 / len(ARMS))
    # a client is assigned again only after the cool-down, so no two contacts' windows overlap
    dates = arms.sort_values("intervention_date").groupby("client_id")["intervention_date"]
    gaps = dates.diff().dropna().map(lambda d: d.days)
    assert (gaps > CONFIG.contact_cooldown_days).all()
    # only active, unconverted clients are assigned: each assignment is a hazards row with conversion open
    joined = arms.merge(history.hazards, left_on=["client_id", "intervention_date"], right_on=["client_id", "as_of_date"])
    assert len(joined) == len(arms)


def test_all_four_uplift_groups_exist_and_the_correlation_setting_moves_them():
    population = generate_population(SimulationConfig(start_date=TEST_START, n_clients=5_000))
    propensity = 0.45 * population.wealth_z + 0.30 * population.tier_idx + 0.15 * population.advice_affinity
    effect = {}
    for correlation in (0.0, 0.9):
        advisor = hazard_shifts(population, correlation)[:, 0, 0]
        effect[correlation] = np.corrcoef(advisor, propensity)[0, 1]
        high, big = propensity > np.quantile(propensity, 0.7), advisor > np.quantile(advisor, 0.7)
        assert (high & big).any() and (~high & big).any()  # persuadables with and without high propensity
        assert (advisor < 0).mean() > 0.05  # sleeping dogs: the call lowers their conversion
    assert abs(effect[0.0]) < 0.1 and effect[0.9] > 0.8
    default = hazard_shifts(population, SimulationConfig.effect_propensity_correlation)
    # sure things: high propensity, an effect under a third of the mean daily hazard
    assert ((propensity > np.quantile(propensity, 0.7)) & (np.abs(default[:, 0, 0]) < 1e-4)).mean() > 0.01
    retention = default[:, 1, 1]
    assert (retention > 0).mean() > 0.05 and (retention < 0).mean() > 0.5  # sleeping dogs and the saved


def test_the_randomised_arms_reproduce_the_stored_true_effects():
    """The stored effect (hazard at the contact date held over the horizon) against what the arms realise.

    20k clients, 300 days: contacts of the first 210 days have a matured 90-day window. Four comparisons
    at 99% each; the advisor's conversion effect must also be clearly non-zero, so the test has power."""
    config = SimulationConfig(start_date=TEST_START, n_clients=20_000, burn_in_days=30)
    days = simulate_days(config, TEST_START, config.date_of(299), workers=2)
    shifts = shift_frame(generate_population(config), config.effect_propensity_correlation)
    shifts["client_id"] = np.arange(1, config.n_clients + 1)
    rows = (
        days.interventions[days.interventions["intervention_date"] <= config.date_of(209)]
        .merge(days.hazards, left_on=["client_id", "intervention_date"], right_on=["client_id", "as_of_date"])
        .merge(shifts, on="client_id")
    )
    contact = pd.to_datetime(rows["intervention_date"])
    for outcome, horizon in (("conversion", 30), ("churn", 90)):
        happened = days.outcomes[days.outcomes["outcome_type"] == outcome][["client_id", "outcome_date"]]
        when = rows[["client_id"]].merge(happened, on="client_id", how="left")["outcome_date"]
        lag = (pd.to_datetime(when) - contact).dt.days
        y = ((lag >= 0) & (lag < horizon)).to_numpy(dtype=float)
        control = y[rows["intervention"] == CONTROL]
        for intervention in INTERVENTIONS:
            arm = (rows["intervention"] == intervention.name).to_numpy()
            truth = true_effect(
                rows[f"p_{outcome}_daily_uncontacted"].to_numpy()[arm],
                rows[f"hazard_shift_{outcome}_{intervention.name}"].to_numpy()[arm],
                outcome, intervention.window_days, horizon,
            ).mean()
            realised = y[arm].mean() - control.mean()
            half_width = 2.576 * np.sqrt(y[arm].var() / arm.sum() + control.var() / len(control))
            assert abs(truth - realised) < half_width, f"{intervention.name} on {outcome}: true {truth:.4f}, realised {realised:.4f} ± {half_width:.4f}"
            if (intervention.name, outcome) == ("advisor_outreach", "conversion"):
                assert realised > half_width  # detectably positive
    assert OUTCOMES == ("conversion", "churn")


def test_the_simulation_resource_carries_every_setting_of_the_world():
    config = SimulationConfig(start_date=TEST_START, n_clients=1_234, seed=9, burn_in_days=45, touch_rate=0.03,
                              enrolling_share=0.1, intervention_rate=0.05, contact_cooldown_days=120,
                              effect_propensity_correlation=0.9,
                              regime_shift=RegimeShift(start=TEST_START + dt.timedelta(days=30)))
    assert SimulationResource.from_config(config).config == config
