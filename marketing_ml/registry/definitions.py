"""The registry domain: `{task}_champion` and its gate checks."""

import dagster as dg

from marketing_ml.registry.assets import champion_assets
from marketing_ml.settings import Settings
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(assets=domain_assets(champion_assets(settings.ground_truth), settings.warehouse))
