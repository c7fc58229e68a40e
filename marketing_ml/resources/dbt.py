"""dbt as a Dagster resource, bound to the data directory's warehouse.

The dbt profile (dbt_project/profiles.yml) reads its connection settings from environment variables. One
Python process can hold several data directories (the tests do), so the variables are not exported
process-wide: `WarehouseDbtCliResource` sets them only while it starts a dbt command, for that command.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliInvocation, DbtCliResource
from pydantic import Field

ENV_DUCKDB_PATH = "MARKETING_ML_DUCKDB_PATH"
ENV_DUCKDB_MEMORY_LIMIT = "MARKETING_ML_DUCKDB_MEMORY_LIMIT"


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore the previous values."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class WarehouseDbtCliResource(DbtCliResource):
    """`DbtCliResource` whose dbt commands see `profile_env` (e.g. the DuckDB file of this data directory)
    and keep their artifacts (manifest, run results, logs of each invocation) in `artifacts_dir`, beside
    the data they describe rather than in the source tree."""

    profile_env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables the dbt profile reads, for this warehouse."
    )
    artifacts_dir: str | None = Field(
        default=None, description="Where each dbt invocation writes its target folder (default: the project's)."
    )

    def cli(self, args: Sequence[str], *, target_path: Path | None = None, **kwargs: Any) -> DbtCliInvocation:
        if target_path is None and self.artifacts_dir:
            context = kwargs.get("context")
            run = f"{context.op_execution_context.op.name}-{context.run.run_id[:7]}-" if context else ""
            target_path = Path(self.artifacts_dir) / f"{run}{uuid.uuid4().hex[:7]}"
        # The dbt process (and dagster-dbt's in-process adapter) is created inside `cli`, so the
        # variables only need to be present while it runs.
        with environment(self.profile_env):
            return super().cli(args, target_path=target_path, **kwargs)


def dbt_profile_env(warehouse: str, duckdb_path: Path) -> dict[str, str]:
    """What the profile's target needs from this process: the DuckDB file of the data directory, and the
    memory DuckDB may use for a build unless the user set it. The Snowflake target reads its credentials
    from the environment the user sets."""
    if warehouse != "duckdb":
        return {}
    env = {ENV_DUCKDB_PATH: str(duckdb_path)}
    if ENV_DUCKDB_MEMORY_LIMIT not in os.environ:
        env[ENV_DUCKDB_MEMORY_LIMIT] = duckdb_memory_limit()
    return env


def duckdb_memory_limit(machine_bytes: int | None = None) -> str:
    """Half the machine's memory, at least 6 GB. The year-long features backfill at the default scale
    peaks near 6 GB, and DuckDB cannot spill everything: with several join hash tables spilling in one
    pipeline it fails with "failed to pin block" instead (a fixed 6 GB limit failed 1 of 4 backfills at
    50,000 clients). Half leaves the rest of the machine to the Python process and the OS."""
    if machine_bytes is None:
        machine_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{max(6, machine_bytes // 2**31)}GB"


def dbt_executable() -> str:
    """The `dbt` beside this interpreter, so a venv works without being activated."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else "dbt"
