"""The models and registry steps on a provider's own files: no ground truth, so no oracle, honestly said.

The plain functions first (the replay estimator of a policy's value on hand-made touches, the gate's checks
that need no truth, the SQL without truth on UUID client ids), then the steps on a copy of `own_data_world`
(4,000 clients x 220 days from files, `Settings.ground_truth` False), run once for the module.
"""

from __future__ import annotations

import datetime as dt
import math

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from marketing_ml.definitions import build_definitions
from marketing_ml.monitoring.performance import matured_rows_sql, performance_frame, realized_metrics
from marketing_ml.registry.evaluation import calibration_noise, replay_action_table, replay_policy_evaluation
from marketing_ml.registry.frames import TrainingFrames, load_training_frames
from marketing_ml.registry.predictor import load_champion
from marketing_ml.registry.promotion import GateThresholds, evaluate_gate, gate_check_names
from marketing_ml.registry.store import log_trained_model
from marketing_ml.registry.tasks import NBA, OUTCOME_TASKS, TASK_NAMES, model_key
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import DuckDBWarehouse
from marketing_ml.settings import NO_GROUND_TRUTH
from marketing_ml.training import datasets
from marketing_ml.training.families import FAMILIES
from marketing_ml.training.fitting import train_outcome_model
from marketing_ml_tests.conftest import OWN_DATA_END, TEST_START, copy_of, run_step

D = dt.date


# ---- the replay estimator and the gate without truth: plain functions ----------------------------------


def test_replay_values_a_policy_by_the_touches_whose_random_action_it_would_have_chosen():
    # six touches over actions 0/1/2; the policy recommends 1, 1, 0, 2, 1, 0
    recommended = np.array([1, 1, 0, 2, 1, 0])
    logged = np.array([1, 0, 0, 1, 1, 2])
    responded = np.array([1, 1, 0, 0, 0, 1])
    result = replay_policy_evaluation(recommended, logged, responded, baseline_action=1)
    # matched: touches 0 (1, responded), 2 (0, not), 4 (1, not) -> 1 response in 3
    assert result["policy_matched_touches"] == 3
    assert result["policy_value"] == pytest.approx(1 / 3)
    assert result["policy_value_standard_error"] == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 3))
    assert result["policy_value_random"] == pytest.approx(3 / 6)  # random assignment: every touch
    assert result["policy_value_baseline"] == pytest.approx(1 / 3)  # action 1's touches: 0, 3, 4
    table = replay_action_table(recommended, logged, responded, ("a", "b", "c"))
    assert table["touches"].tolist() == [2, 3, 1]
    assert table["response_rate"].tolist() == pytest.approx([0.5, 1 / 3, 1.0])
    assert table["model_share"].tolist() == pytest.approx([2 / 6, 3 / 6, 1 / 6])
    assert table["matched_touches"].tolist() == [1, 2, 0]


def test_replay_is_unbiased_under_uniform_random_assignment():
    # a known world: response probability of action a for client type t; the policy picks each type's best
    rng = np.random.default_rng(5)
    truth = np.array([[0.02, 0.10, 0.05], [0.08, 0.01, 0.03]])
    types = rng.integers(0, 2, 300_000)
    logged = rng.integers(0, 3, len(types))
    responded = rng.random(len(types)) < truth[types, logged]
    policy = truth.argmax(axis=1)[types]
    result = replay_policy_evaluation(policy, logged, responded, baseline_action=0)
    true_value = truth[types, policy].mean()
    assert abs(result["policy_value"] - true_value) < 3 * result["policy_value_standard_error"]
    assert result["policy_value_random"] == pytest.approx(truth[types].mean(), abs=0.002)


