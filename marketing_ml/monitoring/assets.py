"""Monitoring as daily assets: drift, realised performance and alerts, with checks that turn the UI red.

- `feature_drift`: PSI (and KS for continuous columns) of the day's model inputs against the conversion
  champion's training rows, per feature.
- `score_drift`: the same for the day's scores against the champions' scores on those training rows.
- `realized_performance`: predictions of H days ago (H = each task's horizon) against matured outcomes.
- `alerts`: every threshold breach with an ordered severity; critical ones fail asset checks, go to the
  optional webhook (`MARKETING_ML_ALERT_WEBHOOK`) and make `retraining_sensor` retrain.
"""

import datetime as dt
import json
import os
import urllib.request

import dagster as dg
import pandas as pd

from marketing_ml.metadata import figure_markdown, markdown_table
from marketing_ml.monitoring.alerts import AUC_RATIO, CALIBRATION_GAP, FEATURE_PSI, SCORE_PSI, Severity, evaluate
from marketing_ml.monitoring.drift import column_drift, drift_frame
from marketing_ml.monitoring.performance import matured_rows_sql, realized_metrics
from marketing_ml.partitions import partition_dates
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.training.evaluation import oracle_horizon_probability
from marketing_ml.training.predictor import load_champion
from marketing_ml.training.tasks import OUTCOME_TASKS, SPLIT

MONITORING_SCHEMA = "monitoring"
WEBHOOK_ENV = "MARKETING_ML_ALERT_WEBHOOK"
REFERENCE_ROWS = 20_000


def _spec(name: str, description: str, deps) -> dict:
    return dict(
        name=name,
        group_name="monitoring",
        kinds={"python", "duckdb"},
        deps=list(deps),
        description=description,
        metadata={"schema": MONITORING_SCHEMA, "partition_expr": "as_of_date"},
        backfill_policy=dg.BackfillPolicy.single_run(),
    )


def _days(context: dg.AssetExecutionContext) -> list[dt.date]:
    first, last = partition_dates(context)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def reference_rows(warehouse: WarehouseResource) -> pd.DataFrame:
    """The conversion champion's training rows (a deterministic sample): the baseline drift compares to."""
    return warehouse.query(
        f"select * from training.training_set_conversion where {SPLIT} = 'train' order by hash(client_id, as_of_date) limit {REFERENCE_ROWS}"
    )


