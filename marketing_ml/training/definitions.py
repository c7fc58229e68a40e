"""The training domain: training sets and the twelve model assets."""

import dagster as dg

from marketing_ml.settings import Settings
from marketing_ml.training.assets import training_assets
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(assets=domain_assets(training_assets(settings.ground_truth), settings.warehouse))
