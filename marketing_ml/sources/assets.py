"""The raw assets loaded from a provider's own files (MARKETING_ML_SOURCE=<folder>), or from the tables
its own ELT loaded into the warehouse (MARKETING_ML_SOURCE=warehouse), instead of the simulator: the same
asset keys, tables and daily partitions, so the dbt features read them unchanged.

Every load checks the files against the contract first (the blocking `data_contract` checks); a table
that breaks it is not written and nothing downstream runs. A partition holds the rows of its days by the
table's date column; loading a partition again replaces its rows with what the files hold now, none
included (the IO manager deletes the partition's rows before it writes, an empty frame too). Every raw
table exists after a load, without rows when the files have none (an optional table not provided, a day
without outcomes), so the staging views always have their sources.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd

from marketing_ml.metadata import preview
from marketing_ml.partitions import partition_dates
from marketing_ml.resources.warehouse import WarehouseResource, create_table_sql
from marketing_ml.sources.checks import contract_check_results, contract_check_spec, fail_on_violations
from marketing_ml.sources.contract import CONTRACT
from marketing_ml.settings import WarehouseSource
from marketing_ml.sources.validation import load_provider_source
from marketing_ml.sources.warehouse import sql_types, warehouse_frame

RAW_SCHEMA = "raw"
DAILY_TABLES = ("marketing_events", "campaign_touches", "interventions", "outcomes")


def _daily_spec(table: str, origin: str) -> dg.AssetSpec:
    schema = CONTRACT[table]
    return dg.AssetSpec(
        schema.metadata["asset"],
        group_name="raw",
        kinds={"python", "duckdb"},
        deps=["raw_clients"],
        description=f"{schema.description} Loaded from the provider's {origin}.",
        metadata={"schema": RAW_SCHEMA, "partition_expr": schema.metadata["date"]},
    ).with_io_manager_key("io_manager")


def build_source_assets(source: Path | WarehouseSource, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    origin = "warehouse tables" if isinstance(source, WarehouseSource) else "files"

    @dg.asset(
        name="raw_clients",
        group_name="raw",
        kinds={"python", "duckdb"},
        metadata={"schema": RAW_SCHEMA, "source": str(source)},
        check_specs=[contract_check_spec("clients")],
        description=f"{CONTRACT['clients'].description} Loaded from the provider's {origin}.",
    )
    def raw_clients(warehouse: WarehouseResource):
        loaded = load_provider_source(source, warehouse, tables=("clients",))
        reports = loaded.report.tables
        if not loaded.report.ok:
            yield from contract_check_results(reports)
            fail_on_violations(reports)  # before the output: the warehouse keeps what it had
        clients = warehouse_frame("clients", loaded.tables["clients"], loaded.tables["clients"]["client_id"].dtype)
        yield dg.Output(clients, metadata={"preview": preview(clients), "rows": len(clients)})
        yield from contract_check_results(reports)

    @dg.multi_asset(
        name="provider_daily_activity",
        specs=[_daily_spec(t, origin) for t in DAILY_TABLES],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
        check_specs=[contract_check_spec(t) for t in DAILY_TABLES],
    )
    def provider_daily_activity(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        first, last = partition_dates(context)
        loaded = load_provider_source(source, warehouse, tables=DAILY_TABLES)
        reports = loaded.report.tables
        if not loaded.report.ok:
            yield from contract_check_results(reports)
            fail_on_violations(reports)  # before any output: the warehouse keeps what it had
        client_ids = loaded.tables["clients"]["client_id"]
        empty = []
        for table in DAILY_TABLES:
            frame = loaded.tables.get(table)
            rows = days_of(frame, CONTRACT[table].metadata["date"], first, last) if frame is not None else None
            output = warehouse_frame(table, rows if rows is not None else pd.DataFrame(), client_ids.dtype)
            context.log.info(f"{table}: {len(output):,} rows of {first}..{last}")
            if output.empty:  # the IO manager writes no empty frame
                empty.append((table, output))
            yield dg.Output(output, output_name=CONTRACT[table].metadata["asset"],
                            metadata={"preview": preview(output), "rows": len(output)})
        warehouse.execute(f"create schema if not exists {RAW_SCHEMA}")
        for table, output in empty:
            warehouse.execute(create_table_sql(f"{RAW_SCHEMA}.{CONTRACT[table].metadata['asset']}", sql_types(output)))
        yield from contract_check_results(reports)

    return [raw_clients, provider_daily_activity]


def days_of(frame: pd.DataFrame, date_column: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The rows dated `first`..`last` (inclusive): one partition range."""
    dates = frame[date_column]
    return frame[(dates >= pd.Timestamp(first)) & (dates <= pd.Timestamp(last))]
