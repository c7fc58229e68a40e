"""How dbt nodes become Dagster assets: keys, groups and the metadata a Python asset needs to read them."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject

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

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str,
                       project: DbtProject | None) -> dg.AssetSpec:
        # A model that reads raw tables through the staging views also depends on those raw assets
        # directly. Dagster orders a run's steps by the deps among the assets it builds, and the daily job
        # holds no view (they are not daily assets): without these edges a catch-up run over a range built
        # the features before the range's raw days, so its later as-of dates missed the earlier days.
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] != "model" or _is_pass_through(props):
            return spec
        declared = {dep.asset_key for dep in spec.deps}
        raw = {self.get_asset_spec(manifest, source, project).key
               for source in _sources_through_views(manifest, props)}
        return spec.merge_attributes(deps=sorted(raw - declared, key=lambda key: key.to_user_string()))

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


def _is_pass_through(props: Mapping[str, Any]) -> bool:
    """A view or an ephemeral model: it holds no rows, so its readers read its parents when they run."""
    return props.get("config", {}).get("materialized") in ("view", "ephemeral")


def _sources_through_views(manifest: Mapping[str, Any], props: Mapping[str, Any]) -> set[str]:
    """The sources a model reads through views and ephemeral models (not through tables)."""
    sources: set[str] = set()
    pending = list(props.get("depends_on", {}).get("nodes", []))
    seen: set[str] = set()
    while pending:
        unique_id = pending.pop()
        if unique_id in seen:
            continue
        seen.add(unique_id)
        if unique_id in manifest.get("sources", {}):
            sources.add(unique_id)
            continue
        parent = manifest.get("nodes", {}).get(unique_id)
        if parent is not None and _is_pass_through(parent):
            pending.extend(parent.get("depends_on", {}).get("nodes", []))
    return sources