def test_the_gate_without_truth_compares_with_the_baseline_and_the_observed_rate():
    assert gate_check_names(False) == ("auc_vs_baseline", "calibration", "not_worse_than_champion")
    noise = calibration_noise(np.r_[np.ones(20), np.zeros(980)])
    assert noise == pytest.approx(math.sqrt(2 / math.pi) * math.sqrt(0.02 * 0.98 / 100))
    good = {"auc": 0.70, "baseline_auc": 0.5, "calibration_error": 0.004, "calibration_noise": noise,
            "observed_rate": 0.02}
    checks = {c.name: c for c in evaluate_gate("conversion", good, None, GateThresholds(), ground_truth=False)}
    assert set(checks) == set(gate_check_names(False)) and all(c.passed for c in checks.values())
    assert "no ground truth" in checks["auc_vs_baseline"].description
    # no skill: an AUC at the baseline's fails; twice the rate's error fails calibration
    no_skill = good | {"auc": 0.51, "calibration_error": 0.03}
    failed = {c.name for c in evaluate_gate("conversion", no_skill, None, GateThresholds(), ground_truth=False)
              if not c.passed}
    assert failed == {"auc_vs_baseline", "calibration"}


def test_realized_performance_without_truth_has_no_oracle_column():
    y = np.r_[np.ones(10), np.zeros(90)]
    metrics = realized_metrics(np.linspace(0.2, 0.01, 100), None, y)
    assert "oracle_auc" not in metrics and metrics["auc"] == pytest.approx(1.0)
    frame = performance_frame([{"as_of_date": D(2025, 5, 1), "task": "churn", **metrics}], ground_truth=False)
    assert "oracle_auc" not in frame.columns and frame.loc[0, "auc"] == pytest.approx(1.0)
    sql = matured_rows_sql("churn", "churn", "p_churn_daily", ground_truth=False)
    assert "ground_truth" not in sql and "oracle" not in sql


def test_training_sets_without_truth_read_no_truth_and_keep_string_client_ids(tmp_path):
    path = tmp_path / "tiny.duckdb"
    ids = ["6f1c0a4e-0000-4000-8000-000000000001", "6f1c0a4e-0000-4000-8000-000000000002"]
    days = pd.date_range("2025-01-01", "2025-03-31").date
    features = pd.DataFrame([(c, d, i, False, "basic") for i, c in enumerate(ids) for d in days],
                            columns=["client_id", "as_of_date", "day_code", "is_converted", "service_tier"])
    outcomes = pd.DataFrame([(ids[0], D(2025, 3, 2), "conversion")], columns=["client_id", "outcome_date", "outcome_type"])
    touches = pd.DataFrame([(f"t{i}", ids[i % 2], d, "email", i % 3 == 0) for i, d in enumerate(days)],
                           columns=["touch_id", "client_id", "touch_date", "action", "responded"])
    plan = datasets.ObservationPlan(7, 0, 7, {"train": (D(2025, 2, 1),), "validation": (D(2025, 2, 15),),
                                              "test": (D(2025, 3, 1),)})
    touch_plan = datasets.plan_touches(days[0], days[-1], warmup_days=10, validation_days=10, test_days=20,
                                       selection_days=10, fit_to_history=False)
    limits = {"train": 10**6, "validation": 10**6, "selection": 10**6, "test": 10**6}
    outcome_sql = datasets.outcome_training_set_sql(OUTCOME_TASKS["conversion"], plan, "training.t", limits, 0.0,
                                                    ground_truth=False)
    touch_sql = datasets.touch_training_set_sql(touch_plan, "training.touches", limits, ground_truth=False)
    assert "ground_truth" not in outcome_sql and "p_response_true" not in touch_sql
    with duckdb.connect(str(path)) as conn:  # no ground_truth schema at all: any read of it would fail
        conn.execute("create schema features; create schema raw; create schema training")
        conn.execute("create table features.client_features_daily as select * from features")
        conn.execute("create table raw.raw_outcomes as select * from outcomes")
        conn.execute("create table raw.raw_campaign_touches as select * from touches")
        conn.execute(outcome_sql)
        conn.execute(touch_sql)
        rows = conn.execute("select * from training.t").fetchdf()
        touch_rows = conn.execute("select * from training.touches").fetchdf()
    assert "oracle_daily_hazard" not in rows.columns and "oracle_probability" not in touch_rows.columns
    assert set(rows["client_id"]) == set(ids) and set(touch_rows["split"]) == {"train", "validation", "selection", "test"}
    labelled = rows.set_index(["client_id", "as_of_date"])["label"]
    assert bool(labelled[(ids[0], pd.Timestamp("2025-03-01"))]) and labelled.sum() == 1


