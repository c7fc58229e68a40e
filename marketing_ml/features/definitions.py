"""The features domain: the dbt project's assets and tests, data-quality checks and the feature catalog."""

from typing import Any

import dagster as dg
from dagster_dbt import DbtProject

from marketing_ml.features.assets import build_feature_assets
from marketing_ml.settings import Settings


def definitions(settings: Settings, partitions: dg.PartitionsDefinition, dbt_project: DbtProject,
                dbt_manifest: dict[str, Any]) -> dg.Definitions:
    """Built on the dbt project the Definitions prepared once for the warehouse in `settings`; its assets
    carry the dbt adapter's kind, so no storage kind is swapped here."""
    assets, checks = build_feature_assets(partitions, dbt_project, dbt_manifest)
    return dg.Definitions(assets=assets, asset_checks=checks)
