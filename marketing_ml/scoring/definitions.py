"""The scoring domain: daily predictions, their explanations, the uplift scores and the client segments."""

import dagster as dg

from marketing_ml.scoring.assets import build_scoring_assets
from marketing_ml.settings import Settings
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(assets=domain_assets(build_scoring_assets(partitions), settings.warehouse))
