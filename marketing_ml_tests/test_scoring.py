"""Daily scoring, business outputs and monitoring, run through Dagster on the trained world's champions."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from marketing_ml.decisions.business import BusinessAssumptions
from marketing_ml.registry.attribution import attribute, raw_margin
from marketing_ml.registry.predictor import load_champion
from marketing_ml_tests.conftest import TEST_START, TRAINING_DAYS, copy_of, query, run_step

LAST = TEST_START + dt.timedelta(days=TRAINING_DAYS - 1)
EARLY = LAST - dt.timedelta(days=30)  # conversion predictions of EARLY mature on LAST


@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory):
    """The inference step for two days a month apart, and the last day run again."""
    settings = trained[0]
    settings = copy_of(settings, tmp_path_factory.mktemp("mm_scored") / "world")
    instance = dg.DagsterInstance.ephemeral()
    run_step(settings, "step_inference", EARLY, EARLY, instance=instance)
    run_step(settings, "step_inference", LAST - dt.timedelta(days=1), LAST, instance=instance)
    return settings, instance


def test_predictions_cover_exactly_the_active_clients_of_the_day(scored):
    settings, _ = scored
    predicted = set(query(settings, "select client_id from scoring.daily_predictions where as_of_date = ?", [LAST])["client_id"])
    # the simulator's own record of who is active that day, independent of the feature pipeline
    active = set(query(settings, "select client_id from ground_truth.true_daily_hazards where as_of_date = ?", [LAST])["client_id"])
    assert predicted == active and len(predicted) > 1000
    p = query(settings, "select * from scoring.daily_predictions where as_of_date = ?", [LAST])
    assert p["p_churn"].between(0, 1).all() and p["conversion_model_version"].notna().all()
    converted = set(query(settings, "select client_id from features.client_features_daily where as_of_date = ? and is_converted", [LAST])["client_id"])
    assert p[p["client_id"].isin(converted)]["p_conversion"].isna().all()
    assert p[~p["client_id"].isin(converted)]["p_conversion"].notna().all()


def test_rerunning_a_day_replaces_its_rows(scored):
    settings, instance = scored
    counts = lambda: query(settings, "select as_of_date, count(*) as n from scoring.daily_predictions group by 1 order by 1")  # noqa: E731
    before = counts()
    run_step(settings, "step_inference", LAST, LAST, instance=instance)
    assert counts().equals(before) and len(before) == 3


def test_without_uplift_champions_the_call_lists_fall_back_to_propensity_and_say_so(scored):
    """The 120-day world is too short for the uplift step: the lists rank by P(outcome) x value, labelled."""
    settings, instance = scored
    queue = query(settings, "select * from scoring.advisor_queue where as_of_date = ?", [LAST])
    cap = BusinessAssumptions().advisor_daily_capacity
    assert queue.groupby("advisor_id").size().max() == cap
    for _, rows in queue.groupby("advisor_id"):
        rows = rows.sort_values("rank")
        assert rows["rank"].tolist() == list(range(1, len(rows) + 1))
        assert rows["expected_value"].is_monotonic_decreasing
    assert set(queue["ranked_by"]) == {"propensity"} and queue["expected_conversion_uplift"].isna().all()
    retention = query(settings, "select * from scoring.retention_list where as_of_date = ?", [LAST])
    assert len(retention) == BusinessAssumptions().retention_daily_capacity and set(retention["ranked_by"]) == {"propensity"}
    event = instance.get_latest_materialization_event(dg.AssetKey("advisor_queue"))
    assert "no uplift champion for advisor_outreach" in event.asset_materialization.metadata["fallback"].value


def test_lists_honour_the_contact_rules_one_contact_a_day(scored):
    settings, _ = scored
    lists = query(settings, """
        select 'advisor_queue' as list, client_id, as_of_date from scoring.advisor_queue union all
        select 'retention_list', client_id, as_of_date from scoring.retention_list union all
        select 'campaign_targets', client_id, as_of_date from scoring.campaign_targets""")
    assert not lists.duplicated(["client_id", "as_of_date"]).any()
    opted_out = set(query(settings, "select client_id from raw.raw_clients where contact_opt_out")["client_id"])
    assert opted_out and opted_out.isdisjoint(lists["client_id"])
    calls = lists[lists["list"] != "campaign_targets"]
    # yesterday's calls are not called again today (90-day cool-down), nor clients the contact log called
    yesterday = set(calls[calls["as_of_date"] == pd.Timestamp(LAST - dt.timedelta(days=1))]["client_id"])
    today = set(calls[calls["as_of_date"] == pd.Timestamp(LAST)]["client_id"])
    logged = set(query(settings, """select client_id from raw.raw_interventions
        where intervention <> 'no_contact' and intervention_date between ? and ?""",
                       [LAST - dt.timedelta(days=90), LAST - dt.timedelta(days=1)])["client_id"])
    assert yesterday and today and today.isdisjoint(yesterday | logged)
    converted = set(query(settings, "select client_id from features.client_features_daily where as_of_date = ? and is_converted",
                          [LAST])["client_id"])
    assert today.isdisjoint(converted)


def test_campaign_targets_respect_the_budget(scored):
    settings, _ = scored
    targets = query(settings, "select as_of_date, sum(cost_usd) as spent, count(*) as n, min(expected_net_value_usd) as worst "
                              "from scoring.campaign_targets group by 1")
    assert (targets["spent"] <= BusinessAssumptions().campaign_daily_budget_usd + 1e-9).all() and (targets["n"] > 0).all()
    assert (targets["worst"] > 0).all()  # the next-best-action uplift is incremental: nothing with a negative net value


def test_business_impact_compares_every_policy_in_the_lists_pools(scored):
    settings, instance = scored
    impact = query(settings, "select * from scoring.business_impact where as_of_date = ?", [LAST]).set_index(["use_case", "policy"])
    for use_case in ("advisor_queue", "retention_list"):
        assert {p for u, p in impact.index if u == use_case} == {"random", "value_only", "propensity", "oracle"}
        # the oracle maximises the true value of the list under the same capacity
        value = "net_value_usd" if use_case == "advisor_queue" else "incremental_revenue_usd"
        assert impact.loc[(use_case, "oracle"), value] >= impact.xs(use_case)[value].max() - 1e-9
    # the platform's campaign plan is the next-best-action champion's: counted like the others
    assert ("campaign_targets", "uplift") in impact.index
    listed = query(settings, "select count(*) as n from scoring.campaign_targets where as_of_date = ?", [LAST])["n"].iloc[0]
    assert impact.loc[("campaign_targets", "uplift"), "contacts"] == listed
    # random is the exact expectation of filling every advisor's capacity from their eligible clients
    advisors = query(settings, "select count(distinct assigned_advisor_id) as n from raw.raw_clients")["n"].iloc[0]
    assert impact.loc[("advisor_queue", "random"), "contacts"] == advisors * BusinessAssumptions().advisor_daily_capacity
    metadata = instance.get_latest_materialization_event(dg.AssetKey("business_impact")).asset_materialization.metadata
    assert "campaign_roi" in metadata["kpis (latest day)"].value and "data:image/png;base64" in metadata["plot"].value


def test_explanations_add_up_to_the_champions_margin(scored):
    settings, _ = scored
    features = query(settings, "select * from features.client_features_daily where as_of_date = ? limit 500", [LAST])
    for task in ("conversion", "churn"):
        model = load_champion(task, settings.mlflow_tracking_uri).predictor.model
        attribution = attribute(model, features)
        # exact for trees and linear models; integrated gradients (MLP) carry a small integration error
        np.testing.assert_allclose(attribution.margin, raw_margin(model, features), rtol=1e-2, atol=2e-2)
    explained = query(settings, "select * from scoring.prediction_explanations where as_of_date = ?", [LAST])
    predicted = query(settings, "select client_id, p_conversion from scoring.daily_predictions where as_of_date = ?", [LAST])
    assert len(explained) == len(predicted)
    # conversion reasons exactly where there is a conversion score (none for converted clients)
    rows = explained.merge(predicted, on="client_id", validate="one_to_one")
    assert predicted["p_conversion"].isna().any() and predicted["p_conversion"].notna().any()
    assert ((rows["conversion_explanation_method"] != "") == rows["p_conversion"].notna()).all()
    assert (rows.loc[rows["p_conversion"].isna(), "conversion_reason_1"] == "").all()
    assert (rows["churn_explanation_method"] != "").all()


def test_realized_performance_scores_matured_predictions_against_outcomes(scored):
    settings, _ = scored
    perf = query(settings, "select * from monitoring.realized_performance where as_of_date = ? and task = 'conversion'", [LAST])
    row = perf.iloc[0]
    assert row["prediction_date"].date() == EARLY and row["rows"] > 1000
    labels = query(
        settings,
        """select count(distinct o.client_id) as n from raw.raw_outcomes o join scoring.daily_predictions p
           on p.client_id = o.client_id and p.as_of_date = ? and p.p_conversion is not null
           where o.outcome_type = 'conversion' and o.outcome_date >= ? and o.outcome_date < ?""",
        [EARLY, EARLY, LAST],
    )["n"].iloc[0]
    assert row["positives"] == labels
    assert 0.5 < row["auc"] <= 1 and row["auc"] <= row["oracle_auc"] + 0.1
    churn = query(settings, "select * from monitoring.realized_performance where as_of_date = ? and task = 'churn'", [LAST]).iloc[0]
    assert churn["rows"] == 0  # churn predictions need 90 days to mature: said, not faked


def test_feature_days_reads_each_day_from_staged_blocks_and_drops_them(tmp_path):
    from marketing_ml.features.catalog import FEATURE_TABLE
    from marketing_ml.resources.warehouse import DuckDBWarehouse
    from marketing_ml.scoring.batch import FeatureDays

    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    first = dt.date(2026, 3, 1)
    days = [first + dt.timedelta(days=k) for k in range(6)]
    # rows of every day interleaved, as a year-long build writes them; day 4 has no rows
    rows = pd.DataFrame([(client, day, client * 10 + k) for client in range(50) for k, day in enumerate(days) if k != 4],
                        columns=["client_id", "as_of_date", "value"])
    warehouse.execute("create schema features")
    with warehouse.connect() as conn:
        conn.execute(f"create table {FEATURE_TABLE} as select * from rows")
    with warehouse.session():
        with FeatureDays(warehouse, days, rows=120) as feature_days:
            assert feature_days._blocks == [days[:2], days[2:5], days[5:]]  # 50 rows a day, day 4 none
            for k, day in enumerate(days):
                if k == 4:
                    with pytest.raises(LookupError, match="build the features step"):
                        feature_days.frame(day)
                    continue
                frame = feature_days.frame(day).sort_values("client_id", ignore_index=True)
                assert frame["value"].tolist() == [client * 10 + k for client in range(50)]
                assert feature_days.relation(day).startswith("staging_memory.")
            with warehouse.connect() as conn:  # one block staged at a time: the last one now
                assert conn.execute("select count(*) from staging_memory.feature_days").fetchone()[0] == 50
        with warehouse.connect() as conn:  # and none after the block
            assert conn.execute("select count(*) from duckdb_tables() where database_name = 'staging_memory'").fetchone()[0] == 0
