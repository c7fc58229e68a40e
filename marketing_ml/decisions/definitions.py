"""The decisions domain: the advisor queue, retention list and campaign targets, and their business impact
(from the uplift scores the scoring domain computes with the predictions)."""

import dagster as dg

from marketing_ml.decisions.assets import build_decision_assets
from marketing_ml.settings import Settings
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    assets = build_decision_assets(partitions, settings.ground_truth)
    return dg.Definitions(assets=domain_assets(assets, settings.warehouse))
