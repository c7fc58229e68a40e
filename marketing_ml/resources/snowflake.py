"""Snowflake as the production backend, configured from environment variables only.

Credentials are passed to resources as `dg.EnvVar`s: Dagster resolves them when a run starts and never
shows their values in the UI, in run config or in metadata. The variables are checked up front, so a
missing one is one clear error naming it instead of a connector stack trace mid-run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd
from dagster_snowflake import SnowflakeResource
from dagster_snowflake_pandas import SnowflakePandasIOManager

from marketing_ml.resources.warehouse import WarehouseResource, create_table_sql
from marketing_ml.settings import SettingsError

# connection field -> environment variable
REQUIRED_VARIABLES = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
    "role": "SNOWFLAKE_ROLE",
}
PASSWORD_VARIABLE = "SNOWFLAKE_PASSWORD"
KEY_PAIR_VARIABLES = {
    "private_key_path": "SNOWFLAKE_PRIVATE_KEY_PATH",
    "private_key_password": "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
}


def connection_fields(env: Mapping[str, str]) -> dict[str, Any]:
    """Snowflake connection settings as EnvVars, after checking every needed variable is set."""
    missing = [var for var in REQUIRED_VARIABLES.values() if not env.get(var)]
    has_password = bool(env.get(PASSWORD_VARIABLE))
    has_key = bool(env.get(KEY_PAIR_VARIABLES["private_key_path"]))
    if not (has_password or has_key):
        missing.append(f"{PASSWORD_VARIABLE} (or {KEY_PAIR_VARIABLES['private_key_path']} for key-pair auth)")
    if missing:
        raise SettingsError(
            "MARKETING_ML_WAREHOUSE=snowflake needs these environment variables, which are not set: "
            + ", ".join(missing)
            + ". See README, 'Run on Snowflake'."
        )
    fields: dict[str, Any] = {name: dg.EnvVar(var) for name, var in REQUIRED_VARIABLES.items()}
    if has_key:
        fields["private_key_path"] = dg.EnvVar(KEY_PAIR_VARIABLES["private_key_path"])
        if env.get(KEY_PAIR_VARIABLES["private_key_password"]):
            fields["private_key_password"] = dg.EnvVar(KEY_PAIR_VARIABLES["private_key_password"])
    else:
        fields["password"] = dg.EnvVar(PASSWORD_VARIABLE)
    return fields


class SnowflakeWarehouse(WarehouseResource):
    """SQL access to Snowflake, with the same interface as the DuckDB warehouse.

    Parameters use `?` placeholders on both backends (the connection is opened with paramstyle qmark), and
    column names come back lower-case as DuckDB returns them, so callers never care which backend ran.
    """

    snowflake: SnowflakeResource

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        with self.snowflake.get_connection() as conn:
            cursor = conn.cursor()
            cursor.execute(sql, params or None)
            frame = cursor.fetch_pandas_all()
        return frame.rename(columns=str.lower)

    def execute(self, sql: str, params: list[Any] | None = None) -> None:
        with self.snowflake.get_connection() as conn:
            conn.cursor().execute(sql, params or None)

    def execute_atomically(self, statements: Sequence[tuple[str, list[Any]]]) -> None:
        with self.snowflake.get_connection() as conn:
            cursor = conn.cursor()
            cursor.execute("begin")
            try:
                for sql, params in statements:
                    cursor.execute(sql, params or None)
            except Exception:
                cursor.execute("rollback")
                raise
            cursor.execute("commit")

    def append(self, frames: dict[str, pd.DataFrame],
               declared: Mapping[str, Mapping[str, str]] | None = None) -> None:
        # write_pandas loads through a stage, one table at a time: not one transaction, so the
        # streaming bookkeeping (written last) is what makes a retried batch skip what already landed
        from snowflake.connector.pandas_tools import write_pandas

        declared = declared or {}
        with self.snowflake.get_connection() as conn:
            for name, frame in frames.items():
                schema, table = name.upper().split(".")
                conn.cursor().execute(f"create schema if not exists {schema}")
                if name in declared:
                    conn.cursor().execute(create_table_sql(name.upper(), declared[name]))
                write_pandas(
                    conn, frame.rename(columns=str.upper), table, schema=schema,
                    auto_create_table=True, quote_identifiers=False, use_logical_type=True,
                )

    def table_exists(self, schema: str, table: str) -> bool:
        found = self.query(
            "select count(*) as n from information_schema.tables where table_schema = ? and table_name = ?",
            [schema.upper(), table.upper()],
        )
        return bool(found["n"].iloc[0])


def snowflake_resources(env: Mapping[str, str]) -> dict[str, Any]:
    fields = connection_fields(env)
    return {
        "io_manager": SnowflakePandasIOManager(**fields),
        "warehouse": SnowflakeWarehouse(snowflake=SnowflakeResource(**fields, paramstyle="qmark")),
    }
