"""The simulator as a Dagster resource, so the UI shows which simulated world a run used."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from pydantic import Field

from marketing_ml.simulation.config import RegimeShift, SimulationConfig


class SimulationResource(dg.ConfigurableResource):
    """Configuration of the simulated 401(k) provider (see `SimulationConfig`)."""

    seed: int = Field(description="Seed of every random stream.")
    n_clients: int = Field(description="Number of plan participants.")
    start_date: str = Field(description="First day of simulated history (ISO date).")
    regime_shift_start: str | None = Field(
        default=None, description="Day client behaviour shifts (ISO date), for drift and retraining demos."
    )
    workers: int = Field(default=0, description="Processes for simulation; 0 = one per core.")

    @classmethod
    def from_config(cls, config: SimulationConfig) -> "SimulationResource":
        shift = config.regime_shift
        return cls(
            seed=config.seed,
            n_clients=config.n_clients,
            start_date=config.start_date.isoformat(),
            regime_shift_start=shift.start.isoformat() if shift else None,
        )

    @property
    def config(self) -> SimulationConfig:
        shift = RegimeShift(start=dt.date.fromisoformat(self.regime_shift_start)) if self.regime_shift_start else None
        return SimulationConfig(
            start_date=dt.date.fromisoformat(self.start_date), n_clients=self.n_clients, seed=self.seed, regime_shift=shift
        )
