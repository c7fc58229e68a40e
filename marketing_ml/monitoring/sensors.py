"""Automatic retraining: a critical alert, or a champion older than its allowed age, requests a run of
the training and registry assets. The new model still becomes champion only through the gate checks."""

import datetime as dt

import dagster as dg
from mlflow.exceptions import MlflowException

from marketing_ml.monitoring.alerts import Severity
from marketing_ml.resources.mlflow_tracking import MLflowResource

RETRAIN_JOB = "retrain_job"
ALERTS = dg.AssetKey("alerts")


def retrain_job():
    return dg.define_asset_job(
        RETRAIN_JOB,
        selection=dg.AssetSelection.groups("training", "registry"),
        description="Rebuild the training sets, retrain every model and run the champion gate.",
    )


def retraining_reason(alerts_metadata: dict | None, champion_created: dt.datetime | None, now: dt.datetime,
                      max_age_days: int) -> tuple[str, str] | None:
    """(run key, reason) when retraining is due, else None. Run keys make each trigger fire once."""
    if alerts_metadata:
        severity = alerts_metadata.get("max_severity")
        if severity is not None and Severity[str(severity)] >= Severity.CRITICAL:
            partition = alerts_metadata.get("partition", "latest")
            return f"critical-alert-{partition}", f"critical alert on {partition}"
    if champion_created is not None and now - champion_created > dt.timedelta(days=max_age_days):
        return f"champion-age-{now.date().isoformat()}", f"champion older than {max_age_days} days"
    return None


def build_retraining_sensor(max_champion_age_days: int = 30) -> dg.SensorDefinition:
    @dg.sensor(
        name="retraining_sensor",
        job_name=RETRAIN_JOB,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Retrains on a critical alert or when the conversion champion is older than {max_champion_age_days} days.",
    )
    def retraining_sensor(context: dg.SensorEvaluationContext, mlflow: MLflowResource):
        event = context.instance.get_latest_materialization_event(ALERTS)
        metadata = None
        if event and event.asset_materialization:
            metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
            metadata["partition"] = event.asset_materialization.partition
        with mlflow.client() as client:
            try:
                version = client.get_model_version_by_alias("conversion", "champion")
                created = dt.datetime.fromtimestamp(version.creation_timestamp / 1000)
            except MlflowException:  # no champion yet: nothing to age; the first training is the models step's job
                created = None
        due = retraining_reason(metadata, created, dt.datetime.now(), max_champion_age_days)
        if due is None:
            return dg.SkipReason("no critical alert and the champion is young enough")
        run_key, reason = due
        return dg.RunRequest(run_key=run_key, tags={"marketing_ml/retrain_reason": reason})

    return retraining_sensor