def build_monitoring_assets(partitions: dg.PartitionsDefinition) -> list:
    @dg.asset(
        partitions_def=partitions,
        check_specs=[dg.AssetCheckSpec("no_critical_feature_drift", asset="feature_drift",
                                       description=f"No model input has PSI >= {FEATURE_PSI.critical} against training.")],
        **_spec("feature_drift", "One row per model input feature per day: PSI (and KS for continuous "
                "columns) of the day's values against the conversion champion's training rows.",
                deps=[dg.AssetKey("client_features_daily"), dg.AssetKey("conversion_champion")]),
    )
    def feature_drift(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource):
        columns = list(load_champion("conversion", mlflow.tracking_uri).predictor.feature_columns)
        reference = reference_rows(warehouse)
        frames = []
        for day in _days(context):
            current = warehouse.query(
                f"select * from features.client_features_daily where as_of_date = ? order by hash(client_id) limit {REFERENCE_ROWS}", [day]
            )
            frames.append(drift_frame(column_drift(reference, current, columns)).assign(as_of_date=day))
        drift = pd.concat(frames, ignore_index=True)
        drift["severity"] = [int(FEATURE_PSI.severity(v)) for v in drift["psi"]]
        latest = drift[drift["as_of_date"] == drift["as_of_date"].max()]
        worst = latest.head(15)
        critical = latest[latest["severity"] >= Severity.CRITICAL]
        yield dg.Output(
            drift,
            metadata={
                "max_psi": float(latest["psi"].max()),
                "features_over_warning": int((latest["severity"] >= Severity.WARNING).sum()),
                "most drifted (latest day)": dg.MetadataValue.md(markdown_table(worst[["feature", "kind", "psi", "ks", "reference_mean", "current_mean"]])),
                "plot": dg.MetadataValue.md(_psi_plot(worst)),
            },
        )
        yield dg.AssetCheckResult(
            check_name="no_critical_feature_drift",
            passed=critical.empty,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"critical_features": ", ".join(critical["feature"]) or "none"},
        )

    @dg.asset(
        partitions_def=partitions,
        ins={"daily_predictions": dg.AssetIn()},
        **_spec("score_drift", "One row per score per day: PSI (and KS) of the day's scores against the "
                "champions' scores on their training rows.", deps=[dg.AssetKey("conversion_champion"), dg.AssetKey("churn_champion")]),
    )
    def score_drift(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource,
                    daily_predictions: pd.DataFrame) -> pd.DataFrame:
        reference = reference_rows(warehouse)
        baseline = pd.DataFrame(
            {f"p_{task}": load_champion(task, mlflow.tracking_uri).predictor.predict_proba(reference) for task in OUTCOME_TASKS}
        )
        frames = []
        for day, scores in daily_predictions.groupby("as_of_date"):
            drift = drift_frame(column_drift(baseline, scores, list(baseline.columns)))
            frames.append(drift.rename(columns={"feature": "score"}).assign(as_of_date=day))
        drift = pd.concat(frames, ignore_index=True)
        drift["severity"] = [int(SCORE_PSI.severity(v)) for v in drift["psi"]]
        context.add_output_metadata({"latest": dg.MetadataValue.md(markdown_table(drift[drift["as_of_date"] == drift["as_of_date"].max()]))})
        return drift

    @dg.asset(
        partitions_def=partitions,
        check_specs=[dg.AssetCheckSpec("no_critical_performance_decay", asset="realized_performance",
                                       description=f"Realised AUC stays above {AUC_RATIO.critical:.0%} of the AUC measured at training.")],
        **_spec("realized_performance", "One row per task per day: AUC, calibration and top-decile lift of the "
                "predictions made one horizon ago, against the outcomes that have matured since, beside the "
                "oracle's AUC on the same rows and the AUC the champion had at training.",
                deps=[dg.AssetKey("daily_predictions"), dg.AssetKey("raw_outcomes")]),
    )
    def realized_performance(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource):
        trained_auc = {task: _trained_auc(mlflow, task) for task in OUTCOME_TASKS}
        rows = []
        for day in _days(context):
            for name, task in OUTCOME_TASKS.items():
                horizon = task.default_horizon_days
                predicted = day - dt.timedelta(days=horizon)
                matured = warehouse.query(matured_rows_sql(name, task.outcome_type, task.hazard_column), [predicted, predicted, day])
                if matured.empty:
                    # a row that says so: "nothing matured yet" is a monitoring fact, not a missing table
                    context.log.info(f"{day} {name}: no predictions from {predicted} to evaluate yet")
                p_oracle = oracle_horizon_probability(matured["oracle_daily_hazard"].fillna(0), horizon)
                metrics = realized_metrics(matured["p_model"].to_numpy(), p_oracle, matured["label"].to_numpy())
                rows.append({"as_of_date": day, "task": name, "prediction_date": predicted,
                             **metrics, "trained_auc": trained_auc[name],
                             "auc_ratio": metrics["auc"] / trained_auc[name] if trained_auc[name] else float("nan")})
        performance = pd.DataFrame(rows, columns=["as_of_date", "task", "prediction_date", "rows", "positives", "observed_rate",
                                                  "mean_prediction", "auc", "calibration_error", "brier", "top_decile_lift",
                                                  "oracle_auc", "trained_auc", "auc_ratio"])
        decayed = performance[[AUC_RATIO.severity(v) >= Severity.CRITICAL for v in performance["auc_ratio"]]]
        yield dg.Output(
            performance,
            metadata={"realized": dg.MetadataValue.md(markdown_table(performance.tail(6)) if len(performance)
                                                     else "no matured predictions yet: predictions need one horizon to mature")},
        )
        yield dg.AssetCheckResult(
            check_name="no_critical_performance_decay",
            passed=decayed.empty,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"decayed": ", ".join(f"{r.task} {r.as_of_date}" for r in decayed.itertuples()) or "none"},
        )

    @dg.asset(
        partitions_def=partitions,
        ins={"feature_drift": dg.AssetIn(), "score_drift": dg.AssetIn(), "realized_performance": dg.AssetIn()},
        **_spec("alerts", "One row per threshold breach per day: what breached, by how much, and its severity "
                "(ordered: INFO < WARNING < CRITICAL).", deps=[]),
    )
    def alerts(context: dg.AssetExecutionContext, feature_drift: pd.DataFrame, score_drift: pd.DataFrame,
               realized_performance: pd.DataFrame) -> pd.DataFrame:
        table = alert_table(feature_drift, score_drift, realized_performance)
        worst = Severity(int(table["severity"].max())) if len(table) else Severity.OK
        sent = notify_webhook(table[table["severity"] >= Severity.CRITICAL], context.log)
        context.add_output_metadata(
            {
                "max_severity": worst.name,
                "critical": int((table["severity"] >= Severity.CRITICAL).sum()),
                "warnings": int((table["severity"] == Severity.WARNING).sum()),
                "webhook": sent,
                "alerts": dg.MetadataValue.md(markdown_table(table.head(20)) if len(table) else "no breaches"),
            }
        )
        return table

    return [feature_drift, score_drift, realized_performance, alerts]


