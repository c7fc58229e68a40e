"""The three prediction tasks, and how a family is trained and judged on each (plain functions, no Dagster).

- `conversion`, `churn` (`OutcomeTask`): rows are (client, observation date D) for clients active at D
  (for conversion: not yet converted); the label is whether the outcome happens in [D, D + horizon).
- `nba` (next best action): rows are the logged random campaign touches; the label is the observed
  response. One response model per action (a "T-learner"): because actions were assigned at random, the
  touches of each action are an unbiased sample of clients, so each per-action model estimates
  P(response | client, action) without confounding, and even a linear family can rank actions differently
  for different clients (a single model with the action as one more input would give a logistic
  regression the same best action for everyone). The recommended action is the argmax over the six
  actions, `no_contact` included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.simulation.vocabulary import ACTION_NAMES
from marketing_ml.training.evaluation import (
    comparison_table,
    decile_lift,
    policy_evaluation,
    recommendation_mix,
)
from marketing_ml.training.families import BinaryModel, Family, FitOptions, Split
from marketing_ml.training.plots import calibration_figure, lift_figure, policy_figure, roc_figure
from marketing_ml.training.predictor import ActionPredictor, OutcomePredictor, Predictor

NBA = "nba"
# columns a training set carries beside the features; never model inputs
LABEL = "label"
SPLIT = "split"
ORACLE = "oracle_probability"  # ground truth, evaluation only
ACTION = "action"
ORACLE_ACTION_PREFIX = "oracle_p_"  # + action: true response probability (policy evaluation set)
ORACLE_BEST_ACTION = "oracle_best_action"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class OutcomeTask:
    name: str
    outcome_type: str  # raw_outcomes.outcome_type
    hazard_column: str  # ground_truth.true_daily_hazards column: the oracle
    default_horizon_days: int
    unconverted_only: bool  # conversion: a converted client cannot convert again
    question: str


OUTCOME_TASKS: dict[str, OutcomeTask] = {
    t.name: t
    for t in (
        OutcomeTask("conversion", "conversion", "p_conversion_daily", 30, True,
                    "Will this client convert to wealth advisory within the horizon?"),
        OutcomeTask("churn", "churn", "p_churn_daily", 90, False,
                    "Will this client roll their assets out within the horizon?"),
    )
}
TASK_NAMES = (*OUTCOME_TASKS, NBA)
# the metric that ranks families and compares a candidate with the current champion
PRIMARY_METRIC = {"conversion": "auc", "churn": "auc", NBA: "policy_value"}


@dataclass
class TrainingFrames:
    """A task's training set table cut into its out-of-time slices (features + label + evaluation columns).

    For the next best action, `population` holds the policy evaluation rows: clients active on the test
    dates with the true response probability of every action (evaluation only).
    """

    spec: ModelInputs
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    population: pd.DataFrame | None = None

    @classmethod
    def from_table(cls, table: pd.DataFrame, spec: ModelInputs, population: pd.DataFrame | None = None) -> TrainingFrames:
        parts = {name: table[table[SPLIT] == name].reset_index(drop=True) for name in SPLITS}
        return cls(spec, parts["train"], parts["validation"], parts["test"], population)

    def split(self, name: str, action: str | None = None) -> Split:
        rows = getattr(self, name)
        if action is not None:
            rows = rows[rows[ACTION] == action]
        return Split(rows[list(self.spec.all)], rows[LABEL].to_numpy())


@dataclass
class TrainedModel:
    """A fitted predictor and everything a reviewer needs to judge it (test rows = out of time)."""

    predictor: Predictor
    comparison: pd.DataFrame  # metric x (model, oracle, baseline), same rows
    metrics: dict[str, float]  # flat numbers for metadata and MLflow
    importance: pd.Series
    importance_kind: str
    figures: dict[str, Figure]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    fit_info: dict[str, object] = field(default_factory=dict)


def _flat(comparison: pd.DataFrame) -> dict[str, float]:
    """model metrics as `auc`, ...; the others as `oracle_auc`, `baseline_auc`, ..."""
    flat: dict[str, float] = {}
    for scorer in comparison.columns:
        prefix = "" if scorer == "model" else f"{scorer}_"
        flat.update({f"{prefix}{metric}": float(v) for metric, v in comparison[scorer].items()})
    oracle_auc = flat.get("oracle_auc", float("nan"))
    flat["auc_ratio_to_oracle"] = flat["auc"] / oracle_auc if oracle_auc and oracle_auc == oracle_auc else float("nan")
    return flat


def _binary_figures(y: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, Figure]:
    return {
        "roc": roc_figure(y, scores),
        "calibration": calibration_figure(y, scores),
        "lift": lift_figure(y, {k: v for k, v in scores.items() if k != "baseline"}),
    }


def outcome_scores(predictor: Predictor, rows: pd.DataFrame, baseline_rate: float | None = None) -> dict[str, np.ndarray]:
    """Model, oracle (and constant baseline) probabilities for the same rows."""
    scores = {"model": predictor.predict_proba(rows), "oracle": rows[ORACLE].to_numpy(np.float64)}
    if baseline_rate is not None:
        scores["baseline"] = np.full(len(rows), baseline_rate)
    return scores


def response_scores(predictor: ActionPredictor, touches: pd.DataFrame, rates: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """For observed touches: the model's score of the action each client actually received, the true
    probability of that response (oracle) and, given training response `rates`, the per-action baseline."""
    action_index = pd.Categorical(touches[ACTION], categories=list(ACTION_NAMES)).codes
    scores = {
        "model": predictor.predict_proba(touches)[np.arange(len(touches)), action_index],
        "oracle": touches[ORACLE].to_numpy(np.float64),
    }
    if rates is not None:
        scores["baseline"] = np.asarray([rates[a] for a in ACTION_NAMES])[action_index]
    return scores


def policy_metrics(predictor: ActionPredictor, population: pd.DataFrame, baseline_action: int) -> tuple[dict[str, float], np.ndarray]:
    """The policy's value on the population under the true response probabilities, and its choices."""
    truth = population[[ORACLE_ACTION_PREFIX + a for a in ACTION_NAMES]].to_numpy(np.float64)
    recommended = predictor.recommend(predictor.predict_proba(population))
    return policy_evaluation(recommended, truth, ACTION_NAMES, baseline_action), recommended


