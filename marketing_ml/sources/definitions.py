"""The sources domain: the raw assets loaded from the provider's own files, when the settings name a
folder (MARKETING_ML_SOURCE) instead of the simulator."""

import dagster as dg

from marketing_ml.settings import Settings
from marketing_ml.sources.assets import build_file_source_assets
from marketing_ml.wiring import domain_assets


def definitions(settings: Settings, partitions: dg.PartitionsDefinition) -> dg.Definitions:
    if settings.source is None:
        raise ValueError("the sources domain loads files: settings.source names no folder")
    return dg.Definitions(assets=domain_assets(build_file_source_assets(settings.source, partitions), settings.warehouse))
