"""The simulator as a Dagster resource, so the UI shows which simulated world a run used."""

from __future__ import annotations

import dataclasses
import datetime as dt

import dagster as dg
from pydantic import Field

from marketing_ml.simulation.config import RegimeShift, SimulationConfig

_DEFAULTS = SimulationConfig(start_date=dt.date(2025, 1, 1))


class SimulationResource(dg.ConfigurableResource):
    """Configuration of the simulated 401(k) provider (see `SimulationConfig`): every setting that changes
    what the simulator draws, so a run builds exactly the world its settings describe."""

    seed: int = Field(description="Seed of every random stream.")
    n_clients: int = Field(description="Number of plan participants.")
    start_date: str = Field(description="First day of simulated history (ISO date).")
    regime_shift_start: str | None = Field(
        default=None, description="Day client behaviour shifts (ISO date), for drift and retraining demos."
    )
    burn_in_days: int = Field(default=_DEFAULTS.burn_in_days, description="Days simulated before the history.")
    touch_rate: float = Field(default=_DEFAULTS.touch_rate, description="Daily share of active clients given a "
                              "random campaign action.")
    enrolling_share: float = Field(default=_DEFAULTS.enrolling_share, description="Share of clients who enrol "
                                   "during the first year of the history.")
    intervention_rate: float = Field(default=_DEFAULTS.intervention_rate, description="Daily share of eligible "
                                     "clients assigned an arm of the intervention experiment.")
    contact_cooldown_days: int = Field(default=_DEFAULTS.contact_cooldown_days, description="Days after an "
                                       "assignment before a client can be assigned again.")
    effect_propensity_correlation: float = Field(
        default=_DEFAULTS.effect_propensity_correlation,
        description="How far the interventions' true effects follow the baseline propensity (-1..1).",
    )
    workers: int = Field(default=0, description="Processes for simulation; 0 = one per core.")

    @classmethod
    def from_config(cls, config: SimulationConfig) -> SimulationResource:
        shift = config.regime_shift
        settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                    if f.name not in ("start_date", "regime_shift")}
        return cls(start_date=config.start_date.isoformat(), regime_shift_start=shift.start.isoformat() if shift else None,
                   **settings)

    @property
    def config(self) -> SimulationConfig:
        shift = RegimeShift(start=dt.date.fromisoformat(self.regime_shift_start)) if self.regime_shift_start else None
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(SimulationConfig)
                    if f.name not in ("start_date", "regime_shift")}
        return SimulationConfig(start_date=dt.date.fromisoformat(self.start_date), regime_shift=shift, **settings)
