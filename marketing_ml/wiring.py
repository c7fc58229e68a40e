"""What every domain applies to its assets before handing them to the Definitions: links from each asset to
its source code in the UI, and the storage kind of the warehouse in use; and the one filter for Dagster's
beta notices, applied where a process starts."""

from __future__ import annotations

import warnings
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


def hide_dagster_beta_notices() -> None:
    """Ignore Dagster's `BetaWarning` and `PreviewWarning`: they say an API we chose (`backfill_policy`, code
    references) may change in a minor release, which nobody running the pipeline can act on. Called once where
    a process starts (the CLI, the code location `dagster dev` loads); every other warning still shows."""
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
