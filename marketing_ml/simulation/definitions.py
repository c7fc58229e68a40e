"""The simulation domain: raw data and ground truth from the simulated 401(k) provider."""

import dagster as dg

from marketing_ml.settings import Settings
from marketing_ml.simulation.assets import build_simulated_daily_activity, raw_clients, true_client_traits
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    assets = [raw_clients, true_client_traits, build_simulated_daily_activity(partitions)]
    return dg.Definitions(assets=domain_assets(assets, settings.warehouse))
