"""The platform `marketing-ml run` built, opened for reading from a notebook (notebooks/01-04).

A notebook runs in `notebooks/`, so without `MARKETING_ML_HOME` it looks for the data directory the CLI
uses by default, `.marketing_ml` at the repository root, rather than one beside the notebook.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import dagster as dg

from marketing_ml.definitions import build_definitions
from marketing_ml.resources import resolved_warehouse
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.settings import ENV_HOME, Settings, load_settings
from marketing_ml.wiring import hide_dagster_beta_notices


class LocalPlatform(NamedTuple):
    settings: Settings  # the world pinned in the data directory (clients, start date, seed)
    defs: dg.Definitions  # the same Definitions `marketing-ml ui` (dagster dev) loads
    instance: dg.DagsterInstance  # the CLI's runs, materializations and check evaluations
    warehouse: WarehouseResource  # SQL on the warehouse; .read() never takes the write lock


def open_local_platform() -> LocalPlatform:
    """Settings, Definitions, Dagster instance and warehouse of the data directory, or a clear error
    saying what to run when nothing has been built there yet."""
    hide_dagster_beta_notices()  # Dagster's beta notices would clutter output cells
    home = Path(os.environ.get(ENV_HOME) or Path.cwd().parent / ".marketing_ml").resolve()
    # checked before load_settings, which would pin a new world in an empty directory
    if not (home / "dagster_home").is_dir():
        raise FileNotFoundError(f"Nothing built in {home}: run `marketing-ml run` first, with {ENV_HOME}={home}.")
    os.environ[ENV_HOME] = str(home)  # load_settings, and any process the notebook starts, read it
    settings = load_settings()
    return LocalPlatform(settings, build_definitions(settings), dg.DagsterInstance.from_config(str(settings.dagster_home)),
                         resolved_warehouse(settings))
