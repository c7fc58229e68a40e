"""The models and registry steps on a simulated world, through Dagster, MLflow and the CLI.

The shared 2,000-client, 60-day world has a few dozen conversions and churns: too few to tell a model
from noise. These tests build their own world once per session (10,000 clients, 120 days, the data and
features steps), run `marketing-ml run --step models --step registry` on a copy of it as a user would
(default windows and gate), and read what that produced: warehouse tables, asset metadata and check
results in the data directory's Dagster instance, the MLflow store.
"""

from __future__ import annotations

import dagster as dg
import duckdb
import numpy as np
import pytest

from marketing_ml.definitions import build_definitions
from marketing_ml.registry.frames import TrainingFrames, load_training_frames
from marketing_ml.registry.predictor import load_champion
from marketing_ml.registry.store import CHAMPION, alias_version, log_trained_model
from marketing_ml.registry.tasks import NBA, OUTCOME_TASKS, TASK_NAMES, model_key
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import DuckDBWarehouse
from marketing_ml.settings import Settings
from marketing_ml.training.families import FAMILIES
from marketing_ml.training.fitting import train_outcome_model
from marketing_ml_tests.conftest import copy_of


def _metadata(instance: dg.DagsterInstance, key: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _mlflow(settings: Settings) -> MLflowResource:
    return MLflowResource(tracking_uri=settings.mlflow_tracking_uri, artifact_root=str(settings.mlflow_artifact_root))


def test_training_rows_are_point_in_time(trained):
    settings, _, _ = trained
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        for task, outcome in (("conversion", "conversion"), ("churn", "churn")):
            table = f"training.training_set_{task}"
            columns = [c for c in conn.execute(f"select * from {table} limit 0").fetchdf().columns]
            features = [c for c in columns if c in conn.execute(
                "select * from features.client_features_daily limit 0").fetchdf().columns]
            # every feature value of a row is the feature table's value at as_of_date = D
            mismatched = conn.execute(f"""
                select count(*) from {table} t join features.client_features_daily f using (client_id, as_of_date)
                where {' or '.join(f't."{c}" is distinct from f."{c}"' for c in features if c not in ('client_id', 'as_of_date'))}
            """).fetchone()[0]
            unmatched = conn.execute(f"""
                select count(*) from {table} t anti join features.client_features_daily f using (client_id, as_of_date)
            """).fetchone()[0]
            assert (mismatched, unmatched) == (0, 0)
            # labels are exactly "an outcome in [D, label_end)", recomputed independently
            wrong = conn.execute(f"""
                select count(*) from {table} t
                where t.label <> exists (select 1 from raw.raw_outcomes o where o.client_id = t.client_id
                      and o.outcome_type = '{outcome}' and o.outcome_date >= t.as_of_date and o.outcome_date < t.label_end)
            """).fetchone()[0]
            assert wrong == 0
            splits = conn.execute(f"select split, min(as_of_date), max(as_of_date), max(label_end) from {table} "
                                  "group by split").fetchall()
            bounds = {s: (lo, hi, end) for s, lo, hi, end in splits}
            assert bounds["train"][2] <= bounds["test"][0] and bounds["validation"][2] <= bounds["test"][0], \
                "a training or validation label window reaches into the test dates"
            shared = conn.execute(f"select count(*) from (select client_id from {table} where split = 'train' "
                                  f"intersect select client_id from {table} where split = 'validation')").fetchone()[0]
            assert shared == 0, "validation clients must not be trained on (overlapping label windows)"
            assert conn.execute(f"select sum(label::int) from {table}").fetchone()[0] > 0


def test_no_model_reads_ground_truth(trained):
    settings, _, _ = trained
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        truth = {c for t in ("true_daily_hazards", "true_client_traits")
                 for c in conn.execute(f"select * from ground_truth.{t} limit 0").fetchdf().columns} - {"client_id", "as_of_date"}
        truth |= {c for c in conn.execute("select * from raw.raw_campaign_touches limit 0").fetchdf().columns
                  if c.startswith("p_")}
    for task in TASK_NAMES:
        predictor = load_champion(task, settings.mlflow_tracking_uri).predictor
        inputs = set(predictor.feature_columns)
        assert inputs and not inputs & truth, f"{task} reads ground truth: {inputs & truth}"
        assert not any(c.startswith("oracle") or c in {"label", "split", "label_end", "action"} for c in inputs)


def test_every_family_beats_the_trivial_baseline_out_of_time(trained):
    _, instance, _ = trained
    for task in TASK_NAMES:
        for family in FAMILIES:
            m = _metadata(instance, f"{task}_{family}")
            # the constant baseline cannot rank (for NBA it ranks actions by their training response rate);
            # every family must rank better, by a margin above this world's noise
            assert m["baseline_auc"] == pytest.approx(0.5) or task == NBA
            assert m["auc"] > max(0.55, m["baseline_auc"] + 0.02), f"{task}_{family}: AUC {m['auc']:.3f}"
            assert m["oracle_auc"] > m["auc"] - 0.05
            assert "data:image/png;base64" in m["plots"] and "oracle" in m["evaluation"]
            assert len(m["feature_importance"].records) == 15
            if task == NBA:
                assert m["policy_value"] > m["policy_value_random"], f"{family}: NBA policy no better than random"


def test_registry_promotes_the_best_family_and_records_passed_checks(trained):
    settings, instance, _ = trained
    for task in TASK_NAMES:
        m = _metadata(instance, f"{task}_champion")
        assert m["champion_version"] != "none" and m["challenger_version"] != "none"
        loaded = load_champion(task, settings.mlflow_tracking_uri)
        assert loaded.version == m["champion_version"]
        for check in ("auc_vs_oracle", "calibration", "not_worse_than_champion"):
            record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
                [dg.AssetCheckKey(dg.AssetKey(f"{task}_champion"), check)]
            )[dg.AssetCheckKey(dg.AssetKey(f"{task}_champion"), check)]
            assert record.status.value == "SUCCEEDED", (task, check)


