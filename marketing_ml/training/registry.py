"""MLflow: log every trained model with its lineage, and promote champions through a gate.

One experiment per task (`marketing_ml/<task>`), one run per trained model, the model itself logged as a
pyfunc (see `marketing_ml.training.predictor` for the contract). One registered model per task, named
after it (`conversion`, `churn`, `nba`); aliases `@champion` and `@challenger`, never stages.

Promotion (`promote`): every candidate of the latest training and the current champion are scored on
the same out-of-time test rows, with the models as logged (what scoring will load). The best candidate
by the task's primary metric becomes `@champion` only if the gate passes:

- `auc_vs_oracle`: its AUC is at least `min_auc_ratio_to_oracle` x the oracle's AUC on those rows
  (for the next best action: the response model on the observed test touches);
- `calibration`: its calibration error exceeds the oracle's on the same rows by at most
  `max_calibration_error` (the true probabilities' own error on a finite sample is sampling noise, a floor
  no model can beat; on large test sets it is close to zero);
- `not_worse_than_champion`: its primary metric is at least the current champion's minus
  `champion_tolerance` (retraining on newer data moves metrics by noise; the tolerance absorbs that).

Then the runner-up becomes `@challenger`. A refused candidate moves no alias.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import pickle
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import infer_signature

from marketing_ml.metadata import markdown_table
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.training.predictor import PREDICTOR_ARTIFACT, PYFUNC_ENTRY, Predictor, load_predictor
from marketing_ml.training.tasks import PRIMARY_METRIC, TrainedModel

CHAMPION = "champion"
CHALLENGER = "challenger"
LIBRARY_PACKAGES = {"sklearn": "scikit-learn", "xgboost": "xgboost", "pytorch": "torch"}


@dataclass(frozen=True)
class LoggedModel:
    """Where a trained model landed in MLflow."""

    run_id: str
    model_uri: str  # models:/m-...: the logged model, registrable as a version
    experiment_id: str


@dataclass(frozen=True)
class GateThresholds:
    min_auc_ratio_to_oracle: float = 0.85
    max_calibration_error: float = 0.02
    champion_tolerance: float = 0.005


@dataclass(frozen=True)
class GateCheck:
    """One criterion of the champion gate, evaluated for the best candidate."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    description: str


@dataclass(frozen=True)
class Candidate:
    family: str
    model_uri: str
    run_id: str | None = None


@dataclass
class Promotion:
    """What the gate decided, and why."""

    task: str
    decision: str
    checks: list[GateCheck]
    ranking: pd.DataFrame  # candidates (and the current champion) x gate metrics, best first
    champion_version: str | None
    challenger_version: str | None
    previous_champion_version: str | None
    best_family: str
    notes: list[str] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return all(c.passed for c in self.checks)


@functools.cache
def code_version() -> str:
    """The git commit of this code (with `-dirty` for uncommitted changes), or the package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "marketing_ml-" + importlib.metadata.version("marketing_ml")


def pip_requirements(library: str) -> list[str]:
    """Pinned requirements of a logged model: what loading it needs besides the marketing_ml package."""
    packages = ["mlflow", "numpy", "pandas", "scikit-learn", "joblib", LIBRARY_PACKAGES.get(library, "scikit-learn")]
    return [f"{p}=={importlib.metadata.version(p)}" for p in dict.fromkeys(packages)]


def log_trained_model(
    resource: MLflowResource,
    trained: TrainedModel,
    *,
    library: str,
    params: Mapping[str, object],
    tags: Mapping[str, str],
    input_example: pd.DataFrame,
) -> LoggedModel:
    """One MLflow run: params, metrics (model, oracle and baseline), plots, importances, the pyfunc model."""
    predictor = trained.predictor
    example = input_example[list(predictor.feature_columns)].head(5).reset_index(drop=True)
    with resource.client() as client:
        experiment_id = resource.experiment_id(client, predictor.task)
        run_tags = {**tags, "task": predictor.task, "family": predictor.family, "code_version": code_version(),
                    "mlflow.source.git.commit": code_version().removesuffix("-dirty")}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"{predictor.task}_{predictor.family}",
                              tags=run_tags) as run:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            mlflow.log_metrics({k: v for k, v in trained.metrics.items() if isinstance(v, float) and math.isfinite(v)})
            for name, figure in trained.figures.items():
                mlflow.log_figure(figure, f"plots/{name}.png")
            mlflow.log_text(markdown_table(trained.comparison.reset_index(names="metric")), "evaluation.md")
            mlflow.log_text(trained.importance.rename("importance").to_csv(index_label="feature"), "feature_importance.csv")
            for name, table in trained.tables.items():
                mlflow.log_text(table.to_csv(index=False), f"{name}.csv")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "predictor.joblib"
                joblib.dump(predictor, path)
                with warnings.catch_warnings():
                    # MLflow warns that integer columns cannot hold missing values; feature counts are
                    # never NULL (the features' contract), so the integer schema is exact, not a risk
                    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
                    signature = infer_signature(example, predictor.predict_frame(example))
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(PYFUNC_ENTRY),
                    artifacts={PREDICTOR_ARTIFACT: str(path)},
                    signature=signature,
                    input_example=example,
                    pip_requirements=pip_requirements(library),
                    tags=run_tags,
                )
    return LoggedModel(run.info.run_id, info.model_uri, experiment_id)


def _param(value: object) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def alias_version(client: MlflowClient, task: str, alias: str) -> ModelVersion | None:
    """The version of the task's registered model that holds `alias`, if any."""
    try:
        return client.get_model_version_by_alias(task, alias)
    except mlflow.exceptions.MlflowException:
        return None


