"""The monitoring domain: drift, realised performance and alerts, and the retraining they trigger."""

import dagster as dg

from marketing_ml.monitoring.assets import build_monitoring_assets
from marketing_ml.monitoring.sensors import build_retraining_sensor, retrain_job
from marketing_ml.settings import Settings
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(
        assets=domain_assets(build_monitoring_assets(partitions, settings.ground_truth), settings.warehouse),
        jobs=[retrain_job()],
        sensors=[build_retraining_sensor()],
    )
