"""MLflow logging, the registry's aliases and the champion gate, on a real local MLflow store.

Frames here are synthetic (a known logistic truth) so these tests need no warehouse; the same code runs
on the simulated world through Dagster in test_training_pipeline.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.registry.evaluation import binary_metrics, gate_metrics
from marketing_ml.registry.frames import TrainingFrames
from marketing_ml.registry.predictor import load_champion
from marketing_ml.registry.promotion import Candidate, GateThresholds, evaluate_gate, promote
from marketing_ml.registry.store import CHALLENGER, CHAMPION, alias_version, log_trained_model
from marketing_ml.registry.tasks import OUTCOME_TASKS
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.training.families import FAMILIES
from marketing_ml.training.fitting import train_outcome_model

SPEC = ModelInputs(("visits", "clicks", "share", "flag"), ("tier",))


def _synthetic(n: int, split: str, rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame({"client_id": np.arange(n), "visits": rng.poisson(3, n), "clicks": rng.poisson(1, n),
                          "share": rng.random(n), "flag": rng.random(n) < 0.3,
                          "tier": rng.choice(["basic", "plus", "premier"], n)})
    logit = -3.5 + 0.9 * np.log1p(frame["visits"]) + 0.8 * frame["clicks"] - frame["share"] + 0.8 * (frame["tier"] == "premier")
    frame["oracle_probability"] = 1 / (1 + np.exp(-logit))
    frame["label"] = rng.random(n) < frame["oracle_probability"]
    frame["split"] = split
    return frame


@pytest.fixture(scope="module")
def frames() -> TrainingFrames:
    rng = np.random.default_rng(3)
    table = pd.concat([_synthetic(12_000, "train", rng), _synthetic(4_000, "validation", rng), _synthetic(6_000, "test", rng)])
    return TrainingFrames.from_table(table, SPEC)


@pytest.fixture
def store(tmp_path) -> MLflowResource:
    return MLflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=str(tmp_path / "mlartifacts"))


def _log(store: MLflowResource, frames: TrainingFrames, family: str, frames_to_fit: TrainingFrames | None = None):
    trained = train_outcome_model(OUTCOME_TASKS["conversion"], FAMILIES[family], frames_to_fit or frames, 30)
    logged = log_trained_model(store, trained, library=FAMILIES[family].library, params=FAMILIES[family].params,
                               tags={"dagster.run_id": "test-run", "data.partition_range": "2025-01-01..2025-03-01"},
                               input_example=frames.test)
    return trained, Candidate(family, logged.model_uri, logged.run_id)


def _promote(store, frames, candidates, **thresholds):
    return promote(store, "conversion", candidates, lambda p: gate_metrics(p, "conversion", frames.test, ground_truth=True),
                   GateThresholds(**thresholds), tags={"dagster.run_id": "test-run"}, ground_truth=True)


def test_registry_round_trip_with_aliases_and_a_pyfunc_from_a_plain_shell(store, frames):
    logreg, logreg_candidate = _log(store, frames, "logreg")
    xgb, xgb_candidate = _log(store, frames, "xgboost")
    promotion = _promote(store, frames, [logreg_candidate, xgb_candidate])
    assert promotion.promoted, promotion.checks
    best, runner_up = sorted([("logreg", logreg), ("xgboost", xgb)], key=lambda t: -t[1].metrics["auc"])
    with store.client() as client:
        champion, challenger = alias_version(client, "conversion", CHAMPION), alias_version(client, "conversion", CHALLENGER)
        assert (champion.tags["family"], challenger.tags["family"]) == (best[0], runner_up[0])
        run = client.get_run(champion.run_id)
    # lineage on the run
    assert run.data.tags["dagster.run_id"] == "test-run" and run.data.tags["data.partition_range"]
    assert run.data.tags["code_version"] and run.data.metrics["oracle_auc"] > 0.5

    # the fast path returns the predictor as trained
    loaded = load_champion("conversion", store.tracking_uri)
    assert loaded.version == str(champion.version)
    expected = best[1].predictor.predict_frame(frames.test)
    pd.testing.assert_frame_equal(loaded.predictor.predict_frame(frames.test), expected)

    # mlflow.pyfunc from a plain Python process, told only where the store is
    rows = frames.test.head(20)
    script = (
        "import sys, pandas as pd, mlflow\n"
        "model = mlflow.pyfunc.load_model('models:/conversion@champion')\n"
        "print(model.metadata.get_input_schema().input_names())\n"
        "print(model.predict(pd.read_json(sys.stdin, orient='records'))['probability'].round(10).tolist())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], input=rows.to_json(orient="records"), capture_output=True, text=True,
        timeout=300, env={**os.environ, "MLFLOW_TRACKING_URI": store.tracking_uri},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names, probabilities = [json.loads(line.replace("'", '"')) for line in result.stdout.strip().splitlines()[-2:]]
    assert names == list(SPEC.all), "the model's inputs are the features only"
    assert probabilities == pytest.approx(expected["probability"].head(20).round(10).tolist(), abs=1e-9)

    # promoting the same candidates again keeps the versions (idempotent)
    again = _promote(store, frames, [logreg_candidate, xgb_candidate])
    assert (again.champion_version, again.challenger_version) == (str(champion.version), str(challenger.version))


def test_gate_refuses_a_deliberately_bad_model_and_moves_no_alias(store, frames):
    _, good = _log(store, frames, "logreg")
    assert _promote(store, frames, [good]).promoted
    with store.client() as client:
        before = alias_version(client, "conversion", CHAMPION).version

    rng = np.random.default_rng(0)
    shuffled = TrainingFrames(
        frames.spec,
        frames.train.assign(label=rng.permutation(frames.train["label"].to_numpy())),
        frames.validation,
        frames.test,
    )
    _, bad = _log(store, frames, "logreg", frames_to_fit=shuffled)
    refusal = _promote(store, frames, [bad])
    assert not refusal.promoted
    failed = {c.name for c in refusal.checks if not c.passed}
    assert {"auc_vs_oracle", "not_worse_than_champion"} <= failed
    assert "refused" in refusal.decision
    with store.client() as client:
        assert alias_version(client, "conversion", CHAMPION).version == before
        assert alias_version(client, "conversion", CHALLENGER) is None
        assert len(MlflowClient(store.tracking_uri).search_model_versions("name = 'conversion'")) == 1

    # ranking well is not enough: positives oversampled 5x (what class weighting does) inflate every
    # probability, and the calibration check refuses the model
    positives = frames.train[frames.train["label"]]
    oversampled = TrainingFrames(frames.spec, pd.concat([frames.train, *[positives] * 4]), frames.validation, frames.test)
    _, inflated = _log(store, frames, "logreg", frames_to_fit=oversampled)
    checks = {c.name: c.passed for c in _promote(store, frames, [inflated]).checks}
    assert checks == {"auc_vs_oracle": True, "calibration": False, "not_worse_than_champion": True}


def test_the_calibration_gate_is_relative_to_the_true_rate():
    """A model predicting twice the true rate of a 1% outcome is 0.01 off: inside an absolute 0.02, refused here."""
    rng = np.random.default_rng(5)
    truth = rng.uniform(0.0, 0.02, 200_000)
    y = (rng.random(len(truth)) < truth).astype(np.int8)
    metrics = {name: binary_metrics(y, p) for name, p in (("model", 2 * truth), ("oracle", truth), ("honest", truth * 1.05))}
    oracle = {f"oracle_{k}": v for k, v in metrics["oracle"].items()}

    def passes(scorer: str) -> bool:
        candidate = {**metrics[scorer], **oracle, "auc_ratio_to_oracle": 1.0}
        checks = evaluate_gate("conversion", candidate, None, GateThresholds(), ground_truth=True)
        return next(c for c in checks if c.name == "calibration").passed

    assert metrics["model"]["calibration_error"] < 0.02  # what the absolute bound let through
    assert not passes("model")
    assert passes("honest")  # 5% high is well within half the true mean
