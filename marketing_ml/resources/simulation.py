"""The simulator as a Dagster resource, so the UI shows which simulated world a run used."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from pydantic import Field

from marketing_ml.simulation.config import SimulationConfig


class SimulationResource(dg.ConfigurableResource):
    """Configuration of the simulated 401(k) provider (see `SimulationConfig`)."""

    seed: int = Field(description="Seed of every random stream.")
    n_clients: int = Field(description="Number of plan participants.")
    start_date: str = Field(description="First day of simulated history (ISO date).")
    workers: int = Field(default=0, description="Processes for simulation; 0 = one per core.")

    @property
    def config(self) -> SimulationConfig:
        return SimulationConfig(
            start_date=dt.date.fromisoformat(self.start_date), n_clients=self.n_clients, seed=self.seed
        )
