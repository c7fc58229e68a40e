"""What every domain applies to its assets before handing them to the Definitions: links from each asset to
its source code in the UI, and the storage kind of the warehouse in use."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg


def domain_assets(assets: Sequence[dg.AssetsDefinition], warehouse: str) -> list[dg.AssetsDefinition]:
    """`assets` with source-code references and, off the embedded default, the warehouse as storage kind
    (assets declare `duckdb`; on Snowflake the UI shows `snowflake` instead). dbt assets are not passed
    here: the dbt translator links them to their SQL and they carry their adapter's kind."""
    referenced = list(dg.with_source_code_references(assets))
    if warehouse == "duckdb":
        return referenced

    def swap(spec: dg.AssetSpec) -> dg.AssetSpec:
        if "duckdb" not in spec.kinds:
            return spec
        return spec.replace_attributes(kinds=(set(spec.kinds) - {"duckdb"}) | {warehouse})

    return list(dg.map_asset_specs(swap, referenced))