def test_the_champion_scores_feature_rows_through_the_documented_contract(trained):
    settings, _, _ = trained
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        rows = conn.execute("select * from features.client_features_daily where as_of_date = "
                            "(select max(as_of_date) from features.client_features_daily) limit 50").fetchdf()
    for task in TASK_NAMES:
        out = load_champion(task, settings.mlflow_tracking_uri).predictor.predict_frame(rows)
        assert out.index.equals(rows.index)
        if task == NBA:
            scores = out.filter(like="score_")
            assert scores.shape[1] == 6 and ((scores > 0) & (scores < 1)).all().all()
            assert (out["recommended_action"] == scores.idxmax(axis=1).str.removeprefix("score_")).all()
        else:
            assert list(out.columns) == ["probability"] and out["probability"].between(0, 1).all()


def test_the_cli_ran_both_steps_through_dagster(trained):
    settings, instance, stdout = trained
    assert "step models: ok" in stdout and "step registry: ok" in stdout
    runs = instance.get_runs()
    assert {r.job_name for r in runs} >= {"step_models", "step_registry"}
    assert all(r.is_success for r in runs)


def test_the_models_step_logs_which_model_it_trains_k_of_n(trained):
    _, instance, _ = trained
    run = next(r for r in instance.get_runs() if r.job_name == "step_models")
    messages = [e.user_message for e in instance.all_logs(run.run_id)]
    started = [m for m in messages if m.startswith("training ") and " in this run" in m]
    assert len(started) == len(TASK_NAMES) * len(FAMILIES)
    n = len(started)
    assert [m.split(": model ")[1] for m in started] == [f"{k} of {n} in this run" for k in range(1, n + 1)]
    assert {m.split(":")[0].removeprefix("training ") for m in started} == {f"{t}/{f}" for t in TASK_NAMES for f in FAMILIES}
    assert sum(f"({k} of 6)" in m for m in messages for k in range(1, 7)) == 6 * len(FAMILIES)  # next best action
    # each task's training set is read once, by its first model; the other families take those frames
    assert sorted(m.split(":")[0] for m in messages if "training frames read in" in m) == sorted(TASK_NAMES)
    reused = [m for m in messages if "the training frames the previous model of this task read" in m]
    assert len(reused) == len(TASK_NAMES) * (len(FAMILIES) - 1)


def test_the_gate_refuses_a_deliberately_bad_model_in_dagster(trained, tmp_path):
    # on a private copy: the bad model becomes the latest materialization of the churn models
    settings = copy_of(trained[0], tmp_path / "world")
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    store = _mlflow(settings)
    frames, _ = load_training_frames(DuckDBWarehouse(path=str(settings.duckdb_path)), "churn", ground_truth=True)
    rng = np.random.default_rng(1)
    shuffled = TrainingFrames(frames.spec, frames.train.assign(label=rng.permutation(frames.train["label"].to_numpy())),
                              frames.validation, frames.test)
    horizon = int((frames.test["label_end"] - frames.test["as_of_date"]).dt.days.iloc[0])
    bad = train_outcome_model(OUTCOME_TASKS["churn"], FAMILIES["logreg"], shuffled, horizon)
    logged = log_trained_model(store, bad, library="sklearn", params={}, tags={"purpose": "gate test"},
                               input_example=frames.test)
    # the bad model becomes the latest materialization of every churn family
    for family in FAMILIES:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            model_key("churn", family), metadata={"mlflow_model_uri": logged.model_uri, "mlflow_run_id": logged.run_id}))
    with store.client() as client:
        before = alias_version(client, "churn", CHAMPION).version
    defs = build_definitions(settings)
    result = dg.materialize([defs.get_assets_def("churn_champion")], instance=instance, resources=defs.resources,
                            raise_on_error=False)
    assert not result.success, "a failed blocking gate check must fail the run"
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["auc_vs_oracle"] is False and evaluations["not_worse_than_champion"] is False
    with store.client() as client:
        assert alias_version(client, "churn", CHAMPION).version == before
