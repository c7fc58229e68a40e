"""The true, heterogeneous effects of the interventions the business controls.

An intervention (an advisor's outreach call, a retention call) moves a client's daily hazards of
conversion and churn for `window_days` from the contact day on, by a per-client, per-outcome shift:

- conversion: an additive shift of the daily hazard, so that how far the effect follows the client's
  baseline propensity is a setting (`effect_propensity_correlation`), not a by-product of the hazard's
  own spread; a shifted hazard never falls below `HAZARD_FLOOR` of the baseline;
- churn: a shift of the log hazard (a multiplier), because a call can only keep a client who was going
  to leave: the saves scale with the risk, and the setting orders who is saved among the at-risk.

Each shift mixes, with that correlation, the static part of the client's propensity and traits that are
independent of it but visible in the data (contribution rate, digital habits, engagement), so all four
classic groups exist: persuadables (large positive effect), sure things (high propensity, about no
effect), lost causes, and sleeping dogs whom contact harms (a retention call that reminds a quiet client to
leave; an advisor call a digital-only client resents).

True effect of contacting a client on day D, on P(outcome within H days of D), from the daily hazard h on
D and the shifted hazard h' during the window W = min(window_days, H):

    effect = (1 - (1 - h')^W (1 - h)^(H - W)) - (1 - (1 - h)^H)

It holds the hazard at its day-D value over the horizon, the approximation the oracle probability makes.
Both shifts are linear in the hazard path (additive, or proportional), so the effect's first-order term
does not depend on how the hazard moves during the window. A test checks it against the realised
difference between the randomised arms.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from marketing_ml.simulation.population import Population

# A shifted daily conversion hazard never falls below this share of the baseline.
HAZARD_FLOOR = 0.2
# The mean daily conversion hazard of the world (about 12% convert in a year): the scale of its shifts.
_CONVERSION_SCALE = 3.3e-4


class Intervention(NamedTuple):
    name: str
    window_days: int  # days from the contact day on during which the hazard shift applies
    description: str


INTERVENTIONS: tuple[Intervention, ...] = (
    Intervention("advisor_outreach", 30, "an advisor calls the client about wealth advisory services"),
    Intervention("retention_call", 90, "a call with a retention offer, to keep the 401(k) assets in the plan"),
)
INTERVENTION_NAMES = tuple(i.name for i in INTERVENTIONS)
CONTROL = "no_contact"
# The arms of the daily randomised experiment: the control first, so arm 0 is the hold-out.
ARMS = (CONTROL, *INTERVENTION_NAMES)
OUTCOMES = ("conversion", "churn")


def _standard(x: np.ndarray, mean: float, sd: float) -> np.ndarray:
    # constants measured once on a 50k population, not statistics of this one: a client's effect never
    # depends on who else is simulated
    return (x - mean) / sd


def hazard_shifts(pop: Population, correlation: float) -> np.ndarray:
    """(n, len(INTERVENTIONS), len(OUTCOMES)) shifts while a contact acts: of the daily conversion hazard,
    and of the log of the daily churn hazard."""
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"effect_propensity_correlation must be in [-1, 1], got {correlation}")
    other = np.sqrt(1.0 - correlation**2)
    conversion_propensity = _standard(0.45 * pop.wealth_z + 0.30 * pop.tier_idx + 0.15 * pop.advice_affinity, 0.296, 0.784)
    churn_propensity = _standard(
        0.40 * (pop.tenure_years < 2) - 0.25 * pop.balance_z + 0.15 * pop.flight_risk, 0.0725, 0.482
    )
    saver = _standard(pop.contribution_rate, 0.0657, 0.0341)
    digital = _standard(pop.digital_affinity, 0.499, 0.214)
    engaged = _standard(np.log(pop.engagement), -0.102, 0.547)
    # advisor outreach: persuadable if the propensity part or a keen, non-digital saver; resented by
    # digital-only clients. Savers are wealthier and digital clients younger, so that trait is made
    # uncorrelated with the propensity part (correlation 0.329, measured like the constants above): at a
    # setting of 0 the effect is unrelated to the propensity.
    keen = _standard(0.7 * saver - 0.7 * digital, -0.0008, 0.993)
    keen = (keen - 0.329 * conversion_propensity) / np.sqrt(1 - 0.329**2)
    advisor = correlation * conversion_propensity + other * keen
    # retention call: saves clients at risk, and engaged ones; reminds quiet, low-risk clients to leave
    retention = correlation * churn_propensity + other * engaged
    shifts = np.empty((len(pop), len(INTERVENTIONS), len(OUTCOMES)))
    shifts[:, 0, 0] = _CONVERSION_SCALE * (1.5 + 1.5 * advisor)
    shifts[:, 0, 1] = -0.15 * (1.0 + 0.5 * conversion_propensity)
    shifts[:, 1, 0] = _CONVERSION_SCALE * 0.2
    shifts[:, 1, 1] = -0.6 * (1.0 + 1.2 * retention)
    return shifts


def shifted_hazard(hazard: np.ndarray, shift: np.ndarray, outcome: str) -> np.ndarray:
    """The daily hazard of `outcome` while a contact acts (see the module docstring)."""
    if outcome == "churn":
        return np.clip(hazard * np.exp(shift), 0.0, 1.0)
    return np.clip(np.maximum(hazard + shift, HAZARD_FLOOR * hazard), 0.0, 1.0)


def true_effect(
    daily_hazard: np.ndarray, shift: np.ndarray, outcome: str, window_days: int, horizon_days: int
) -> np.ndarray:
    """True change of P(outcome within `horizon_days`) if contacted today (see the module docstring)."""
    h = np.clip(np.asarray(daily_hazard, dtype=np.float64), 0.0, 1.0)
    w = min(window_days, horizon_days)
    shifted = shifted_hazard(h, np.asarray(shift, dtype=np.float64), outcome)
    contacted = 1.0 - np.power(1.0 - shifted, w) * np.power(1.0 - h, horizon_days - w)
    return contacted - (1.0 - np.power(1.0 - h, horizon_days))


def shift_column(intervention: str, outcome: str) -> str:
    """The `true_client_traits` column with the hazard shift of one intervention on one outcome."""
    return f"hazard_shift_{outcome}_{intervention}"


def shift_frame(pop: Population, correlation: float) -> pd.DataFrame:
    """The hazard shifts as `true_client_traits` columns, one per intervention and outcome."""
    shifts = hazard_shifts(pop, correlation)
    return pd.DataFrame(
        {
            shift_column(intervention.name, outcome): shifts[:, k, j]
            for k, intervention in enumerate(INTERVENTIONS)
            for j, outcome in enumerate(OUTCOMES)
        }
    )
