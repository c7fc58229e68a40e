"""The champions the API serves, and how a request is scored from encoded feature rows.

Every model of a task is a `BinaryModel` (conversion and churn: one; next best action: one response model
per action). A model's pipeline is split where its encoding ends (`BinaryModel.encode` /
`predict_proba_encoded`): stored feature rows are encoded once, when they load, so a request runs only
the classifiers, on one row of a matrix already in memory, plus the exact attribution of the conversion
and churn scores (`marketing_ml.registry.attribution`). Scores equal the predictor's own `predict_frame`
up to float32 rounding (models compute in float32, and BLAS may round a 1-row product differently from a
batch's; tested to 1e-6).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.special import expit
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from marketing_ml.registry.attribution import attribute_encoded, largest_contributions
from marketing_ml.registry.encoding import EncodedRows
from marketing_ml.registry.model import BinaryModel
from marketing_ml.registry.predictor import ActionPredictor, LoadedModel, OutcomePredictor, load_champion
from marketing_ml.registry.tasks import NBA, OUTCOME_TASKS
from marketing_ml.serving.trees import CompiledTrees, UnsupportedBooster

SERVED_TASKS = (*OUTCOME_TASKS, NBA)  # conversion, churn, nba
REASONS = 3
# classifiers whose attribution adds up exactly to their log-odds (TreeSHAP, linear SHAP)
EXACT_LOG_ODDS = (xgb.XGBClassifier, LogisticRegression)


@dataclass(frozen=True)
class Reason:
    feature: str
    contribution: float


@dataclass(frozen=True)
class OutcomeScores:
    """Conversion or churn for a block of rows."""

    probability: np.ndarray
    reasons: list[list[Reason]]  # per row: up to REASONS features that raised the score most
    contribution_unit: str  # what contributions are measured in: "log-odds" or "probability"


@dataclass(frozen=True)
class ActionScores:
    scores: np.ndarray  # (rows, actions)
    recommended: np.ndarray  # index into actions, per row


@dataclass(frozen=True)
class ScoredRows:
    outcomes: dict[str, OutcomeScores]  # conversion, churn
    actions: ActionScores


class ServedModel:
    """One `BinaryModel` as a request runs it: the model's own numbers by the shortest exact path.

    Library entry points validate their input on every call (sklearn: ~80 us; XGBoost's sklearn wrapper:
    ~200 us), which for one row costs more than the arithmetic. So, for the two classifiers whose math is
    a single expression of their fitted parameters, the expression runs directly:

    - logistic regression: sigmoid(X @ coef + intercept), sklearn's own formula;
    - XGBoost: the booster's prediction on a DMatrix, one thread (a thread team costs more than it saves
      on one row); models whose input rows are the same (NBA's six response models usually are) share
      one DMatrix, the costliest part of a one-row prediction.

    And for them the attribution is exact in log-odds (linear SHAP, TreeSHAP), so its margin *is* the score:
    one attribution call yields the probability and its reasons. Every other classifier goes through
    `predict_proba_encoded` and `attribute_encoded` unchanged. Tests check all paths against the
    predictor's `predict_frame`.
    """

    def __init__(self, model: BinaryModel):
        self.model = model
        classifier = model.pipeline[-1]
        self.margin_is_score = isinstance(classifier, EXACT_LOG_ODDS) and model.calibration is None
        self._linear = None
        self._booster = None
        if isinstance(classifier, LogisticRegression):
            self._linear = (classifier.coef_[0].astype(np.float64), float(classifier.intercept_[0]))
        elif isinstance(classifier, xgb.XGBClassifier):
            classifier.set_params(n_jobs=1)
            self._booster = classifier.get_booster()
            self._booster.set_param({"nthread": 1})
            best = getattr(classifier, "best_iteration", None)
            self._rounds = (0, best + 1 if best is not None else self._booster.num_boosted_rounds())
        elif isinstance(classifier, RandomForestClassifier):
            classifier.set_params(n_jobs=1)

    @property
    def booster(self) -> tuple[xgb.Booster, int, int] | None:
        """(booster, trees used, input width) for an XGBoost model."""
        if self._booster is None:
            return None
        return self._booster, self._rounds[1], self._booster.num_features()

    def probability(self, X: np.ndarray, dmatrices: dict[bytes, xgb.DMatrix] | None = None) -> np.ndarray:
        """P(label = 1) per row; `dmatrices` caches DMatrix objects by row content across models."""
        if self._linear is not None:
            coef, intercept = self._linear
            p = expit(X @ coef + intercept)
        elif self._booster is not None:
            dmatrices = {} if dmatrices is None else dmatrices
            content = X.dtype.str.encode() + X.tobytes()
            if content not in dmatrices:
                dmatrices[content] = xgb.DMatrix(X, nthread=1)
            p = self._booster.predict(dmatrices[content], iteration_range=self._rounds).astype(np.float64)
        else:
            return self.model.predict_proba_encoded(X)
        return self.model.calibration.apply(p) if self.model.calibration else p

    def probability_and_reasons(self, X: np.ndarray, k: int = REASONS) -> OutcomeScores:
        attribution = attribute_encoded(self.model, X)
        probability = expit(attribution.margin) if self.margin_is_score else self.probability(X)
        order, values = largest_contributions(attribution, k)
        reasons = [
            [Reason(attribution.features[j], float(v)) for j, v in zip(picks, row_values) if v > 0]
            for picks, row_values in zip(order, values)
        ]
        return OutcomeScores(probability, reasons, attribution.score_kind)


@dataclass(frozen=True)
class ChampionSet:
    """The loaded champion of each served task; immutable, swapped whole when an alias moves."""

    loaded: Mapping[str, LoadedModel]
    # the NBA boosters walked together in numpy, once checked against the boosters on stored rows
    compiled_actions: CompiledTrees | None = None

    @classmethod
    def load(cls, tracking_uri: str, alias: str = "champion", reuse: ChampionSet | None = None,
             versions: Mapping[str, str] | None = None) -> ChampionSet:
        """Load each task's version holding `alias`; tasks whose version in `reuse` is still the one in
        `versions` keep their loaded model (loading a model takes seconds; polling an alias milliseconds)."""
        loaded = {}
        for task in SERVED_TASKS:
            kept = reuse.loaded.get(task) if reuse else None
            if kept is not None and versions is not None and versions.get(task) == kept.version:
                loaded[task] = kept
                continue
            loaded[task] = load_champion(task, tracking_uri, alias)
        return cls(loaded)

    @functools.cached_property
    def served(self) -> dict[str, ServedModel]:
        return {key: ServedModel(model) for key, model in self.models.items()}

    @property
    def action_keys(self) -> list[str]:
        return [f"{NBA}/{a}" for a in self.actions]

    def with_compiled_actions(self, encoded: Mapping[str, np.ndarray], check_rows: int = 20_000) -> ChampionSet:
        """This set with the NBA boosters compiled (`marketing_ml.serving.trees`), if every NBA model is an
        uncalibrated XGBoost booster and the compiled probabilities equal the boosters' own on up to
        `check_rows` of the given encoded rows; otherwise this set unchanged."""
        served = [self.served[k] for k in self.action_keys]
        if self.compiled_actions is not None or not all(m.booster is not None and m.model.calibration is None
                                                         for m in served):
            return self
        boosters = [m.booster for m in served]
        rows = [encoded[k][:check_rows] for k in self.action_keys]
        try:
            compiled = CompiledTrees(boosters)
        except UnsupportedBooster:
            return self
        return dataclasses.replace(self, compiled_actions=compiled) if compiled.matches(boosters, rows) else self

    @property
    def versions(self) -> dict[str, str]:
        return {task: m.version for task, m in self.loaded.items()}

    @property
    def conversion(self) -> OutcomePredictor:
        return self.loaded["conversion"].predictor

    @property
    def nba(self) -> ActionPredictor:
        return self.loaded[NBA].predictor

    @property
    def actions(self) -> tuple[str, ...]:
        return self.nba.actions

    @property
    def models(self) -> dict[str, BinaryModel]:
        """Every binary model, by a key that names it: `conversion`, `churn`, `nba/<action>`."""
        out: dict[str, BinaryModel] = {}
        for task in SERVED_TASKS:
            out.update(_binary_models(self.loaded[task]))
        return out

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """Every feature column any served model reads, in a stable order."""
        columns: dict[str, None] = {}
        for task in SERVED_TASKS:
            columns.update(dict.fromkeys(self.loaded[task].predictor.feature_columns))
        return tuple(columns)

    def encode(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Feature rows -> each model's input matrix (`BinaryModel.encode`), each distinct encoder run once
        (`EncodedRows`)."""
        rows = EncodedRows(frame)
        return {key: np.ascontiguousarray(model.encode(rows)) for key, model in self.models.items()}

    def score(self, encoded: Mapping[str, np.ndarray], rows: slice | np.ndarray) -> ScoredRows:
        """Scores and reasons for `rows` of the encoded matrices (one vectorised call per model)."""
        served = self.served
        outcomes = {task: served[task].probability_and_reasons(encoded[task][rows]) for task in OUTCOME_TASKS}
        keys = self.action_keys
        if self.compiled_actions is not None:
            scores = self.compiled_actions.probabilities([encoded[k][rows] for k in keys])
        else:
            dmatrices: dict[bytes, xgb.DMatrix] = {}
            scores = np.column_stack([served[k].probability(encoded[k][rows], dmatrices) for k in keys])
        return ScoredRows(outcomes, ActionScores(scores, self.nba.recommend(scores)))


def _binary_models(loaded: LoadedModel) -> dict[str, BinaryModel]:
    predictor = loaded.predictor
    if isinstance(predictor, ActionPredictor):
        return {f"{NBA}/{action}": model for action, model in predictor.models.items()}
    return {loaded.task: predictor.model}
