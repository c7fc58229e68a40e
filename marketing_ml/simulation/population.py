"""The client population: observable plan data, latent traits and dated life events.

Numbers are drawn with numpy, block by block, each block from its own random stream, so generation is
vectorised and deterministic for a given config. Text fields (names, e-mails, phones) come from Faker's
own frequency tables, sampled with numpy so 1M clients take seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import pyarrow as pa
from faker.providers.address.en_US import Provider as AddressProvider
from faker.providers.internet.en_US import Provider as InternetProvider
from faker.providers.person.en_US import Provider as PersonProvider

from marketing_ml.simulation.config import SimulationConfig
from marketing_ml.simulation.vocabulary import (
    ACTIONS,
    INDUSTRIES,
    LIFE_EVENTS,
    MARITAL_STATUSES,
    RISK_TOLERANCES,
    SERVICE_TIERS,
)

MAX_LIFE_EVENTS = 4
NO_EVENT_DAY = -(10**6)
CLIENTS_PER_ADVISOR = 400
CLIENTS_PER_EMPLOYER = 250

# Random-stream ids: each purpose draws from its own stream so adding a draw to one never shifts another.
STREAM_POPULATION = 0
STREAM_NAMES = 1
STREAM_OPT_OUT = 7  # after the engine's streams (2-6)
# Share of clients who have asked not to be contacted proactively (calls, campaigns).
OPT_OUT_SHARE = 0.04


def block_rng(config: SimulationConfig, *key: int) -> np.random.Generator:
    """A generator for one purpose of one block (and day): independent of build order and chunking."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([config.seed, *key])))


@dataclass
class Population:
    """Column arrays, one entry per client, in client_id order (client_id = index + 1)."""

    client_id: np.ndarray
    # observable plan and profile data
    birth_day: np.ndarray  # days relative to the start date (negative)
    gender: np.ndarray  # 0 female, 1 male
    state_idx: np.ndarray
    marital_idx: np.ndarray
    dependents: np.ndarray
    annual_income: np.ndarray
    balance_401k: np.ndarray
    contribution_rate: np.ndarray
    employer_match_rate: np.ndarray
    employer_id: np.ndarray
    industry_idx: np.ndarray
    tenure_years: np.ndarray
    enrollment_day: np.ndarray  # relative to the start date; clients are active from the day after it
    risk_idx: np.ndarray
    outside_assets: np.ndarray
    home_owner: np.ndarray
    tier_idx: np.ndarray
    advisor_id: np.ndarray
    target_retirement_age: np.ndarray
    contact_opt_out: np.ndarray  # bool: never contacted proactively, by the experiment or the platform
    # latent traits: what the simulator knows and the platform must infer from behaviour
    engagement: np.ndarray  # overall activity multiplier
    digital_affinity: np.ndarray  # 0..1, drives mobile and web vs. phone and branch
    email_responsiveness: np.ndarray  # 0..1
    advice_affinity: np.ndarray  # standard normal, appetite for professional advice
    flight_risk: np.ndarray  # standard normal, baseline propensity to roll assets out
    life_event_day: np.ndarray  # (n, MAX_LIFE_EVENTS) day index or NO_EVENT_DAY
    life_event_type: np.ndarray  # (n, MAX_LIFE_EVENTS) index into LIFE_EVENTS

    def __len__(self) -> int:
        return len(self.client_id)

    def slice(self, lo: int, hi: int) -> Population:
        return Population(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})

    # Derived quantities shared by the hazards and the action-response truth. Constants, not
    # population statistics, so a client's values never depend on who else is simulated.
    def age_at(self, day: int) -> np.ndarray:
        return (day - self.birth_day) / 365.25

    @property
    def wealth_z(self) -> np.ndarray:
        return (np.log1p(self.balance_401k + self.outside_assets) - 11.6) / 1.3

    @property
    def balance_z(self) -> np.ndarray:
        return (np.log1p(self.balance_401k) - 11.0) / 1.2


def generate_population(config: SimulationConfig) -> Population:
    """Draw every client's attributes, block by block."""
    blocks = [generate_block(config, b) for b in range(config.n_blocks)]
    return Population(
        **{f.name: np.concatenate([getattr(b, f.name) for b in blocks]) for f in fields(Population)}
    )


