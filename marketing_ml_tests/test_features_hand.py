"""Features of a few hand-made clients, built through dbt and Dagster, against values computed by hand.

As of 2025-02-01 (D), windows are [D-7, D-1] = Jan 25..31, [D-30, D-1] = Jan 2..31, [D-90, D-1] =
Nov 3..Jan 31, and the touch window [D-180, D-1] starts on Aug 5.
"""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import pandas as pd
import pytest

from marketing_ml.features.catalog import FEATURE_TABLE
from marketing_ml.settings import Settings
from marketing_ml.simulation.config import SimulationConfig
from marketing_ml_tests.conftest import run_step

D = dt.date(2025, 2, 1)
START = dt.date(2025, 1, 1)


def _client(client_id, enrolled, **overrides):
    profile = {
        "client_id": client_id, "first_name": "A", "last_name": "B", "email": "a@b.c", "phone": "1",
        "date_of_birth": dt.date(1980, 1, 1), "gender": "female", "state": "MA", "marital_status": "married",
        "dependents": 2, "annual_income": 100_000.0, "balance_401k": 200_000.0, "contribution_rate": 0.06,
        "employer_match_rate": 0.04, "employer_id": 1, "industry": "finance", "tenure_years": 5.0,
        "enrollment_date": enrolled, "risk_tolerance": "moderate", "outside_assets": 50_000.0,
        "home_owner": True, "service_tier": "plus", "assigned_advisor_id": 1, "target_retirement_age": 65,
    }
    return profile | overrides


LONG_AGO = dt.date(2020, 1, 1)
CLIENTS = [
    _client(1, LONG_AGO),  # the worked example: growing
    _client(2, dt.date(2025, 1, 10)),  # enrols during the window: new
    _client(3, LONG_AGO),  # churns on Jan 20
    _client(4, LONG_AGO, annual_income=0.0),  # converts on Jan 15, no events: dormant
    _client(5, LONG_AGO),  # two document downloads: at risk
    _client(6, LONG_AGO),  # three calculator uses: engaged
]

# (client, date, channel, event_type, device)
EVENTS = [
    (1, "2025-01-31", "web", "login", "desktop"),
    (1, "2025-01-31", "mobile_app", "page_view", "mobile"),
    (1, "2025-01-25", "email", "email_open", "mobile"),  # D-7: inside the 7-day window
    (1, "2025-01-25", "email", "email_click", "mobile"),
    (1, "2025-01-10", "web", "calculator_use", "desktop"),
    (1, "2024-11-10", "branch", "advisor_meeting", "in_person"),
    (1, "2024-10-01", "webinar", "webinar_attendance", "desktop"),  # 123 days before: outside
    (1, "2025-02-01", "advisor_call", "advisor_call", "phone"),  # on D: not yet known as of D
    (1, "2025-02-05", "web", "login", "desktop"),  # after D
    (3, "2025-01-18", "web", "login", "desktop"),
    (5, "2024-12-20", "web", "page_view", "desktop"),
    (5, "2025-01-20", "web", "document_download", "desktop"),
    (5, "2025-01-21", "web", "document_download", "desktop"),
    (6, "2025-01-28", "web", "calculator_use", "desktop"),
    (6, "2025-01-29", "mobile_app", "calculator_use", "mobile"),
    (6, "2025-01-30", "webinar", "webinar_attendance", "desktop"),
]
# (client, date, responded)
TOUCHES = [(1, "2024-07-01", True), (1, "2024-12-01", True), (1, "2025-01-20", False), (1, "2025-02-01", True)]
# (client, date, type)
OUTCOMES = [(3, "2025-01-20", "churn"), (4, "2025-01-15", "conversion")]


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> pd.DataFrame:
    home = tmp_path_factory.mktemp("mm_hand")
    settings = Settings(data_dir=home, warehouse="duckdb", simulation=SimulationConfig(start_date=START, n_clients=6))
    events = pd.DataFrame(EVENTS, columns=["client_id", "event_date", "channel", "event_type", "device"])
    events.insert(0, "event_id", range(1, len(events) + 1))
    events["event_date"] = pd.to_datetime(events["event_date"]).dt.date
    events["event_ts"] = pd.to_datetime(events["event_date"]) + pd.Timedelta(hours=12)
    events["campaign_id"] = None
    touches = pd.DataFrame(TOUCHES, columns=["client_id", "touch_date", "responded"])
    touches.insert(0, "touch_id", range(1, len(touches) + 1))
    touches["touch_date"] = pd.to_datetime(touches["touch_date"]).dt.date
    touches["action"], touches["campaign_id"] = "webinar_invite", "CMP-x"
    outcomes = pd.DataFrame(OUTCOMES, columns=["client_id", "outcome_date", "outcome_type"])
    outcomes.insert(0, "outcome_id", range(1, len(outcomes) + 1))
    outcomes["outcome_date"] = pd.to_datetime(outcomes["outcome_date"]).dt.date
    outcomes["amount_usd"] = 1.0
    clients = pd.DataFrame(CLIENTS)
    with duckdb.connect(str(settings.duckdb_path)) as conn:
        conn.execute("create schema raw")
        for name, frame in [("raw_clients", clients), ("raw_marketing_events", events),
                            ("raw_campaign_touches", touches), ("raw_outcomes", outcomes)]:
            conn.register("frame", frame)
            conn.execute(f"create table raw.{name} as select * from frame")
    run_step(settings, "step_features", dt.date(2025, 1, 10), D)
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        return conn.execute(f"select * from {FEATURE_TABLE} order by as_of_date, client_id").df()


