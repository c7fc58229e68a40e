"""The contract between training and its consumers (daily scoring, the real-time API).

Every registered model version is an MLflow pyfunc wrapping a `Predictor`:

- **input**: a pandas DataFrame with the task's feature columns, as they are in
  `features.client_features_daily` (one row per client; extra columns such as `client_id` and
  `as_of_date` are ignored; a missing feature column is an error that names it);
- **output** of `conversion` and `churn`: a DataFrame with one column, `probability` = P(outcome within the
  model's horizon, counted from the features' as-of date), index aligned with the input;
- **output** of `nba`: `score_<action>` = P(response | client, action) for each of the six actions in
  `ACTION_NAMES` order (no_contact included), and `recommended_action` = the action with the highest
  score.

`mlflow.pyfunc.load_model("models:/<task>@champion").predict(frame)` returns exactly that. Code that
scores many times per second should skip pyfunc's per-call schema checks and use the predictor itself:
`load_champion(task, tracking_uri).predictor.predict_frame(frame)` (or `predict_proba(frame)` for the raw
numpy array): same numbers, one vectorised call, ~0.1-1 ms for a single row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.registry.encoding import require_columns
from marketing_ml.registry.model import BinaryModel
from marketing_ml.resources.mlflow_tracking import tracking
from marketing_ml.simulation.vocabulary import ACTION_NAMES

PROBABILITY_COLUMN = "probability"
RECOMMENDED_ACTION_COLUMN = "recommended_action"
SCORE_COLUMNS = tuple(f"score_{action}" for action in ACTION_NAMES)
PREDICTOR_ARTIFACT = "predictor"
# the models-from-code entry point MLflow stores with every logged model
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")


@dataclass
class OutcomePredictor:
    """Conversion or churn: P(outcome within `horizon_days` of the as-of date) per client."""

    task: str
    family: str
    spec: ModelInputs
    model: BinaryModel
    horizon_days: int

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return self.spec.all

    @property
    def output_columns(self) -> tuple[str, ...]:
        return (PROBABILITY_COLUMN,)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probabilities as a float64 array, one per row."""
        require_columns(frame, self.spec.all)
        return self.model.predict_proba(frame)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({PROBABILITY_COLUMN: self.predict_proba(frame)}, index=frame.index)


@dataclass
class ActionPredictor:
    """Next best action: one response model per action (see `marketing_ml.training.fitting`)."""

    task: str
    family: str
    spec: ModelInputs
    models: Mapping[str, BinaryModel]  # action -> response model, in ACTION_NAMES order

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return self.spec.all

    @property
    def output_columns(self) -> tuple[str, ...]:
        return (*SCORE_COLUMNS, RECOMMENDED_ACTION_COLUMN)

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self.models)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """(rows, actions) response probabilities, columns in `actions` order."""
        require_columns(frame, self.spec.all)
        return np.column_stack([model.predict_proba(frame) for model in self.models.values()])

    def recommend(self, scores: np.ndarray) -> np.ndarray:
        """Index of the best action per row (ties go to the earlier action, so the result is deterministic)."""
        return scores.argmax(axis=1)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        scores = self.predict_proba(frame)
        out = pd.DataFrame(scores, columns=[f"score_{a}" for a in self.actions], index=frame.index)
        out[RECOMMENDED_ACTION_COLUMN] = np.asarray(self.actions, dtype=object)[self.recommend(scores)]
        return out


Predictor = OutcomePredictor | ActionPredictor


class PredictorModel(PythonModel):
    """The pyfunc face of a `Predictor`: MLflow loads the pickled predictor and calls `predict_frame`."""

    def load_context(self, context) -> None:
        self.predictor: Predictor = joblib.load(context.artifacts[PREDICTOR_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.predictor.predict_frame(model_input)


@dataclass(frozen=True)
class LoadedModel:
    """A registered model version loaded for scoring: which version it is, and its predictor."""

    task: str
    alias: str
    version: str
    model_uri: str
    run_id: str | None
    predictor: Predictor


def load_predictor(model_uri: str, tracking_uri: str) -> Predictor:
    """The predictor behind any model URI (`models:/<task>@champion`, `models:/<task>/3`, `models:/m-...`)."""
    with tracking(tracking_uri):
        return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().predictor


def load_champion(task: str, tracking_uri: str, alias: str = "champion") -> LoadedModel:
    """The version of `task` that holds `alias`, with its predictor (the fast path for scoring and the API).

    Raises `LookupError` with what to do when no version holds the alias yet.
    """
    with tracking(tracking_uri) as client:
        try:
            version = client.get_model_version_by_alias(task, alias)
        except mlflow.exceptions.MlflowException as error:
            raise LookupError(
                f"no version of model {task!r} holds the alias @{alias} in {tracking_uri}; "
                "run `marketing-ml run --step models --step registry` first"
            ) from error
        # load the version the alias pointed to when asked, even if the alias moves meanwhile
        model_uri = f"models:/{task}/{version.version}"
        predictor = mlflow.pyfunc.load_model(model_uri).unwrap_python_model().predictor
    return LoadedModel(task, alias, str(version.version), model_uri, version.run_id, predictor)
