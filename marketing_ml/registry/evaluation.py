"""Honest evaluation: every model's metrics beside the oracle's and a trivial baseline's, on the same rows.

The oracle is the simulator's truth, used here and nowhere else: for conversion and churn the true daily
hazard on the observation date turned into a horizon probability (`oracle_horizon_probability`), for the
next best action the true response probability of each action. The trivial baseline predicts the training
base rate for every row (per action for the next best action): AUC 0.5, and the log loss and Brier score
any model must beat to have learnt something.

Without ground truth (a provider's files, `Settings.ground_truth` False) the oracle is omitted, never
filled in: models stand beside the baseline only, and a next-best-action policy is valued on the held-out
logged touches by replay (`replay_policy_evaluation`), an unbiased estimate because the touches' actions
were assigned uniformly at random.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import math

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from marketing_ml.registry.tasks import ACTION, LABEL, NBA, ORACLE, ORACLE_ACTION_PREFIX
from marketing_ml.simulation.vocabulary import ACTION_NAMES

if TYPE_CHECKING:
    from marketing_ml.registry.predictor import ActionPredictor, Predictor

EPS = 1e-6
METRICS = ("auc", "pr_auc", "log_loss", "brier", "accuracy", "calibration_error", "mean_probability")
# the metrics where lower is better; the others are higher-is-better
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "calibration_error"})


def oracle_horizon_probability(daily_hazard: np.ndarray | pd.Series, horizon_days: int) -> np.ndarray:
    """P(event within `horizon_days`) if the true daily hazard on the observation date stayed constant.

    1 - (1 - h)^H: the oracle knows each client's true hazard on the observation date, not the future
    behaviour that moves it during the window, so it is a strong but not a perfect predictor.
    """
    h = np.clip(np.asarray(daily_hazard, dtype=np.float64), 0.0, 1.0)
    return 1.0 - np.power(1.0 - h, horizon_days)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean prediction| over equal-count bins of the prediction, weighted by bin size.

    Equal-count (not equal-width) bins: with 1-3% base rates, equal-width bins put almost every row in
    the first bin and the error would only compare the overall means.
    """
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    error = 0.0
    for chunk in np.array_split(order, min(bins, len(y))):
        error += len(chunk) * abs(y[chunk].mean() - p[chunk].mean())
    return float(error / len(y))


def calibration_noise(y: np.ndarray, bins: int = 10) -> float:
    """The expected calibration error a perfectly calibrated model would still show on these labels: the
    mean |binomial noise| of a bin's observed rate, sqrt(2/pi) x sqrt(r(1 - r) / rows per bin), at the
    observed rate r. Needs no truth: the floor of the calibration gate without an oracle. (Bins with rates
    away from r have less noise than r(1 - r) says, so this errs on the generous side.)"""
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    rate, per_bin = y.mean(), len(y) / min(bins, len(y))
    return float(math.sqrt(2 / math.pi) * math.sqrt(rate * (1 - rate) / per_bin))


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, PR-AUC, log loss, Brier, accuracy (at 0.5), calibration error and the mean probability; NaN
    where undefined."""
    y = np.asarray(y, dtype=np.int8)
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    both_classes = len(np.unique(y)) == 2
    return {
        "auc": float(roc_auc_score(y, p)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both_classes else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else float("nan"),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "accuracy": float(np.mean((p >= 0.5) == y)) if len(y) else float("nan"),
        "calibration_error": expected_calibration_error(y, p),
        "mean_probability": float(p.mean()) if len(p) else float("nan"),
    }


def comparison_table(y: np.ndarray, scores: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Metrics (rows) x scorers (columns, e.g. model / oracle / baseline) on the same rows."""
    return pd.DataFrame({name: binary_metrics(y, p) for name, p in scores.items()}).loc[list(METRICS)]


def decile_lift(y: np.ndarray, p: np.ndarray, groups: int = 10) -> pd.DataFrame:
    """Observed rate per decile of the score (decile 1 = highest scores) and its lift over the base rate."""
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
    chunks = np.array_split(order, min(groups, max(len(y), 1)))
    base = y.mean() if len(y) else float("nan")
    rates = [y[c].mean() if len(c) else float("nan") for c in chunks]
    return pd.DataFrame(
        {
            "decile": np.arange(1, len(chunks) + 1),
            "rows": [len(c) for c in chunks],
            "observed_rate": rates,
            "lift": np.asarray(rates) / base if base else np.nan,
        }
    )