# ---- the models and registry steps from the provider's files ----------------------------------------------


@pytest.fixture(scope="module")
def own_data_trained(own_data_world, tmp_path_factory):
    """(settings, instance, the registry run's check evaluations by (asset, check)) after the models and
    registry steps on a copy of the provider's world."""
    settings = copy_of(own_data_world, tmp_path_factory.mktemp("mm_own_data_trained") / "home")
    assert not settings.ground_truth
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    run_step(settings, "step_models", TEST_START, OWN_DATA_END, instance=instance)
    registry = run_step(settings, "step_registry", TEST_START, OWN_DATA_END, instance=instance)
    checks = {(e.asset_key.to_user_string(), e.check_name): e for e in registry.get_asset_check_evaluations()}
    yield settings, instance, checks
    instance.dispose()


def _metadata(instance: dg.DagsterInstance, key: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_no_truth_exists_and_the_training_sets_carry_no_oracle(own_data_trained):
    settings, _, _ = own_data_trained
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        schemas = {r[0] for r in conn.execute("select distinct table_schema from information_schema.tables").fetchall()}
        training = {r[0] for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'training'").fetchall()}
        columns = {t: set(conn.execute(f"select * from training.{t} limit 0").fetchdf().columns) for t in training}
        client_type = conn.execute("select data_type from information_schema.columns where table_schema = 'training' "
                                   "and table_name = 'training_set_nba' and column_name = 'client_id'").fetchone()[0]
    assert "ground_truth" not in schemas
    assert training == {"training_set_conversion", "training_set_churn", "training_set_nba"}  # no policy set
    assert all(not {c for c in cols if c.startswith("oracle") or c.startswith("p_response")} for cols in columns.values())
    assert client_type == "VARCHAR"


def test_models_show_model_vs_baseline_and_say_why_the_oracle_is_omitted(own_data_trained):
    _, instance, _ = own_data_trained
    for task in TASK_NAMES:
        for family in FAMILIES:
            m = _metadata(instance, f"{task}_{family}")
            assert m["oracle"] == NO_GROUND_TRUTH
            assert not {k for k in m if k.startswith("oracle_") or k.endswith("_oracle") or k == "captured_lift"}
            assert math.isfinite(m["auc"]) and math.isfinite(m["baseline_auc"])
            assert "baseline" in m["evaluation"] and "| oracle" not in m["evaluation"]
            assert NO_GROUND_TRUTH in m["evaluation"]


def test_the_policy_value_is_estimated_by_replay_on_the_logged_test_touches(own_data_trained):
    settings, instance, _ = own_data_trained
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        touches = conn.execute("select split, action, label from training.training_set_nba").fetchdf()
    test = touches[touches["split"] == "test"]
    # the baseline policy: everyone gets the action with the best training response rate
    train_rates = touches[touches["split"] == "train"].groupby("action")["label"].mean()
    baseline_rate = test.loc[test["action"] == train_rates.idxmax(), "label"].mean()
    for family in FAMILIES:
        m = _metadata(instance, f"{NBA}_{family}")
        assert "replay" in m["policy_value_estimator"] and "logged test touches" in m["policy_value_estimator"]
        assert m["policy_value_random"] == pytest.approx(test["label"].mean())  # random assignment: every touch
        assert 0 <= m["policy_value"] <= 1 and 0 < m["policy_value_standard_error"] < 0.1
        assert m["policy_value_baseline"] == pytest.approx(baseline_rate)
        assert "matched_touches" in m["evaluation"] and "response_rate" in m["evaluation"]


def test_the_registry_gates_on_checks_that_need_no_truth(own_data_trained):
    settings, instance, checks = own_data_trained
    for task in TASK_NAMES:
        m = _metadata(instance, f"{task}_champion")
        assert m["oracle"] == NO_GROUND_TRUTH
        assert "baseline_auc" in m["candidates"] and "oracle" not in m["candidates"]
        evaluations = {name: checks[(f"{task}_champion", name)] for name in gate_check_names(False)}
        assert not {name for asset, name in checks if asset == f"{task}_champion"} - set(evaluations)
        if m["champion_version"] != "none":
            assert all(e.passed for e in evaluations.values()), task
            assert load_champion(task, settings.mlflow_tracking_uri).version == m["champion_version"]
        else:  # refused: by a check that needs no truth and could fail, and the decision says which
            failed = {name for name, e in evaluations.items() if not e.passed}
            assert failed and failed <= {"auc_vs_baseline", "calibration"}, (task, failed)
            assert all(name in m["decision"] for name in failed)
    assert any(_metadata(instance, f"{t}_champion")["champion_version"] != "none" for t in TASK_NAMES)


def _materialize(settings, instance: dg.DagsterInstance, key: str, first: dt.date, last: dt.date) -> None:
    job = build_definitions(settings).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(key)],
                                    tags={"dagster/asset_partition_range_start": first.isoformat(),
                                          "dagster/asset_partition_range_end": last.isoformat()})
    assert result.success


