"""The prediction tasks every trained model serves, and the columns of the training sets they are judged on.

- `conversion`, `churn` (`OutcomeTask`): rows are (client, observation date D) for clients active at D
  (for conversion: not yet converted); the label is whether the outcome happens in [D, D + horizon).
- `nba` (next best action): rows are the logged random campaign touches; the label is the observed
  response, one response model per action.

Training writes models for these tasks, the registry promotes them, and scoring, monitoring, serving and
streaming read them; this module is what all of them agree on.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from marketing_ml.simulation.vocabulary import ACTION_NAMES

NBA = "nba"
# the model families every task is trained in (how each is fitted: `marketing_ml.training.families`)
FAMILY_NAMES = ("logreg", "random_forest", "xgboost", "torch_mlp")


@dataclass(frozen=True)
class OutcomeTask:
    name: str
    outcome_type: str  # raw_outcomes.outcome_type
    hazard_column: str  # ground_truth.true_daily_hazards column: the oracle (only the simulator has it)
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

# ---- training sets: tables in the warehouse schema `training`, one per task ------------------------------

TRAINING_SCHEMA = "training"
POLICY_SET = "nba_policy_evaluation_set"
# columns a training set carries beside the features; never model inputs
LABEL = "label"
SPLIT = "split"
LABEL_END = "label_end"
ACTION = "action"
ORACLE = "oracle_probability"  # ground truth, evaluation only
ORACLE_HAZARD = "oracle_daily_hazard"  # ground truth: the true daily hazard at the observation date
ORACLE_ACTION_PREFIX = "oracle_p_"  # + action: true response probability (policy evaluation set)
ORACLE_BEST_ACTION = "oracle_best_action"
# train: fitted on; validation: early stopping and calibration; selection: the champion is chosen on it;
# test: what every reported figure comes from, later than any slice a choice has seen
SPLITS = ("train", "validation", "selection", "test")
HELD_OUT = ("selection", "test")
# every column of a training set that is not a feature: bookkeeping, labels and ground truth
NON_FEATURE_COLUMNS = frozenset(
    {"client_id", "as_of_date", SPLIT, LABEL, LABEL_END, ORACLE, ORACLE_HAZARD, ACTION, "touch_id", "touch_date",
     ORACLE_BEST_ACTION, *(ORACLE_ACTION_PREFIX + a for a in ACTION_NAMES)}
)


def training_set_name(task: str) -> str:
    return f"training_set_{task}"


def training_set_table(task: str) -> str:
    return f"{TRAINING_SCHEMA}.{training_set_name(task)}"


def training_set_key(task: str) -> dg.AssetKey:
    return dg.AssetKey(training_set_name(task))


def model_key(task: str, family: str) -> dg.AssetKey:
    """The asset of one trained model (`conversion_xgboost`, ...)."""
    return dg.AssetKey(f"{task}_{family}")


def champion_key(task: str) -> dg.AssetKey:
    return dg.AssetKey(f"{task}_champion")
