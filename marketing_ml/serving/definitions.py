"""The serving domain: the online feature table the real-time API loads (the API itself is `server`)."""

import dagster as dg

from marketing_ml.serving.assets import online_client_features
from marketing_ml.settings import Settings
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(assets=domain_assets([online_client_features], settings.warehouse))