def test_realized_performance_is_measured_without_the_oracle(own_data_trained):
    settings, instance, _ = own_data_trained
    # conversion predictions of the last 35 days: those of 30+ days ago have matured by the last 5 days
    _materialize(settings, instance, "daily_predictions", OWN_DATA_END - dt.timedelta(days=40), OWN_DATA_END)
    _materialize(settings, instance, "realized_performance", OWN_DATA_END - dt.timedelta(days=4), OWN_DATA_END)
    assert _metadata(instance, "realized_performance")["oracle_auc"] == NO_GROUND_TRUTH
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        performance = conn.execute("select * from monitoring.realized_performance").fetchdf()
    assert "oracle_auc" not in performance.columns
    conversion = performance[performance["task"] == "conversion"]
    assert len(conversion) == 5 and (conversion["rows"] > 0).all() and conversion["auc"].between(0.5, 1).all()


def test_the_gate_without_truth_refuses_a_model_that_ranks_backwards(own_data_trained, tmp_path):
    # on a private copy: a churn model fitted on inverted labels (it ranks backwards and predicts the
    # complement of the rate; labels shuffled instead leave a chance AUC that may clear the margin) becomes
    # the latest of every churn family
    settings = copy_of(own_data_trained[0], tmp_path / "world")
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    store = MLflowResource(tracking_uri=settings.mlflow_tracking_uri, artifact_root=str(settings.mlflow_artifact_root))
    frames, _ = load_training_frames(DuckDBWarehouse(path=str(settings.duckdb_path)), "churn", ground_truth=False)
    inverted = TrainingFrames(frames.spec, frames.train.assign(label=~frames.train["label"].astype(bool)),
                              frames.validation, frames.test, ground_truth=False)
    bad = train_outcome_model(OUTCOME_TASKS["churn"], FAMILIES["logreg"], inverted, frames.horizon_days)
    assert bad.notes == {"oracle": NO_GROUND_TRUTH} and "oracle" not in bad.comparison
    logged = log_trained_model(store, bad, library="sklearn", params={}, tags={"purpose": "gate test"},
                               input_example=frames.test)
    for family in FAMILIES:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            model_key("churn", family), metadata={"mlflow_model_uri": logged.model_uri, "mlflow_run_id": logged.run_id}))
    defs = build_definitions(settings)
    result = dg.materialize([defs.get_assets_def("churn_champion")], instance=instance, resources=defs.resources,
                            raise_on_error=False)
    assert not result.success, "a failed blocking gate check must fail the run"
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(gate_check_names(False))
    assert not any(e.passed for e in evaluations.values())
    assert "no-skill baseline" in evaluations["auc_vs_baseline"].description
    instance.dispose()