def alert_table(feature_drift: pd.DataFrame, score_drift: pd.DataFrame, realized: pd.DataFrame) -> pd.DataFrame:
    """Every breach of the thresholds, one row each, most severe first."""
    found = []
    for row in feature_drift.itertuples():
        found.append((row.as_of_date, evaluate(f"feature:{row.feature}", FEATURE_PSI, row.psi)))
    for row in score_drift.itertuples():
        found.append((row.as_of_date, evaluate(f"score:{row.score}", SCORE_PSI, row.psi)))
    for row in realized.itertuples():
        found.append((row.as_of_date, evaluate(f"model:{row.task}", AUC_RATIO, row.auc_ratio)))
        found.append((row.as_of_date, evaluate(f"model:{row.task}", CALIBRATION_GAP, row.calibration_error)))
    rows = [
        {"as_of_date": day, "subject": a.subject, "metric": a.metric, "value": a.value, "severity": int(a.severity),
         "severity_name": a.severity.name, "message": a.message}
        for day, a in found if a is not None
    ]
    table = pd.DataFrame(rows, columns=["as_of_date", "subject", "metric", "value", "severity", "severity_name", "message"])
    return table.sort_values(["as_of_date", "severity", "value"], ascending=[True, False, False]).reset_index(drop=True)


def notify_webhook(critical: pd.DataFrame, log) -> str:
    """POST critical alerts as JSON to the configured webhook; a failing webhook is logged, never fatal."""
    url = os.environ.get(WEBHOOK_ENV)
    if not url:
        return "not configured"
    if critical.empty:
        return "nothing to send"
    body = json.dumps({"source": "marketing_ml", "alerts": json.loads(critical.to_json(orient="records", date_format="iso"))}).encode()
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return f"sent {len(critical)} alerts (HTTP {response.status})"
    except OSError as error:
        log.warning(f"alert webhook failed: {error}")
        return f"failed: {error}"


def _trained_auc(mlflow: MLflowResource, task: str) -> float:
    """The out-of-time test AUC the current champion was promoted with (logged with its training run)."""
    champion = load_champion(task, mlflow.tracking_uri)
    with mlflow.client() as client:
        return float(client.get_run(champion.run_id).data.metrics.get("auc", float("nan"))) if champion.run_id else float("nan")


def _psi_plot(worst: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(worst), 3) + 1))
    ax.barh(worst["feature"][::-1], worst["psi"][::-1], color="#4C72B0")
    for limit, colour in ((FEATURE_PSI.warning, "#DD8452"), (FEATURE_PSI.critical, "#C44E52")):
        ax.axvline(limit, color=colour, linestyle="--", linewidth=1)
    ax.set_xlabel("PSI vs training")
    fig.tight_layout()
    return figure_markdown(fig, "feature drift")

