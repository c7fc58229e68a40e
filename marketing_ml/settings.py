"""Where the platform keeps its state and which world it simulates: read from the environment, once.

All local state lives under one data directory (default `./.marketing_ml`, or `MARKETING_ML_HOME`):

    warehouse.duckdb   the DuckDB warehouse (raw, features, scores, monitoring)
    dagster_home/      Dagster's local instance (runs, materialisations, schedules)
    mlflow.db          MLflow tracking and registry store; mlartifacts/ holds the model files
    landing/           the streaming landing zone ("stage"); archive/ and dead_letter/ inside it
    simulation.json    the simulated world this directory was initialised with

The simulated world (every `SimulationConfig` setting) is pinned in `simulation.json` the first time a data
directory is used, so every later process (CLI, `dagster dev`, the schedule) builds the same data for a
given date. Environment variables only choose it for a new directory; asking an initialised directory
for a different world is an error that says what to do.

`MARKETING_ML_SOURCE` chooses where the raw tables come from: `simulator` (the default), a folder of the
provider's own files, or `warehouse`: tables the provider's own ELT loaded into the warehouse, named by the
mapping file `MARKETING_ML_SOURCE_MAPPING`; either is checked against the data contract
(`marketing_ml/sources/`). Only the simulator
knows the truth (true hazards, effects, best actions): `Settings.ground_truth` is the one place that says
whether figures that need it can be computed, and `NO_GROUND_TRUTH` is the reason shown where they are not.

`MLFLOW_TRACKING_URI` names a tracking server or database for runs, models and the registry (training,
registry, scoring, the API); without it they live in the data directory's SQLite store.
"""

from __future__ import annotations

import datetime as dt
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from marketing_ml.simulation.config import RegimeShift, SimulationConfig

ENV_HOME = "MARKETING_ML_HOME"
ENV_WAREHOUSE = "MARKETING_ML_WAREHOUSE"
ENV_CLIENTS = "MARKETING_ML_CLIENTS"
ENV_HISTORY_DAYS = "MARKETING_ML_HISTORY_DAYS"
ENV_START_DATE = "MARKETING_ML_START_DATE"
ENV_SEED = "MARKETING_ML_SEED"
ENV_REGIME_SHIFT = "MARKETING_ML_REGIME_SHIFT"
ENV_EFFECT_CORRELATION = "MARKETING_ML_EFFECT_CORRELATION"
ENV_SOURCE = "MARKETING_ML_SOURCE"
ENV_SOURCE_MAPPING = "MARKETING_ML_SOURCE_MAPPING"
WAREHOUSE_SOURCE = "warehouse"
ENV_MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
SIMULATOR_SOURCE = "simulator"
NO_GROUND_TRUTH = ("omitted: the raw data comes from the provider's files, and only the simulator knows the "
                   "truth (true hazards, effects and best actions)")

DEFAULT_CLIENTS = 50_000
DEFAULT_HISTORY_DAYS = 365
DEFAULT_SEED = 42
WAREHOUSES = ("duckdb", "snowflake")


PIN_FILE = "simulation.json"


def write_pin(data_dir: Path, config: SimulationConfig) -> None:
    """Pin the simulated world of a data directory: every setting that changes what the simulator draws."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pinned = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    shift = pinned.pop("regime_shift")
    pinned["start_date"] = config.start_date.isoformat()
    pinned["regime_shift_start"] = shift.start.isoformat() if shift else None
    (data_dir / PIN_FILE).write_text(json.dumps(pinned, indent=2) + "\n")


def read_pin(pin: Path) -> SimulationConfig:
    """The pinned world; settings a pin predates (it was written by an older version) take their defaults."""
    pinned = json.loads(pin.read_text())
    shift = pinned.pop("regime_shift_start", None)
    known = {f.name for f in dataclasses.fields(SimulationConfig)} - {"regime_shift", "start_date"}
    return SimulationConfig(
        start_date=dt.date.fromisoformat(pinned["start_date"]),
        regime_shift=RegimeShift(start=dt.date.fromisoformat(shift)) if shift else None,
        **{k: v for k, v in pinned.items() if k in known},
    )


class SettingsError(ValueError):
    """A configuration problem the user must fix; the message says how."""


@dataclass(frozen=True)
class IngestionPolicy:
    """What streaming ingestion accepts, and how it treats files whose ingestion run fails."""

    # events dated more than this many days before the warehouse's newest daily partition are late: the
    # daily features of their day are already built, so they are quarantined instead of loaded
    max_days_late: int = 7
    # the stream delivers a simulated day faster than real time, so "later today" is normal, next week is not
    max_hours_early: float = 48.0
    # a larger file is quarantined whole without being read (one line of a JSON Lines file is ~200 bytes)
    max_file_bytes: int = 16 * 2**20
    # a file whose ingestion runs failed this many times moves to the dead-letter folder with the error
    max_attempts: int = 3
    # the wait after the first failed run; it doubles after each further failure
    retry_backoff_seconds: float = 30.0


@dataclass(frozen=True)
class WarehouseSource:
    """Raw tables already in the warehouse, loaded by the provider's own ELT: the mapping file names each
    contract table's warehouse table (`table: schema.name`), its columns and its vocabulary."""

    mapping: Path

    def __str__(self) -> str:
        return f"warehouse tables named by {self.mapping}"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    warehouse: str
    simulation: SimulationConfig
    ingestion: IngestionPolicy = IngestionPolicy()
    # where the raw tables are loaded from (marketing_ml/sources/): a folder of the provider's own files, the
    # provider's tables in the warehouse, or None: the simulator
    source: Path | WarehouseSource | None = None
    # MLFLOW_TRACKING_URI when set (a tracking server or database), else None: the data directory's store
    mlflow_tracking: str | None = None

    @property
    def ground_truth(self) -> bool:
        """Whether the simulator's ground truth exists beside the raw tables: only when the simulator made them."""
        return self.source is None

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.data_dir / "dagster_home"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking or f"sqlite:///{self.data_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.data_dir / "mlartifacts"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def dead_letter_dir(self) -> Path:
        return self.landing_dir / "dead_letter"

    @property
    def simulation_file(self) -> Path:
        return self.data_dir / PIN_FILE