def train_outcome_model(task: OutcomeTask, family: Family, frames: TrainingFrames, horizon_days: int,
                        options: FitOptions = FitOptions()) -> TrainedModel:
    """Fit on train (+ validation for early stopping / calibration) and judge on the out-of-time test rows."""
    train, validation, test = (frames.split(s) for s in SPLITS)
    _require_rows(train, validation, test, where=task.name)
    model = family.fit(frames.spec, train, validation, options)
    predictor = OutcomePredictor(task.name, family.name, frames.spec, model, horizon_days)
    scores = outcome_scores(predictor, frames.test, baseline_rate=float(train.y.mean()))
    comparison = comparison_table(test.y, scores)
    return TrainedModel(
        predictor=predictor,
        comparison=comparison,
        metrics=_flat(comparison) | _row_counts(train, validation, test),
        importance=model.importance,
        importance_kind=model.importance_kind,
        figures=_binary_figures(test.y, scores),
        tables={"lift_by_decile": decile_lift(test.y, scores["model"])},
        fit_info=model.fit_info,
    )


def train_action_model(family: Family, frames: TrainingFrames, options: FitOptions = FitOptions()) -> TrainedModel:
    """One response model per action; judged on later touches (response AUC etc.) and as a policy."""
    if frames.population is None:
        raise ValueError("the next-best-action training frames need the policy evaluation population")
    models: dict[str, BinaryModel] = {}
    for action in ACTION_NAMES:
        train, validation = frames.split("train", action), frames.split("validation", action)
        _require_rows(train, validation, where=f"{NBA}/{action}")
        options.log(f"{family.name}: fitting the response model of {action} on {len(train):,} touches")
        models[action] = family.fit(frames.spec, train, validation, options)
    predictor = ActionPredictor(NBA, family.name, frames.spec, models)
    rates = {a: float(frames.split("train", a).y.mean()) for a in ACTION_NAMES}

    test = frames.split("test")
    _require_rows(test, where=f"{NBA}/test")
    scores = response_scores(predictor, frames.test, rates)
    comparison = comparison_table(test.y, scores)
    baseline_action = int(np.argmax(list(rates.values())))
    policy, recommended = policy_metrics(predictor, frames.population, baseline_action)
    figures = _binary_figures(test.y, scores)
    figures["policy"] = policy_figure(
        {
            "random": policy["policy_value_random"],
            f"all: {ACTION_NAMES[baseline_action]}": policy["policy_value_baseline"],
            "model": policy["policy_value"],
            "oracle": policy["policy_value_oracle"],
        }
    )
    truth_best = frames.population[ORACLE_BEST_ACTION].map({a: i for i, a in enumerate(ACTION_NAMES)}).to_numpy()
    importance = pd.concat([m.importance for m in models.values()], axis=1).fillna(0).mean(axis=1)
    return TrainedModel(
        predictor=predictor,
        comparison=comparison,
        metrics=_flat(comparison) | policy | _row_counts(frames.split("train"), frames.split("validation"), test)
        | {"policy_rows": float(len(recommended))},
        importance=importance.sort_values(ascending=False),
        importance_kind=f"{next(iter(models.values())).importance_kind}, averaged over the six response models",
        figures=figures,
        tables={"recommendation_mix": recommendation_mix(recommended, truth_best, ACTION_NAMES)},
        fit_info={a: m.fit_info for a, m in models.items()},
    )


def gate_metrics(predictor: Predictor, task: str, test: pd.DataFrame, population: pd.DataFrame | None = None) -> dict[str, float]:
    """The metrics the champion gate compares, for any predictor (a candidate or the current champion),
    on the test rows of the current training set."""
    if task == NBA:
        scores = response_scores(predictor, test)
        policy, _ = policy_metrics(predictor, population, baseline_action=0)
        return _flat(comparison_table(test[LABEL].to_numpy(np.int8), scores)) | policy
    return _flat(comparison_table(test[LABEL].to_numpy(np.int8), outcome_scores(predictor, test)))


def _row_counts(train: Split, validation: Split, test: Split) -> dict[str, float]:
    counts: dict[str, float] = {}
    for name, split in (("train", train), ("validation", validation), ("test", test)):
        counts[f"{name}_rows"] = float(len(split))
        counts[f"{name}_positives"] = float(split.y.sum())
    return counts


def _require_rows(*splits: Split, where: str) -> None:
    """Training on an empty slice or a slice without both classes is a data problem: say so plainly."""
    for split in splits:
        if len(split) == 0 or len(np.unique(split.y)) < 2:
            raise ValueError(
                f"{where}: a slice has {len(split)} rows and {int(split.y.sum()) if len(split) else 0} positives; "
                "every slice needs both classes. Build more history or clients, or widen the label horizon."
            )

