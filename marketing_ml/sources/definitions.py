"""The sources domain: the raw assets loaded from the provider's own files or warehouse tables, when the
settings name them (MARKETING_ML_SOURCE) instead of the simulator."""

import dagster as dg

from marketing_ml.settings import Settings
from marketing_ml.sources.assets import build_source_assets
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    if settings.source is None:
        raise ValueError("the sources domain loads the provider's data: settings.source names none")
    return dg.Definitions(assets=domain_assets(build_source_assets(settings.source, partitions), settings.warehouse))