def policy_evaluation(
    recommended: np.ndarray, true_probabilities: np.ndarray, actions: Sequence[str], baseline_action: int
) -> dict[str, float]:
    """Value of a next-best-action policy under the simulator's true response probabilities.

    `true_probabilities` is (clients, actions). Value = mean true response probability of the chosen
    action. Random assignment (the logged experiment's policy) is worth the mean over actions; the oracle
    picks each client's best action; the baseline policy sends everyone the single action with the
    highest response rate in training. Captured lift = (model - random) / (oracle - random).
    """
    truth = np.asarray(true_probabilities, dtype=np.float64)
    rows = np.arange(len(truth))
    best = truth.argmax(axis=1)
    value_model = truth[rows, recommended].mean()
    value_random = truth.mean()
    value_oracle = truth[rows, best].mean()
    value_baseline = truth[:, baseline_action].mean()
    span = value_oracle - value_random
    return {
        "policy_accuracy": float(np.mean(recommended == best)),
        "policy_value": float(value_model),
        "policy_value_random": float(value_random),
        "policy_value_baseline": float(value_baseline),
        "policy_value_oracle": float(value_oracle),
        "captured_lift": float((value_model - value_random) / span) if span > 0 else float("nan"),
        "baseline_captured_lift": float((value_baseline - value_random) / span) if span > 0 else float("nan"),
        "baseline_policy_accuracy": float(np.mean(best == baseline_action)),
    }


def replay_policy_evaluation(recommended: np.ndarray, logged_action: np.ndarray, responded: np.ndarray,
                             baseline_action: int) -> dict[str, float]:
    """Value of a next-best-action policy estimated from logged touches, without ground truth ("replay",
    Li et al. 2010).

    The touches' actions were assigned uniformly at random, independently of the client, so the touches
    whose logged action is the one the policy recommends for that client on that day are a random sample
    of the policy's decisions, and their mean response is an unbiased estimate of the policy's response
    rate (its standard error from the matched count). Random assignment is worth the mean response over
    all touches; the baseline policy (everyone gets `baseline_action`) the response rate of that action's
    touches. Arrays are per touch; actions are indices.
    """
    recommended, logged = np.asarray(recommended), np.asarray(logged_action)
    y = np.asarray(responded, dtype=np.float64)
    matched = recommended == logged
    baseline = logged == baseline_action
    count = int(matched.sum())
    value = float(y[matched].mean()) if count else float("nan")
    return {
        "policy_value": value,
        "policy_value_standard_error": math.sqrt(value * (1 - value) / count) if count else float("nan"),
        "policy_matched_touches": float(count),
        "policy_value_random": float(y.mean()) if len(y) else float("nan"),
        "policy_value_baseline": float(y[baseline].mean()) if baseline.any() else float("nan"),
    }


def replay_action_table(recommended: np.ndarray, logged_action: np.ndarray, responded: np.ndarray,
                        actions: Sequence[str]) -> pd.DataFrame:
    """Per action, on the logged touches: the share of touches for which the policy recommends it, the
    touches that logged it and their response rate (the action's base rate), and how many of those the
    replay estimate matched."""
    recommended, logged = np.asarray(recommended), np.asarray(logged_action)
    y = np.asarray(responded, dtype=np.float64)
    n = max(len(recommended), 1)
    touches = np.bincount(logged, minlength=len(actions))
    responses = np.bincount(logged, weights=y, minlength=len(actions))
    return pd.DataFrame(
        {
            "action": list(actions),
            "model_share": np.bincount(recommended, minlength=len(actions)) / n,
            "touches": touches,
            "response_rate": np.divide(responses, touches, out=np.full(len(actions), np.nan), where=touches > 0),
            "matched_touches": np.bincount(logged[recommended == logged], minlength=len(actions)),
        }
    )


def recommendation_mix(recommended: np.ndarray, true_best: np.ndarray, actions: Sequence[str]) -> pd.DataFrame:
    """Share of clients per action: recommended by the model vs best according to the oracle."""
    n = max(len(recommended), 1)
    return pd.DataFrame(
        {
            "action": list(actions),
            "model_share": np.bincount(recommended, minlength=len(actions)) / n,
            "oracle_share": np.bincount(true_best, minlength=len(actions)) / n,
        }
    )


# ---- a predictor's scores on a training set's rows: what training reports and the champion gate compares ----