def register(client: MlflowClient, task: str, model_uri: str, run_id: str | None, tags: Mapping[str, str]) -> ModelVersion:
    """A registry version for a logged model; the existing version if this model was registered before."""
    try:
        client.get_registered_model(task)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(task, description=f"marketing_ml {task} model; see aliases @{CHAMPION} / @{CHALLENGER}.")
    for version in client.search_model_versions(f"name = '{task}'"):
        if version.source == model_uri:
            return version
    return client.create_model_version(task, source=model_uri, run_id=run_id, tags=dict(tags))


def evaluate_gate(task: str, candidate: Mapping[str, float], champion: Mapping[str, float] | None,
                  thresholds: GateThresholds) -> list[GateCheck]:
    """The gate's three criteria for the best candidate (see the module docstring)."""
    primary = PRIMARY_METRIC[task]
    ratio, ece = candidate.get("auc_ratio_to_oracle", math.nan), candidate.get("calibration_error", math.nan)
    noise = candidate.get("oracle_calibration_error", 0.0)
    checks = [
        GateCheck(
            "auc_vs_oracle",
            bool(ratio >= thresholds.min_auc_ratio_to_oracle),
            ratio,
            thresholds.min_auc_ratio_to_oracle,
            f"AUC {candidate.get('auc', math.nan):.4f} is {ratio:.3f} x the oracle's "
            f"{candidate.get('oracle_auc', math.nan):.4f} on the same test rows (floor {thresholds.min_auc_ratio_to_oracle}).",
        ),
        GateCheck(
            "calibration",
            bool(ece <= noise + thresholds.max_calibration_error),
            ece,
            noise + thresholds.max_calibration_error,
            f"expected calibration error {ece:.4f}; the oracle's on the same rows (sampling noise) {noise:.4f}, "
            f"plus the allowed {thresholds.max_calibration_error}.",
        ),
    ]
    if champion is None:
        checks.append(GateCheck("not_worse_than_champion", True, None, None, "no current champion: nothing to beat."))
    else:
        floor = champion[primary] - thresholds.champion_tolerance
        checks.append(
            GateCheck(
                "not_worse_than_champion",
                bool(candidate[primary] >= floor),
                candidate[primary],
                floor,
                f"{primary} {candidate[primary]:.4f} vs the current champion's {champion[primary]:.4f} on the same "
                f"rows (tolerance {thresholds.champion_tolerance}).",
            )
        )
    return checks


def promote(
    resource: MLflowResource,
    task: str,
    candidates: list[Candidate],
    gate_metrics: Callable[[Predictor], dict[str, float]],
    thresholds: GateThresholds,
    tags: Mapping[str, str],
    log: Callable[[str], None] = lambda message: None,
) -> Promotion:
    """Rank the candidates, gate the best one against the oracle and the current champion, move aliases.

    `gate_metrics(predictor)` scores a predictor on the current test rows (`tasks.gate_metrics`).
    """
    primary = PRIMARY_METRIC[task]
    scored = {}
    for candidate in candidates:
        log(f"{task}: scoring candidate {candidate.family} ({candidate.model_uri}) on the test rows")
        scored[candidate.family] = gate_metrics(load_predictor(candidate.model_uri, resource.tracking_uri))
    ranked = sorted(candidates, key=lambda c: scored[c.family][primary], reverse=True)
    best, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    notes: list[str] = []
    with resource.client() as client:
        current = alias_version(client, task, CHAMPION)
        champion_metrics = None
        if current is not None:
            try:
                champion_metrics = gate_metrics(load_predictor(f"models:/{task}/{current.version}", resource.tracking_uri))
            except (KeyError, AttributeError, ImportError, pickle.UnpicklingError) as error:
                # it needs feature columns that no longer exist, or code that changed since it was logged:
                # scoring could not use it either, so it is no benchmark for the candidate
                notes.append(f"the current champion v{current.version} cannot score today's rows "
                             f"({type(error).__name__}: {error}); not compared")
        checks = evaluate_gate(task, scored[best.family], champion_metrics, thresholds)
        champion_version = str(current.version) if current else None
        challenger = alias_version(client, task, CHALLENGER)
        challenger_version = str(challenger.version) if challenger else None
        if all(c.passed for c in checks):
            version = register(client, task, best.model_uri, best.run_id, {**tags, "family": best.family})
            client.set_registered_model_alias(task, CHAMPION, version.version)
            champion_version = str(version.version)
            decision = (f"{best.family} is @{CHAMPION} (v{version.version}"
                        + (", unchanged)" if current and current.version == version.version else ")"))
            if runner_up is not None:
                second = register(client, task, runner_up.model_uri, runner_up.run_id, {**tags, "family": runner_up.family})
                client.set_registered_model_alias(task, CHALLENGER, second.version)
                challenger_version = str(second.version)
        else:
            failed = ", ".join(c.name for c in checks if not c.passed)
            decision = (f"refused {best.family} ({failed}); @{CHAMPION} stays "
                        + (f"v{current.version}" if current else "unset"))
    log(f"{task}: {decision}")
    rows = {c.family: scored[c.family] for c in ranked}
    if champion_metrics is not None:
        rows[f"current champion v{current.version}"] = champion_metrics
    columns = [primary, "auc", "oracle_auc", "auc_ratio_to_oracle", "calibration_error", "log_loss"]
    ranking = pd.DataFrame(rows).T.reindex(columns=list(dict.fromkeys(columns)))
    return Promotion(task, decision, checks, ranking, champion_version, challenger_version,
                     str(current.version) if current else None, best.family, notes)
