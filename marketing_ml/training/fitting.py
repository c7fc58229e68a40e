"""How a family is trained and judged on each task (`marketing_ml.registry.tasks`); plain functions, no Dagster.

- `conversion`, `churn`: one model on the observation rows, judged on the out-of-time test rows beside
  the oracle (with ground truth) and a trivial baseline.
- `nba` (next best action): one response model per action (a "T-learner"): because actions were assigned at random, the
  touches of each action are an unbiased sample of clients, so each per-action model estimates
  P(response | client, action) without confounding, and even a linear family can rank actions differently
  for different clients (a single model with the action as one more input would give a logistic
  regression the same best action for everyone). The recommended action is the argmax over the six
  actions, `no_contact` included. With ground truth the policy is valued under the true response
  probabilities of the policy evaluation population; without, by replay on the test touches.

Without ground truth (`frames.ground_truth` False) the oracle's figures are omitted and a note says why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from marketing_ml.registry.evaluation import (
    action_indices,
    comparison_table,
    decile_lift,
    flat_metrics,
    outcome_scores,
    policy_metrics,
    recommendation_mix,
    replay_action_table,
    replay_policy_metrics,
    response_scores,
)
from marketing_ml.registry.frames import Split, TrainingFrames
from marketing_ml.registry.model import BinaryModel
from marketing_ml.registry.predictor import ActionPredictor, OutcomePredictor
from marketing_ml.registry.store import TrainedModel
from marketing_ml.registry.tasks import LABEL, NBA, ORACLE_BEST_ACTION, OutcomeTask
from marketing_ml.settings import NO_GROUND_TRUTH
from marketing_ml.simulation.vocabulary import ACTION_NAMES
from marketing_ml.training.families import Family, FitOptions
from marketing_ml.training.plots import calibration_figure, lift_figure, policy_figure, roc_figure


def _binary_figures(y: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, Figure]:
    return {
        "roc": roc_figure(y, scores),
        "calibration": calibration_figure(y, scores),
        "lift": lift_figure(y, {k: v for k, v in scores.items() if k != "baseline"}),
    }


def train_outcome_model(task: OutcomeTask, family: Family, frames: TrainingFrames, horizon_days: int,
                        options: FitOptions = FitOptions()) -> TrainedModel:
    """Fit on train (+ validation for early stopping / calibration) and judge on the out-of-time test rows."""
    train, validation, test = (frames.split(s) for s in ("train", "validation", "test"))
    _require_rows(train, validation, test, where=task.name)
    model = family.fit(frames.spec, train, validation, options)
    predictor = OutcomePredictor(task.name, family.name, frames.spec, model, horizon_days)
    scores = outcome_scores(predictor, frames.test, ground_truth=frames.ground_truth, baseline_rate=float(train.y.mean()))
    comparison = comparison_table(test.y, scores)
    return TrainedModel(
        predictor=predictor,
        comparison=comparison,
        metrics=flat_metrics(comparison) | _row_counts(train, validation, test),
        importance=model.importance,
        importance_kind=model.importance_kind,
        figures=_binary_figures(test.y, scores),
        tables={"lift_by_decile": decile_lift(test.y, scores["model"])},
        fit_info=model.fit_info,
        notes=_oracle_note(frames),
    )


def train_action_model(family: Family, frames: TrainingFrames, options: FitOptions = FitOptions()) -> TrainedModel:
    """One response model per action; judged on later touches (response AUC etc.) and as a policy."""
    if frames.ground_truth and frames.population is None:
        raise ValueError("the next-best-action training frames need the policy evaluation population")
    models: dict[str, BinaryModel] = {}
    for k, action in enumerate(ACTION_NAMES, 1):
        train, validation = frames.split("train", action), frames.split("validation", action)
        _require_rows(train, validation, where=f"{NBA}/{action}")
        options.log(f"{family.name}: fitting the response model of {action} ({k} of {len(ACTION_NAMES)}) on "
                    f"{len(train):,} touches")
        models[action] = family.fit(frames.spec, train, validation, options)
    predictor = ActionPredictor(NBA, family.name, frames.spec, models)
    rates = {a: float(frames.split("train", a).y.mean()) for a in ACTION_NAMES}

    test = frames.split("test")
    _require_rows(test, where=f"{NBA}/test")
    scores = response_scores(predictor, frames.test, ground_truth=frames.ground_truth, rates=rates)
    comparison = comparison_table(test.y, scores)
    baseline_action = int(np.argmax(list(rates.values())))
    policy, figure, mix, notes = _policy_report(predictor, frames, baseline_action)
    figures = _binary_figures(test.y, scores) | {"policy": figure}
    importance = pd.concat([m.importance for m in models.values()], axis=1).fillna(0).mean(axis=1)
    return TrainedModel(
        predictor=predictor,
        comparison=comparison,
        metrics=flat_metrics(comparison) | policy | _row_counts(frames.split("train"), frames.split("validation"), test),
        importance=importance.sort_values(ascending=False),
        importance_kind=f"{next(iter(models.values())).importance_kind}, averaged over the six response models",
        figures=figures,
        tables={"recommendation_mix": mix},
        fit_info={a: m.fit_info for a, m in models.items()},
        notes=_oracle_note(frames) | notes,
    )


def _policy_report(predictor: ActionPredictor, frames: TrainingFrames,
                   baseline_action: int) -> tuple[dict[str, float], Figure, pd.DataFrame, dict[str, str]]:
    """The policy's value on the test slice (metrics, figure, per-action table, how it was measured): under
    the true response probabilities of the test population with ground truth, else by replay on the test touches."""
    baseline = f"all: {ACTION_NAMES[baseline_action]}"
    if frames.ground_truth:
        population = frames.population_of("test")
        policy, recommended = policy_metrics(predictor, population, baseline_action)
        truth_best = population[ORACLE_BEST_ACTION].map({a: i for i, a in enumerate(ACTION_NAMES)}).to_numpy()
        figure = policy_figure({"random": policy["policy_value_random"], baseline: policy["policy_value_baseline"],
                                "model": policy["policy_value"], "oracle": policy["policy_value_oracle"]})
        mix = recommendation_mix(recommended, truth_best, ACTION_NAMES)
        return policy | {"policy_rows": float(len(recommended))}, figure, mix, {}
    policy, recommended = replay_policy_metrics(predictor, frames.test, baseline_action)
    figure = policy_figure({"random": policy["policy_value_random"], baseline: policy["policy_value_baseline"],
                            "model": policy["policy_value"]},
                           title="Policy value (replay estimate on the logged test touches)")
    mix = replay_action_table(recommended, action_indices(frames.test), frames.test[LABEL].to_numpy(), ACTION_NAMES)
    note = (f"estimated from the {len(frames.test):,} logged test touches by replay (Li et al. 2010): the mean "
            f"response of the {int(policy['policy_matched_touches']):,} touches whose randomly assigned action is "
            "the one the policy recommends (its standard error: policy_value_standard_error); random = the mean "
            "response of all of them, the baseline = the response rate of its action's touches")
    return policy, figure, mix, {"policy_value_estimator": note}


def _oracle_note(frames: TrainingFrames) -> dict[str, str]:
    return {} if frames.ground_truth else {"oracle": NO_GROUND_TRUTH}


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