def flat_metrics(comparison: pd.DataFrame) -> dict[str, float]:
    """model metrics as `auc`, ...; the others as `oracle_auc`, `baseline_auc`, ...; with an oracle, the
    model's AUC as a share of the oracle's (`auc_ratio_to_oracle`)."""
    flat: dict[str, float] = {}
    for scorer in comparison.columns:
        prefix = "" if scorer == "model" else f"{scorer}_"
        flat.update({f"{prefix}{metric}": float(v) for metric, v in comparison[scorer].items()})
    if "oracle" in comparison.columns:
        oracle_auc = flat["oracle_auc"]
        flat["auc_ratio_to_oracle"] = flat["auc"] / oracle_auc if oracle_auc and oracle_auc == oracle_auc else float("nan")
    return flat


def outcome_scores(predictor: Predictor, rows: pd.DataFrame, *, ground_truth: bool,
                   baseline_rate: float | None = None) -> dict[str, np.ndarray]:
    """Model, oracle (with ground truth) and constant baseline (given its rate) probabilities for the same rows."""
    scores = {"model": predictor.predict_proba(rows)}
    if ground_truth:
        scores["oracle"] = rows[ORACLE].to_numpy(np.float64)
    if baseline_rate is not None:
        scores["baseline"] = np.full(len(rows), baseline_rate)
    return scores


def action_indices(touches: pd.DataFrame) -> np.ndarray:
    """The index in `ACTION_NAMES` of each touch's logged action."""
    return pd.Categorical(touches[ACTION], categories=list(ACTION_NAMES)).codes.astype(np.int64)


def response_scores(predictor: ActionPredictor, touches: pd.DataFrame, *, ground_truth: bool,
                    rates: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """For observed touches: the model's score of the action each client actually received, the true
    probability of that response (oracle, with ground truth) and, given response `rates`, the per-action baseline."""
    action_index = action_indices(touches)
    scores = {"model": predictor.predict_proba(touches)[np.arange(len(touches)), action_index]}
    if ground_truth:
        scores["oracle"] = touches[ORACLE].to_numpy(np.float64)
    if rates is not None:
        scores["baseline"] = np.asarray([rates[a] for a in ACTION_NAMES])[action_index]
    return scores


def policy_metrics(predictor: ActionPredictor, population: pd.DataFrame, baseline_action: int) -> tuple[dict[str, float], np.ndarray]:
    """The policy's value on the population under the true response probabilities, and its choices."""
    truth = population[[ORACLE_ACTION_PREFIX + a for a in ACTION_NAMES]].to_numpy(np.float64)
    recommended = predictor.recommend(predictor.predict_proba(population))
    return policy_evaluation(recommended, truth, ACTION_NAMES, baseline_action), recommended


def replay_policy_metrics(predictor: ActionPredictor, touches: pd.DataFrame, baseline_action: int) -> tuple[dict[str, float], np.ndarray]:
    """The policy's value estimated by replay on held-out logged touches, and its choice for each touch."""
    recommended = predictor.recommend(predictor.predict_proba(touches))
    logged = action_indices(touches)
    return replay_policy_evaluation(recommended, logged, touches[LABEL].to_numpy(np.float64), baseline_action), recommended


def response_rates(touches: pd.DataFrame) -> dict[str, float]:
    """The response rate of each action's touches (NaN for an action without touches)."""
    rates = touches.groupby(ACTION)[LABEL].mean()
    return {a: float(rates.get(a, float("nan"))) for a in ACTION_NAMES}


def gate_metrics(predictor: Predictor, task: str, test: pd.DataFrame, population: pd.DataFrame | None = None, *,
                 ground_truth: bool) -> dict[str, float]:
    """The metrics the champion gate compares, for any predictor (a candidate or the current champion),
    on the held-out rows of the current training set.

    Beside the model: the oracle (with ground truth), and the no-skill baseline of the same rows (their own
    base rate, per action for the next best action: the best a scorer blind to the client can do there), the
    observed rate and the calibration error a calibrated model would still show on them. The next best
    action's policy value comes from the population's true probabilities with ground truth, else from
    replay on the touches themselves.
    """
    y = test[LABEL].to_numpy(np.int8)
    rows = {"observed_rate": float(y.mean()) if len(y) else float("nan"), "calibration_noise": calibration_noise(y)}
    if task == NBA:
        scores = response_scores(predictor, test, ground_truth=ground_truth, rates=response_rates(test))
        if ground_truth:
            policy, _ = policy_metrics(predictor, population, baseline_action=0)
        else:
            policy, _ = replay_policy_metrics(predictor, test, baseline_action=0)
        return flat_metrics(comparison_table(y, scores)) | policy | rows
    scores = outcome_scores(predictor, test, ground_truth=ground_truth, baseline_rate=rows["observed_rate"])
    return flat_metrics(comparison_table(y, scores)) | rows

