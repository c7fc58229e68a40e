"""MLflow as the model store: every trained model logged with its lineage, registry versions and aliases.

One experiment per task (`marketing_ml/<task>`), one run per trained model, the model itself logged as a
pyfunc (see `marketing_ml.registry.predictor` for the contract). One registered model per task, named
after it (`conversion`, `churn`, `nba`); aliases `@champion` and `@challenger`, never stages.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import mlflow
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature, infer_signature

from marketing_ml.metadata import markdown_table
from marketing_ml.registry.predictor import PREDICTOR_ARTIFACT, PYFUNC_ENTRY, Predictor
from marketing_ml.resources.mlflow_tracking import MLflowResource

CHAMPION = "champion"
CHALLENGER = "challenger"
LOGGED_MODEL_URI = "models:/"  # what MLflow 3 calls a logged model: models:/<model id>
LIBRARY_PACKAGES = {"sklearn": "scikit-learn", "xgboost": "xgboost", "pytorch": "torch"}


@dataclass
class TrainedModel:
    """A fitted predictor and everything a reviewer needs to judge it (test rows = out of time): what
    training hands to the store."""

    predictor: Predictor
    comparison: pd.DataFrame  # metric x (model, oracle with ground truth, baseline), same rows
    metrics: dict[str, float]  # flat numbers for metadata and MLflow
    importance: pd.Series
    importance_kind: str
    figures: dict[str, Figure]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    fit_info: dict[str, object] = field(default_factory=dict)
    # what the figures are and what is omitted, by name: e.g. the oracle's figures without ground truth, and why
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedModel:
    """Where a trained model landed in MLflow."""

    run_id: str
    model_uri: str  # models:/m-...: the logged model, registrable as a version
    experiment_id: str


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
            mlflow.log_text(markdown_table(trained.comparison.reset_index(names="metric"))
                            + "".join(f"\n\n{name}: {text}" for name, text in trained.notes.items()), "evaluation.md")
            mlflow.log_text(trained.importance.rename("importance").to_csv(index_label="feature"), "feature_importance.csv")
            for name, table in trained.tables.items():
                mlflow.log_text(table.to_csv(index=False), f"{name}.csv")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "predictor.joblib"
                joblib.dump(predictor, path)
                signature = feature_signature(example, predictor.predict_frame(example))
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


def feature_signature(example: pd.DataFrame, output: pd.DataFrame) -> ModelSignature:
    """The signature of a model over feature rows, inferred from an example and its output."""
    with warnings.catch_warnings():
        # MLflow warns that integer columns cannot hold missing values; feature counts are never NULL
        # (the features' contract), so the integer schema is exact, not a risk
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        return infer_signature(example, output)


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
    # a tracking server checks that a `models:/<model id>` source names the logged model it is registered from
    model_id = model_uri.removeprefix(LOGGED_MODEL_URI) if model_uri.startswith(LOGGED_MODEL_URI) else None
    return client.create_model_version(task, source=model_uri, run_id=run_id, tags=dict(tags), model_id=model_id)
