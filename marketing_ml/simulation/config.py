"""Configuration of the simulated world.

Everything that changes what the simulator draws is in `SimulationConfig`; two runs with equal configs
produce identical data for every date, whatever order the dates are built in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# Clients are simulated in fixed blocks, each with its own random streams. The block size is part of the
# world's identity (not a tuning knob): changing it would change every draw.
BLOCK_SIZE = 8192
# Day numbers in ids count from this epoch so ids stay stable when the simulation start moves.
ID_EPOCH = dt.date(2000, 1, 1)


@dataclass(frozen=True)
class RegimeShift:
    """A change of client behaviour from `start` on, for drift and retraining demos.

    From `start`, mobile usage is multiplied by `mobile_factor`, email engagement by `email_factor`, and the
    conversion hazard weights calculator use less and webinars and advisor contact more, so a model trained
    before the shift ranks clients worse after it.
    """

    start: dt.date
    mobile_factor: float = 2.5
    email_factor: float = 0.4
    conversion_reweighting: float = 1.0  # 0 = no change of the hazard, 1 = the full reweighting


@dataclass(frozen=True)
class SimulationConfig:
    """The knobs of the simulated 401(k) provider.

    `start_date` is the first simulated day with data. Before it the simulator runs `burn_in_days` of
    behaviour without outcomes, so that trailing activity (which drives the hazards) is in a steady state
    on day one instead of starting from zero.
    """

    start_date: dt.date
    n_clients: int = 50_000
    seed: int = 42
    burn_in_days: int = 60
    touch_rate: float = 0.015  # share of active clients given a random marketing action each day
    enrolling_share: float = 0.08  # share of clients who enrol during the first year of the history
    # the intervention experiment: each day this share of the eligible clients is assigned an arm at random
    intervention_rate: float = 0.03
    # days after an assignment before a client can be assigned again; at least the longest effect window
    contact_cooldown_days: int = 90
    # how far an intervention's true effect follows the client's baseline propensity (-1..1)
    effect_propensity_correlation: float = 0.5
    regime_shift: RegimeShift | None = field(default=None)

    def __post_init__(self) -> None:
        if self.n_clients < 1:
            raise ValueError(f"n_clients must be positive, got {self.n_clients}")
        if self.burn_in_days < 30:
            raise ValueError("burn_in_days must cover the 30-day hazard window (>= 30)")

    def day_index(self, date: dt.date) -> int:
        """Days from the start date (0 on the start date)."""
        return (date - self.start_date).days

    def date_of(self, day_index: int) -> dt.date:
        return self.start_date + dt.timedelta(days=int(day_index))

    @property
    def n_blocks(self) -> int:
        return -(-self.n_clients // BLOCK_SIZE)

    def block_bounds(self, block: int) -> tuple[int, int]:
        """Row range [lo, hi) of a client block in population order."""
        lo = block * BLOCK_SIZE
        return lo, min(lo + BLOCK_SIZE, self.n_clients)