def generate_block(config: SimulationConfig, block: int) -> Population:
    """The clients of one block; any block can be drawn on its own."""
    lo, hi = config.block_bounds(block)
    n = hi - lo
    rng = block_rng(config, STREAM_POPULATION, block)

    age = np.clip(rng.normal(43, 11, n), 22, 70)
    birth_day = -np.round(age * 365.25).astype(np.int32)
    gender = rng.integers(0, 2, n).astype(np.int8)
    state_idx = rng.integers(0, len(AddressProvider.states_abbr), n).astype(np.int16)
    married_p = np.clip((age - 22) / 30, 0.1, 0.7)
    u = rng.random(n)
    marital_idx = np.where(
        u < married_p, 1, np.where(u < married_p + 0.08 * (age > 35), 2, np.where(u > 0.985, 3, 0))
    ).astype(np.int8)
    dependents = np.where(
        (marital_idx == 1) | (rng.random(n) < 0.15), rng.poisson(1.4, n), 0
    ).astype(np.int8)

    # Income rises with age until ~50; lognormal spread. Balances accumulate with tenure and contributions.
    age_curve = 1 + 0.9 * np.clip((age - 22) / 28, 0, 1)
    annual_income = np.round(np.exp(rng.normal(np.log(48_000), 0.45, n)) * age_curve, -2)
    contribution_rate = np.round(np.clip(rng.normal(0.065, 0.035, n), 0.0, 0.20), 3)
    employers = max(20, config.n_clients // CLIENTS_PER_EMPLOYER)
    employer_id = rng.integers(1, employers + 1, n).astype(np.int32)
    # match and industry are properties of the employer, not the client
    employer_rng = block_rng(config, STREAM_POPULATION, 10**6)
    employer_match = np.round(employer_rng.choice([0.0, 0.03, 0.04, 0.05, 0.06], employers + 1), 3)
    employer_industry = employer_rng.integers(0, len(INDUSTRIES), employers + 1)
    employer_match_rate = employer_match[employer_id]
    industry_idx = employer_industry[employer_id].astype(np.int8)
    tenure_years = np.round(np.clip(rng.exponential(6.0, n), 0.1, age - 21), 1)
    years_saving = np.clip(age - 24, 0.5, None) * rng.uniform(0.4, 1.0, n)
    balance_401k = np.round(
        annual_income
        * (contribution_rate + employer_match_rate + 0.01)
        * years_saving
        * (1.05 ** (years_saving / 2))
        * np.exp(rng.normal(0, 0.35, n)),
        2,
    )
    # A small share of clients join the plan during the first year of history; the rest enrolled earlier.
    enrolling = rng.random(n) < config.enrolling_share
    enrollment_day = np.where(
        enrolling,
        rng.integers(1, 366, n),
        -np.round(np.minimum(tenure_years, years_saving) * 365.25).astype(np.int64) - 1,
    ).astype(np.int32)
    balance_401k = np.where(enrolling, np.round(annual_income * rng.uniform(0.0, 0.05, n), 2), balance_401k)

    risk_idx = np.clip(
        np.round(1 + rng.normal(0, 0.8, n) - 0.03 * (age - 43)), 0, len(RISK_TOLERANCES) - 1
    ).astype(np.int8)
    outside_assets = np.round(
        np.where(
            rng.random(n) < 0.55,
            np.exp(rng.normal(np.log(annual_income * 0.8), 1.0)) * (age / 43),
            0.0,
        ),
        -2,
    )
    home_owner = (rng.random(n) < np.clip((age - 22) / 35, 0.1, 0.85)).astype(bool)
    investable = balance_401k + outside_assets
    tier_idx = np.where(investable > 500_000, 2, np.where(investable > 120_000, 1, 0)).astype(np.int8)
    advisors = max(5, config.n_clients // CLIENTS_PER_ADVISOR)
    advisor_id = rng.integers(1, advisors + 1, n).astype(np.int32)
    target_retirement_age = rng.choice([60, 62, 65, 67, 70], n, p=[0.1, 0.2, 0.4, 0.25, 0.05]).astype(
        np.int8
    )

    engagement = np.exp(rng.normal(-0.1, 0.55, n))
    digital_affinity = np.clip(rng.beta(3, 3, n) - 0.01 * (age - 43), 0.02, 0.98)
    email_responsiveness = rng.beta(2.5, 3.5, n)
    advice_affinity = rng.normal(0, 1, n) + 0.25 * (age > 50) + 0.2 * (tier_idx - 0.5)
    flight_risk = rng.normal(0, 1, n)

    # Life events over the burn-in, the history and a year beyond it (so any history length has them).
    span_lo, span_hi = -config.burn_in_days - 180, 800
    rate = 0.3 * (span_hi - span_lo) / 365.25
    counts = np.minimum(rng.poisson(rate, n), MAX_LIFE_EVENTS)
    slot = np.arange(MAX_LIFE_EVENTS)[None, :]
    days = rng.integers(span_lo, span_hi, (n, MAX_LIFE_EVENTS))
    life_event_day = np.where(slot < counts[:, None], days, NO_EVENT_DAY).astype(np.int32)
    # job changes are more likely for short tenures and young clients; inheritance for older ones
    type_p = np.tile(np.array([0.32, 0.14, 0.14, 0.08, 0.14, 0.18]), (n, 1))
    type_p[:, 0] *= np.where(tenure_years < 3, 1.6, 1.0) * np.where(age < 35, 1.3, 1.0)
    type_p[:, 3] *= np.where(age > 50, 1.8, 1.0)
    type_p /= type_p.sum(axis=1, keepdims=True)
    cum = type_p.cumsum(axis=1)
    draws = rng.random((n, MAX_LIFE_EVENTS))
    life_event_type = (draws[:, :, None] > cum[:, None, :]).sum(axis=2).astype(np.int8)
    life_event_type = np.minimum(life_event_type, len(LIFE_EVENTS) - 1)

    return Population(
        client_id=np.arange(lo + 1, hi + 1, dtype=np.int64),
        birth_day=birth_day,
        gender=gender,
        state_idx=state_idx,
        marital_idx=marital_idx,
        dependents=dependents,
        annual_income=annual_income,
        balance_401k=balance_401k,
        contribution_rate=contribution_rate,
        employer_match_rate=employer_match_rate,
        employer_id=employer_id,
        industry_idx=industry_idx,
        tenure_years=tenure_years,
        enrollment_day=enrollment_day,
        risk_idx=risk_idx,
        outside_assets=outside_assets,
        home_owner=home_owner,
        tier_idx=tier_idx,
        advisor_id=advisor_id,
        target_retirement_age=target_retirement_age,
        # its own stream, so the flag shifts no other draw
        contact_opt_out=block_rng(config, STREAM_OPT_OUT, block).random(n) < OPT_OUT_SHARE,
        engagement=engagement,
        digital_affinity=digital_affinity,
        email_responsiveness=email_responsiveness,
        advice_affinity=advice_affinity,
        flight_risk=flight_risk,
        life_event_day=life_event_day,
        life_event_type=life_event_type,
    )


def true_action_logits(pop: Population) -> np.ndarray:
    """Log-odds that each client responds to each action of `ACTIONS` (n, n_actions).

    The best action differs between clients: wealthy, advice-minded clients answer advisor invitations,
    digital ones app promotions, e-mail readers e-mails. A policy learnt from the logged random experiment
    can find this from the clients' observable behaviour.
    """
    age = pop.age_at(0)
    wealth = pop.wealth_z
    married = (pop.marital_idx == 1).astype(float)
    logits = np.column_stack(
        [
            -3.4 + 0.8 * wealth + 0.6 * pop.advice_affinity + 0.5 * (age >= 50) - 0.6 * (age < 35),
            -3.0 + 3.2 * (pop.email_responsiveness - 0.42) + 0.3 * ((age >= 35) & (age < 55)),
            -3.6 + 0.7 * np.log(pop.engagement) + 0.5 * pop.advice_affinity + 0.3 * (age >= 45),
            -3.3 + 0.6 * wealth + 0.4 * (pop.dependents > 0) + 0.4 * married + 0.3 * pop.advice_affinity,
            -3.2 + 3.5 * (pop.digital_affinity - 0.5) + 0.6 * (age < 40),
            -4.2 + 0.4 * np.log(pop.engagement),
        ]
    )
    assert logits.shape[1] == len(ACTIONS)
    return logits


def true_action_probabilities(pop: Population) -> np.ndarray:
    """Probability of a response to each action; static per client (age taken at the start date)."""
    return 1.0 / (1.0 + np.exp(-true_action_logits(pop)))


# ---------------------------------------------------------------------------------------------------
# The observable projection: what the provider's systems hold about each client.

_FIRST_MALE = np.array(list(PersonProvider.first_names_male.keys()))
_FIRST_MALE_P = np.array(list(PersonProvider.first_names_male.values()))
_FIRST_FEMALE = np.array(list(PersonProvider.first_names_female.keys()))
_FIRST_FEMALE_P = np.array(list(PersonProvider.first_names_female.values()))
_LAST = np.array(list(PersonProvider.last_names.keys()))
_LAST_P = np.array(list(PersonProvider.last_names.values()))
_DOMAINS = np.array(InternetProvider.free_email_domains)
_STATES = np.array(AddressProvider.states_abbr)


def _sample(rng: np.random.Generator, values: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    return values[rng.choice(len(values), n, p=weights / weights.sum())]


def client_profiles(config: SimulationConfig, pop: Population) -> pd.DataFrame:
    """The `raw_clients` table: one row per client, profile as of enrolment or the history start."""
    n = len(pop)
    first = np.empty(n, dtype=object)
    last = np.empty(n, dtype=object)
    domain = np.empty(n, dtype=object)
    phone = np.empty(n, dtype=np.int64)
    for block in range(config.n_blocks):
        lo, hi = config.block_bounds(block)
        rng = block_rng(config, STREAM_NAMES, block)
        male = pop.gender[lo:hi] == 1
        m = int(male.sum())
        names = np.empty(hi - lo, dtype=object)
        names[male] = _sample(rng, _FIRST_MALE, _FIRST_MALE_P, m)
        names[~male] = _sample(rng, _FIRST_FEMALE, _FIRST_FEMALE_P, hi - lo - m)
        first[lo:hi] = names
        last[lo:hi] = _sample(rng, _LAST, _LAST_P, hi - lo)
        domain[lo:hi] = _DOMAINS[rng.integers(0, len(_DOMAINS), hi - lo)]
        phone[lo:hi] = rng.integers(200_000_0000, 999_999_9999, hi - lo)
    first_s = pd.Series(first, dtype="string[pyarrow]")
    last_s = pd.Series(last, dtype="string[pyarrow]")
    ids = pd.Series(pop.client_id).astype("string[pyarrow]")
    email = first_s.str.lower() + "." + last_s.str.lower() + ids + "@" + pd.Series(domain, dtype="string[pyarrow]")
    phone_s = pd.Series(phone).astype("string[pyarrow]")
    phone_fmt = "(" + phone_s.str[:3] + ") " + phone_s.str[3:6] + "-" + phone_s.str[6:]

    start = np.datetime64(config.start_date, "D")

    def as_date(day: np.ndarray) -> pd.Series:
        return pd.Series((start + day.astype("timedelta64[D]")), dtype=pd.ArrowDtype(pa.date32()))

    def categorical(values: tuple[str, ...] | np.ndarray, idx: np.ndarray) -> pd.Series:
        return pd.Series(np.asarray(values)[idx], dtype="string[pyarrow]")

    # Profile snapshot as of enrolment (for clients enrolling later) or the start date: never later than
    # any as-of date the features use, so reading it is point-in-time safe.
    return pd.DataFrame(
        {
            "client_id": pop.client_id,
            "first_name": first_s,
            "last_name": last_s,
            "email": email,
            "phone": phone_fmt,
            "date_of_birth": as_date(pop.birth_day),
            "gender": categorical(("female", "male"), pop.gender),
            "state": categorical(_STATES, pop.state_idx),
            "marital_status": categorical(MARITAL_STATUSES, pop.marital_idx),
            "dependents": pop.dependents.astype(np.int16),
            "annual_income": pop.annual_income,
            "balance_401k": pop.balance_401k,
            "contribution_rate": pop.contribution_rate,
            "employer_match_rate": pop.employer_match_rate,
            "employer_id": pop.employer_id,
            "industry": categorical(INDUSTRIES, pop.industry_idx),
            "tenure_years": pop.tenure_years,
            "enrollment_date": as_date(pop.enrollment_day),
            "risk_tolerance": categorical(RISK_TOLERANCES, pop.risk_idx),
            "outside_assets": pop.outside_assets,
            "home_owner": pop.home_owner,
            "service_tier": categorical(SERVICE_TIERS, pop.tier_idx),
            "assigned_advisor_id": pop.advisor_id,
            "target_retirement_age": pop.target_retirement_age.astype(np.int16),
            "contact_opt_out": pop.contact_opt_out,
        }
    )


def client_truth(config: SimulationConfig, pop: Population) -> pd.DataFrame:
    """The `true_client_traits` table: latent traits and true action response probabilities per client.

    Ground truth for evaluation only: no feature or model may read it.
    """
    probs = true_action_probabilities(pop)
    frame = pd.DataFrame(
        {
            "client_id": pop.client_id,
            "engagement": pop.engagement,
            "digital_affinity": pop.digital_affinity,
            "email_responsiveness": pop.email_responsiveness,
            "advice_affinity": pop.advice_affinity,
            "flight_risk": pop.flight_risk,
            "n_life_events": (pop.life_event_day > NO_EVENT_DAY).sum(axis=1).astype(np.int16),
        }
    )
    for j, action in enumerate(ACTIONS):
        frame[f"p_response_{action.name}"] = probs[:, j]
    frame["oracle_best_action"] = pd.Series(
        np.asarray([a.name for a in ACTIONS])[probs.argmax(axis=1)], dtype="string[pyarrow]"
    )
    return frame
