"""Monitoring as daily assets: drift, realised performance and alerts, with checks that turn the UI red.

- `feature_drift`: PSI (and KS for continuous columns) of the day's model inputs against the conversion
  champion's training rows, per feature.
- `score_drift`: the same for the day's scores against the champions' scores on those training rows.
- `realized_performance`: predictions of H days ago (H = each task's horizon) against matured outcomes.
- `alerts`: every threshold breach with an ordered severity; critical ones fail asset checks, go to the
  optional webhook (`MARKETING_ML_ALERT_WEBHOOK`) and make `retraining_sensor` retrain.

Wiring only: the measurements live in `drift`, `performance` and `alerts`.
"""

import dagster as dg
import pandas as pd

from marketing_ml.features.catalog import FEATURE_MODEL
from marketing_ml.metadata import markdown_table
from marketing_ml.monitoring.alerts import AUC_RATIO, FEATURE_PSI, SCORE_PSI, Severity, alert_table
from marketing_ml.monitoring.drift import (
    DriftReference,
    drift_frame,
    drift_samples,
    feature_drift_of_day,
    psi_plot,
    reference_rows,
)
from marketing_ml.monitoring.performance import performance_frame, realized_performance_of_day, trained_auc
from marketing_ml.partitions import by_day, daily_asset, partition_days
from marketing_ml.registry.predictor import load_champion
from marketing_ml.registry.tasks import OUTCOME_TASKS, champion_key
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.resources.webhook import AlertWebhook
from marketing_ml.settings import NO_GROUND_TRUTH

GROUP = "monitoring"
MONITORING_SCHEMA = "monitoring"


