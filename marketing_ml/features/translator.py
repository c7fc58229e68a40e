"""How dbt nodes become Dagster assets: keys, groups and the metadata a Python asset needs to read them."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator

from marketing_ml.features.catalog import FEATURE_MODEL

GROUP = "features"


class FeatureDbtTranslator(DagsterDbtTranslator):
    """dbt models become assets named like the model (`client_features_daily`, not
    `features/client_features_daily`) in the `features` group; sources keep the keys of the raw assets
    they read (`meta.dagster.asset_key`), so dbt and the simulator form one lineage graph."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return GROUP

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        # where the IO manager finds a model, so a Python asset can also load it (a partition of it) as a
        # DataFrame through an AssetIn, like the raw assets
        metadata = dict(super().get_metadata(dbt_resource_props))
        if dbt_resource_props["resource_type"] == "model":
            metadata["schema"] = dbt_resource_props["schema"]
            if dbt_resource_props["name"] == FEATURE_MODEL:
                metadata["partition_expr"] = "as_of_date"
        return metadata