def default_start_date(history_days: int, today: dt.date | None = None) -> dt.date:
    """A history of `history_days` days that ends yesterday (the last complete day)."""
    today = today or dt.date.today()
    return today - dt.timedelta(days=history_days)


def resolve_source(value: str, environ: dict[str, str] | None = None) -> Path | WarehouseSource | None:
    """`simulator` (None), the folder of the provider's files (which must exist), or `warehouse` with the
    mapping file that names the tables."""
    env = os.environ if environ is None else environ
    if value.lower() == SIMULATOR_SOURCE:
        return None
    if value.lower() == WAREHOUSE_SOURCE:
        mapping = env.get(ENV_SOURCE_MAPPING)
        if not mapping or not Path(mapping).expanduser().is_file():
            raise SettingsError(
                f"{ENV_SOURCE}=warehouse reads the tables your ELT loaded: set {ENV_SOURCE_MAPPING} to a mapping "
                f"file that names each one (tables: clients: table: schema.name); {mapping!r} is not a file"
            )
        return WarehouseSource(Path(mapping).expanduser().resolve())
    folder = Path(value).expanduser().resolve()
    if not folder.is_dir():
        raise SettingsError(f"{ENV_SOURCE}={value!r} is neither {SIMULATOR_SOURCE!r}, {WAREHOUSE_SOURCE!r} nor a folder")
    return folder


def load_settings(
    *,
    clients: int | None = None,
    history_days: int | None = None,
    source: str | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Resolve settings from arguments (the CLI), the environment, and the data directory's pin."""
    env = os.environ if environ is None else environ
    data_dir = Path(env.get(ENV_HOME, ".marketing_ml")).expanduser().resolve()
    warehouse = env.get(ENV_WAREHOUSE, "duckdb").lower()
    if warehouse not in WAREHOUSES:
        raise SettingsError(f"{ENV_WAREHOUSE}={warehouse!r} is not one of {', '.join(WAREHOUSES)}")

    requested: dict[str, object] = {}
    if clients is not None or ENV_CLIENTS in env:
        requested["n_clients"] = int(clients if clients is not None else env[ENV_CLIENTS])
    if ENV_SEED in env:
        requested["seed"] = int(env[ENV_SEED])
    if ENV_START_DATE in env:
        requested["start_date"] = dt.date.fromisoformat(env[ENV_START_DATE])
    if ENV_REGIME_SHIFT in env:
        requested["regime_shift"] = RegimeShift(start=dt.date.fromisoformat(env[ENV_REGIME_SHIFT]))
    if ENV_EFFECT_CORRELATION in env:
        requested["effect_propensity_correlation"] = float(env[ENV_EFFECT_CORRELATION])
    # A history length shapes a new directory only: a pinned history keeps growing by a day every day.
    days = int(history_days if history_days is not None else env.get(ENV_HISTORY_DAYS, DEFAULT_HISTORY_DAYS))

    pin = data_dir / PIN_FILE
    if pin.exists():
        pinned_config = read_pin(pin)
        pinned_values = {k: getattr(pinned_config, k) for k in requested}
        conflicts = {k: (pinned_values[k], v) for k, v in requested.items() if pinned_values[k] != v}
        if conflicts:
            detail = ", ".join(f"{k}: pinned {a}, requested {b}" for k, (a, b) in conflicts.items())
            raise SettingsError(
                f"The data directory {data_dir} holds a different simulated world ({detail}). "
                f"Use another directory (export {ENV_HOME}=...) or start over with `marketing-ml reset`."
            )
        config = pinned_config
    else:
        config = SimulationConfig(
            start_date=requested.pop("start_date", default_start_date(days)),  # type: ignore[arg-type]
            n_clients=requested.pop("n_clients", DEFAULT_CLIENTS),  # type: ignore[arg-type]
            seed=requested.pop("seed", DEFAULT_SEED),  # type: ignore[arg-type]
            **requested,  # type: ignore[arg-type]
        )
        write_pin(data_dir, config)
    return Settings(data_dir=data_dir, warehouse=warehouse, simulation=config,
                    source=resolve_source(source or env.get(ENV_SOURCE, SIMULATOR_SOURCE), env),
                    mlflow_tracking=env.get(ENV_MLFLOW_TRACKING_URI) or None)