def build_monitoring_assets(partitions: dg.PartitionsDefinition, ground_truth: bool) -> list[dg.AssetsDefinition]:
    """The monitoring assets; `ground_truth` (`Settings.ground_truth`) says whether the oracle's realised AUC
    can be computed."""
    beside_oracle = "beside the oracle's AUC on the same rows and " if ground_truth else "beside "
    omitted = {} if ground_truth else {"oracle_auc": NO_GROUND_TRUTH}

    @dg.asset(
        check_specs=[dg.AssetCheckSpec("no_critical_feature_drift", asset="feature_drift",
                                       description=f"No model input has PSI >= {FEATURE_PSI.critical} against training.")],
        **daily_asset("feature_drift", GROUP, MONITORING_SCHEMA,
                      "One row per model input feature per day: PSI (and KS for continuous columns) of the day's "
                      "values against the conversion champion's training rows.",
                      partitions, deps=[FEATURE_MODEL, champion_key("conversion")]),
    )
    def feature_drift(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource):
        columns = list(load_champion("conversion", mlflow.tracking_uri).predictor.feature_columns)
        reference = DriftReference(reference_rows(warehouse), columns)
        days, run_days = [], partition_days(context)
        sample_of = by_day(drift_samples(warehouse, columns, run_days[0], run_days[-1]))
        for day in run_days:
            days.append(feature_drift_of_day(reference, sample_of(day), day))
            context.log.info(f"{day} ({len(days)}/{len(run_days)}): drift of {len(columns)} features")
        drift = pd.concat(days, ignore_index=True)
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
                "plot": dg.MetadataValue.md(psi_plot(worst)),
            },
        )
        yield dg.AssetCheckResult(
            check_name="no_critical_feature_drift",
            passed=critical.empty,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"critical_features": ", ".join(critical["feature"]) or "none"},
        )

    @dg.asset(
        ins={"daily_predictions": dg.AssetIn()},
        **daily_asset("score_drift", GROUP, MONITORING_SCHEMA,
                      "One row per score per day: PSI (and KS) of the day's scores against the champions' scores on "
                      "their training rows.", partitions, deps=[champion_key(t) for t in OUTCOME_TASKS]),
    )
    def score_drift(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource,
                    daily_predictions: pd.DataFrame) -> pd.DataFrame:
        reference = reference_rows(warehouse)
        baseline = pd.DataFrame(
            {f"p_{task}": load_champion(task, mlflow.tracking_uri).predictor.predict_proba(reference) for task in OUTCOME_TASKS}
        )
        baseline = DriftReference(baseline, list(baseline.columns))
        frames = [
            drift_frame(baseline.compare(scores)).rename(columns={"feature": "score"}).assign(as_of_date=day)
            for day, scores in daily_predictions.groupby("as_of_date")
        ]
        drift = pd.concat(frames, ignore_index=True)
        drift["severity"] = [int(SCORE_PSI.severity(v)) for v in drift["psi"]]
        context.add_output_metadata({"latest": dg.MetadataValue.md(markdown_table(drift[drift["as_of_date"] == drift["as_of_date"].max()]))})
        return drift

    @dg.asset(
        check_specs=[dg.AssetCheckSpec("no_critical_performance_decay", asset="realized_performance",
                                       description=f"Realised AUC stays above {AUC_RATIO.critical:.0%} of the AUC measured at training.")],
        **daily_asset("realized_performance", GROUP, MONITORING_SCHEMA,
                      "One row per task per day: AUC, calibration and top-decile lift of the predictions made one "
                      f"horizon ago, against the outcomes that have matured since, {beside_oracle}"
                      "the AUC the champion had at training.",
                      partitions, deps=["daily_predictions", "raw_outcomes"]),
    )
    def realized_performance(context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MLflowResource):
        at_training = {name: trained_auc(mlflow, name) for name in OUTCOME_TASKS}
        with warehouse.session():
            rows = [realized_performance_of_day(warehouse, day, task, at_training[name], ground_truth=ground_truth)
                    for day in partition_days(context) for name, task in OUTCOME_TASKS.items()]
        # "nothing matured yet" is a monitoring fact, not a missing table: one line per task, not per day
        for name in OUTCOME_TASKS:
            unmatured = [row for row in rows if row["task"] == name and not row["rows"]]
            if unmatured:
                context.log.info(f"{name}: no predictions to evaluate yet on {len(unmatured)} of the run's days "
                                 f"({unmatured[0]['as_of_date']}..{unmatured[-1]['as_of_date']}: predictions made "
                                 f"{unmatured[0]['prediction_date']}..{unmatured[-1]['prediction_date']} have not matured)")
        performance = performance_frame(rows, ground_truth=ground_truth)
        decayed = performance[[AUC_RATIO.severity(v) >= Severity.CRITICAL for v in performance["auc_ratio"]]]
        yield dg.Output(
            performance,
            metadata={"realized": dg.MetadataValue.md(markdown_table(performance.tail(6)) if len(performance)
                                                     else "no matured predictions yet: predictions need one horizon to mature"),
                      **omitted},
        )
        yield dg.AssetCheckResult(
            check_name="no_critical_performance_decay",
            passed=decayed.empty,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"decayed": ", ".join(f"{r.task} {r.as_of_date}" for r in decayed.itertuples()) or "none"},
        )

    @dg.asset(
        ins={"feature_drift": dg.AssetIn(), "score_drift": dg.AssetIn(), "realized_performance": dg.AssetIn()},
        **daily_asset("alerts", GROUP, MONITORING_SCHEMA,
                      "One row per threshold breach per day: what breached, by how much, and its severity "
                      "(ordered: INFO < WARNING < CRITICAL).", partitions),
    )
    def alerts(context: dg.AssetExecutionContext, alert_webhook: AlertWebhook, feature_drift: pd.DataFrame,
               score_drift: pd.DataFrame, realized_performance: pd.DataFrame) -> pd.DataFrame:
        table = alert_table(feature_drift, score_drift, realized_performance)
        worst = Severity(int(table["severity"].max())) if len(table) else Severity.OK
        sent = alert_webhook.post(table[table["severity"] >= Severity.CRITICAL], context.log.warning)
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
