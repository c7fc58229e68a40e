"""The uplift domain: the randomised contact log as a training set, the meta-learners, their champions."""

import dagster as dg

from marketing_ml.settings import Settings
from marketing_ml.uplift.assets import uplift_assets
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(assets=domain_assets(uplift_assets(settings.ground_truth), settings.warehouse))