def row(features: pd.DataFrame, client_id: int, as_of: dt.date = D) -> pd.Series:
    match = features[(features["client_id"] == client_id) & (features["as_of_date"] == pd.Timestamp(as_of))]
    assert len(match) == 1, f"client {client_id} as of {as_of}: {len(match)} rows"
    return match.iloc[0]


def test_worked_example_engagement_counts_and_rates(features):
    r = row(features, 1)
    assert (r.events_7d, r.events_30d, r.events_90d) == (4, 5, 6)
    assert (r.web_events_7d, r.web_events_30d, r.web_events_90d) == (1, 2, 2)
    assert (r.email_events_7d, r.mobile_app_events_7d, r.branch_events_30d, r.branch_events_90d) == (2, 1, 0, 1)
    assert (r.webinar_events_90d, r.advisor_call_events_90d, r.advisor_call_7d) == (0, 0, 0)  # Oct 1 and D excluded
    assert (r.login_7d, r.page_view_7d, r.email_open_7d, r.email_click_7d) == (1, 1, 1, 1)
    assert (r.calculator_use_7d, r.calculator_use_30d, r.advisor_meeting_30d, r.advisor_meeting_90d) == (0, 1, 0, 1)
    assert r.email_open_rate_90d == pytest.approx(1 / 90)  # one day with an open
    assert r.email_click_rate_90d == pytest.approx(1.0)
    assert r.days_since_last_event == 1
    assert r.activity_trend_30d == pytest.approx(1.0)  # 5 events now, none in Dec 3..Jan 1


def test_worked_example_behaviour(features):
    r = row(features, 1)
    assert (r.web_share_90d, r.email_share_90d) == (pytest.approx(2 / 6), pytest.approx(2 / 6))
    assert (r.mobile_app_share_90d, r.branch_share_90d, r.webinar_share_90d) == (pytest.approx(1 / 6), pytest.approx(1 / 6), 0)
    assert r.dominant_channel_90d == "web"  # tied with email: the first listed wins
    assert r.mobile_share_90d == pytest.approx(3 / 6)
    assert r.self_service_share_90d == pytest.approx(5 / 6)
    assert r.education_events_90d == 1
    # Jul 1 is before the 180-day window, the touch on D is not known yet
    assert (r.touches_180d, r.touch_responses_180d, r.touch_response_rate_180d) == (2, 1, 0.5)
    assert r.days_since_last_touch == 12


def test_worked_example_financials(features):
    r = row(features, 1)
    age = (D - dt.date(1980, 1, 1)).days / 365.25
    years = 65 - age
    assert r.age == pytest.approx(age) and r.years_to_retirement == pytest.approx(years)
    assert r.savings_rate == pytest.approx(0.10) and r.investable_assets == 250_000
    projected = 200_000 * 1.04**years + 100_000 * 0.10 * (1.04**years - 1) / 0.04
    assert r.retirement_readiness == pytest.approx(projected / 1_000_000)
    assert r.wealth_potential == pytest.approx(math.log(1 + 250_000 + 300_000))
    assert (r.service_tier, r.risk_tolerance, r.marital_status, bool(r.home_owner), r.dependents) == (
        "plus", "moderate", "married", True, 2)
    assert not r.is_converted and r.days_since_enrollment == (D - LONG_AGO).days
    assert row(features, 4).retirement_readiness == 0.0  # no income: no meaningful ratio


def test_a_client_without_history_gets_caps_not_nulls(features):
    r = row(features, 2)
    assert r.days_since_enrollment == 22 and r.lifecycle_segment == "new"
    assert (r.events_90d, r.days_since_last_event, r.dominant_channel_90d, r.web_share_90d) == (0, 90, "none", 0)
    assert (r.touches_180d, r.days_since_last_touch, r.touch_response_rate_180d) == (0, 180, 0)
    assert not features.isna().any().any()


def test_active_rows_follow_enrolment_churn_and_conversion(features):
    dates = lambda client: set(features.loc[features["client_id"] == client, "as_of_date"].dt.date)  # noqa: E731
    assert min(dates(2)) == dt.date(2025, 1, 11)  # enrolled on Jan 10: active from the next day
    assert max(dates(3)) == dt.date(2025, 1, 20)  # churned on Jan 20: active at its start, gone after
    assert len(dates(1)) == (D - dt.date(2025, 1, 10)).days + 1
    assert not row(features, 4, dt.date(2025, 1, 15)).is_converted
    assert row(features, 4, dt.date(2025, 1, 16)).is_converted


def test_each_lifecycle_rule_fires(features):
    segments = {client: row(features, client).lifecycle_segment for client in (1, 2, 4, 5, 6)}
    assert segments == {1: "growing", 2: "new", 4: "dormant", 5: "at_risk", 6: "engaged"}
