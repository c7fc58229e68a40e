"""Realised model performance: predictions made N days ago against the outcomes that have since matured.

For a monitoring day D and a task with horizon H, the predictions of day D - H are complete: every
outcome in their window [D - H, D) is known by the start of D. Their AUC, calibration and lift are the
model's real performance, not a proxy; the oracle's AUC on the same rows says how much was achievable.
Only the simulator knows the oracle: without ground truth (a provider's files) the `oracle_auc` column is
omitted (the asset's metadata says why), never filled with a number.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from marketing_ml.registry.evaluation import binary_metrics, decile_lift, oracle_horizon_probability
from marketing_ml.registry.predictor import load_champion
from marketing_ml.registry.tasks import OutcomeTask
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource

PERFORMANCE_COLUMNS = ["as_of_date", "task", "prediction_date", "rows", "positives", "observed_rate", "mean_prediction",
                       "auc", "calibration_error", "brier", "top_decile_lift", "oracle_auc", "trained_auc", "auc_ratio"]
ORACLE_COLUMNS = ("oracle_auc",)


def realized_metrics(p_model: np.ndarray, p_oracle: np.ndarray | None, y: np.ndarray) -> dict[str, float]:
    """Metrics of matured predictions, with the oracle's AUC on the same rows when `p_oracle` is given."""
    y = np.asarray(y, dtype=np.int8)
    oracle = {} if p_oracle is None else {
        "oracle_auc": binary_metrics(y, p_oracle)["auc"] if len(y) else float("nan")
    }
    if len(y) == 0:
        nothing = float("nan")
        return {"rows": 0.0, "positives": 0.0, "observed_rate": nothing, "mean_prediction": nothing, "auc": nothing,
                "calibration_error": nothing, "brier": nothing, "top_decile_lift": nothing, **oracle}
    model = binary_metrics(y, p_model)
    lift = decile_lift(y, p_model)
    return {
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "observed_rate": float(y.mean()),
        "mean_prediction": float(np.mean(p_model)),
        "auc": model["auc"],
        "calibration_error": model["calibration_error"],
        "brier": model["brier"],
        "top_decile_lift": float(lift["lift"].iloc[0]),
        **oracle,
    }


def matured_rows_sql(task: str, outcome_type: str, hazard_column: str, *, ground_truth: bool) -> str:
    """Predictions of one day with their realised label and, with ground truth, the oracle's daily hazard.

    Parameters: the prediction day P = D - horizon (twice), then the monitoring day D; the label window is
    [P, D). Dates are bound, not computed in SQL, and the label is a join rather than a correlated EXISTS
    in the select list (Snowflake accepts those only in WHERE), so the query is the same on every backend.
    """
    p_column = f"p_{task}"
    oracle_column = f"h.{hazard_column} as oracle_daily_hazard," if ground_truth else ""
    oracle_join = ("left join ground_truth.true_daily_hazards h\n          on h.client_id = preds.client_id and "
                   "h.as_of_date = preds.as_of_date" if ground_truth else "")
    return f"""
        with preds as (
            select client_id, as_of_date, {p_column} as p_model
            from scoring.daily_predictions
            where as_of_date = ? and {p_column} is not null
        ),
        outcomes as (
            select distinct client_id
            from raw.raw_outcomes
            where outcome_type = '{outcome_type}' and outcome_date >= ? and outcome_date < ?
        )
        select preds.client_id, preds.as_of_date, preds.p_model, {oracle_column}
               case when o.client_id is null then 0 else 1 end as label
        from preds
        left join outcomes o on o.client_id = preds.client_id
        {oracle_join}
    """


def realized_performance_of_day(warehouse: WarehouseResource, day: dt.date, task: OutcomeTask, trained_auc: float, *,
                                ground_truth: bool) -> dict:
    """One row of `realized_performance`: the task's predictions of one horizon before `day` against the
    outcomes matured since (no rows yet is a row that says so, with NaN metrics); the oracle's AUC only
    with ground truth."""
    horizon = task.default_horizon_days
    predicted = day - dt.timedelta(days=horizon)
    matured = warehouse.query(matured_rows_sql(task.name, task.outcome_type, task.hazard_column, ground_truth=ground_truth),
                              [predicted, predicted, day])
    p_oracle = oracle_horizon_probability(matured["oracle_daily_hazard"].fillna(0), horizon) if ground_truth else None
    metrics = realized_metrics(matured["p_model"].to_numpy(), p_oracle, matured["label"].to_numpy())
    return {"as_of_date": day, "task": task.name, "prediction_date": predicted, **metrics, "trained_auc": trained_auc,
            "auc_ratio": metrics["auc"] / trained_auc if trained_auc else float("nan")}


def performance_frame(rows: list[dict], *, ground_truth: bool) -> pd.DataFrame:
    """The `realized_performance` table; without ground truth, without the oracle's column."""
    columns = [c for c in PERFORMANCE_COLUMNS if ground_truth or c not in ORACLE_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def trained_auc(mlflow: MLflowResource, task: str) -> float:
    """The out-of-time test AUC the current champion was promoted with (logged with its training run)."""
    champion = load_champion(task, mlflow.tracking_uri)
    with mlflow.client() as client:
        return float(client.get_run(champion.run_id).data.metrics.get("auc", float("nan"))) if champion.run_id else float("nan")
