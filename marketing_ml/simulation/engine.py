"""The daily simulation: behaviour, marketing touches, outcomes and their true probabilities.

The world advances one day at a time for every client block:

1. the true daily hazards of conversion and churn are computed from each client's observed activity in
   the 30 days before the day (plus financial state and a little latent appetite), so they are causal in
   behaviour a model can see;
2. event counts per (channel, event type) are drawn from rates driven by latent traits, life events,
   weekday and (optionally) a regime shift;
3. a random 1.5% of active clients get a random next-best-action (a logged experiment) and respond with
   their true probability; a response is itself an event;
4. a random share of the clients out of their contact cool-down (and not opted out of contact) enter the intervention experiment, each
   arm (no contact, advisor outreach, retention call) equally likely; a contact shifts the client's
   hazards for its window by the client's true effect (`effects.py`);
5. outcomes are drawn from the hazards: churned clients stop producing events, converted clients cannot
   convert again.

Each (day, block, purpose) has its own random stream, so a day's data is identical whenever and however
often it is built: building day D replays days before D without materialising their rows.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from marketing_ml.simulation.config import ID_EPOCH, SimulationConfig
from marketing_ml.simulation.effects import ARMS, INTERVENTIONS, hazard_shifts, shifted_hazard
from marketing_ml.simulation.population import (
    Population,
    block_rng,
    generate_block,
    true_action_probabilities,
)
from marketing_ml.simulation.vocabulary import (
    ACTION_NAMES,
    ACTIONS,
    DEVICES,
    EVENT_KINDS,
    HAZARD_GROUPS,
    HAZARD_WINDOW_DAYS,
)

STREAM_EVENTS = 2
STREAM_TOUCHES = 3
STREAM_OUTCOMES = 4
STREAM_DETAILS = 5  # timestamps, devices, amounts: drawn after the counts so they never shift them
STREAM_INTERVENTIONS = 6
NEVER = -(10**6)  # the day of a contact that never happened

N_KINDS = len(EVENT_KINDS)
GROUP_NAMES = tuple(HAZARD_GROUPS)
G = {name: i for i, name in enumerate(GROUP_NAMES)}
KIND_TO_GROUP = np.zeros((N_KINDS, len(GROUP_NAMES)), dtype=np.float32)
for _g, _kinds in enumerate(HAZARD_GROUPS.values()):
    KIND_TO_GROUP[list(_kinds), _g] = 1

_CHANNEL = np.array([k.channel for k in EVENT_KINDS])
_EVENT_TYPE = np.array([k.event_type for k in EVENT_KINDS])
_BASE_RATE = np.array([k.base_rate for k in EVENT_KINDS])
_DRIVERS = ("activity", "conversion", "churn", "advice", "email")
_DRIVER_INDEX = np.array([_DRIVERS.index(k.driver) for k in EVENT_KINDS])
_IS_WEB = _CHANNEL == "web"
_IS_MOBILE = _CHANNEL == "mobile_app"
_IS_EMAIL = _CHANNEL == "email"
_IS_PERSONAL = np.isin(_CHANNEL, ["advisor_call", "branch"])
_IS_WEBINAR = _CHANNEL == "webinar"

# Life-event effects, by LIFE_EVENTS order: job_change, marriage, new_child, inheritance, home_purchase, bonus
_LE_CONVERSION = np.array([0.0, 0.6, 0.5, 2.0, 0.4, 0.8])
_LE_CHURN = np.array([4.0, 0.0, 0.0, 0.0, 0.0, 0.0])
_LE_ACTIVITY = np.array([-0.5, 0.3, 0.2, 0.3, 0.3, 0.1])
_LE_DECAY_DAYS = np.array([45.0, 40.0, 50.0, 60.0, 40.0, 30.0])

# Hazard intercepts, set so that about 12% of clients convert and 8% churn in a year.
CONVERSION_INTERCEPT = -9.3
CHURN_INTERCEPT = -8.2


def day_number(date: dt.date) -> int:
    """Days since the id epoch; the high part of every event, touch and outcome id."""
    return (date - ID_EPOCH).days


@dataclass
class SimulatedDays:
    """The rows of a range of simulated days, one frame per raw table."""

    events: pd.DataFrame
    touches: pd.DataFrame
    outcomes: pd.DataFrame
    hazards: pd.DataFrame
    interventions: pd.DataFrame


@dataclass
class _BlockState:
    enrolled_from: np.ndarray
    alive: np.ndarray
    converted: np.ndarray
    ring: np.ndarray  # (HAZARD_WINDOW_DAYS, n, groups) uint8 daily group counts
    window_sum: np.ndarray  # (n, groups) int32 sums of the ring
    last_assigned: np.ndarray  # (n,) day of the latest assignment to the intervention experiment
    contacted: np.ndarray  # (n, interventions) day of the latest contact of each intervention


def simulate_days(config: SimulationConfig, first: dt.date, last: dt.date, *, workers: int | None = None) -> SimulatedDays:
    """Rows of every raw table for the days first..last (inclusive), all client blocks merged in memory.

    Days before `first` (from the burn-in on) are replayed, not materialised, which is what makes a day's
    rows independent of the range it is built in. For ranges too large to hold at once (the raw assets'
    backfills), `simulate_blocks` hands over one block at a time instead.
    """
    return _frames([cols for _, cols in _block_results(config, first, last, workers)])


def simulate_blocks(
    config: SimulationConfig, first: dt.date, last: dt.date, *, workers: int | None = None
) -> Iterator[tuple[int, SimulatedDays]]:
    """The rows of first..last block by block, `(block, its rows)` in block order: what a caller that
    streams the rows to storage holds is one block's frames, however many clients the world has.

    Together the blocks hold exactly the rows of `simulate_days` (each block's rows sorted by id, as the
    merged frames are); every emitted day has every table, so a block without rows of a table has an
    empty frame of it.
    """
    for block, cols in _block_results(config, first, last, workers):
        yield block, _frames([cols])


def _frames(results: list[dict[str, dict[str, np.ndarray]]]) -> SimulatedDays:
    """The typed frames of blocks' column arrays, merged (in id order but the hazards, as `_merge` says)."""

    def frame(table: str, build: Callable[[list[dict[str, np.ndarray]]], pd.DataFrame]) -> pd.DataFrame:
        # hand each table's block arrays over and drop them, so only one table is ever held twice
        return build([r.pop(table) for r in results if table in r])

    return SimulatedDays(
        events=frame("events", _events_frame),
        touches=frame("touches", _touches_frame),
        outcomes=frame("outcomes", _outcomes_frame),
        hazards=frame("hazards", _hazards_frame),
        interventions=frame("interventions", _interventions_frame),
    )


def _block_results(
    config: SimulationConfig, first: dt.date, last: dt.date, workers: int | None
) -> Iterator[tuple[int, dict[str, dict[str, np.ndarray]]]]:
    """Each block's column arrays of first..last, in block order.

    Client blocks never interact, so they are simulated in parallel worker processes (`workers`, default
    one per core). At most `workers + 1` blocks are submitted and not yet handed over: the finished ones
    wait in this process until the caller takes them in order, and a slow caller (a warehouse write)
    must not let the whole range pile up here.
    """
    if first < config.start_date:
        raise ValueError(f"{first} is before the simulation start date {config.start_date}")
    if last < first:
        raise ValueError(f"empty range: {first}..{last}")
    lo_day, hi_day = config.day_index(first), config.day_index(last)
    workers = min(workers or os.cpu_count() or 1, config.n_blocks)
    if workers <= 1:
        for block in range(config.n_blocks):
            yield block, _simulate_block(config, block, lo_day, hi_day)
        return
    # spawn, not fork: the caller (a Dagster run) has threads, and forking those is unsafe
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        blocks = iter(range(config.n_blocks))
        pending: deque[tuple[int, Future]] = deque(
            (block, pool.submit(_simulate_block, config, block, lo_day, hi_day))
            for block in itertools.islice(blocks, workers + 1)
        )
        try:
            while pending:
                block, future = pending.popleft()
                cols = future.result()
                for following in itertools.islice(blocks, 1):
                    pending.append((following, pool.submit(_simulate_block, config, following, lo_day, hi_day)))
                yield block, cols
        finally:  # a caller that stops early (a failed write) waits for the running blocks only
            for _, future in pending:
                future.cancel()


def _simulate_block(config: SimulationConfig, block: int, lo_day: int, hi_day: int) -> dict[str, dict[str, np.ndarray]]:
    """Replay one client block from the burn-in to `hi_day`, keeping the rows of days >= `lo_day`."""
    sim = _BlockSimulator(config, block)
    out: dict[str, list[dict[str, np.ndarray]]] = {}
    for day in range(-config.burn_in_days, hi_day + 1):
        rows = sim.step(day, emit=day >= lo_day)
        for table, cols in rows.items():
            out.setdefault(table, []).append(cols)
    return {table: {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]} for table, chunks in out.items()}


class _BlockSimulator:
    """The state and dynamics of one block of clients."""

    def __init__(self, config: SimulationConfig, block: int):
        self.config = config
        self.block = block
        self.pop = generate_block(config, block)
        self.action_p = true_action_probabilities(self.pop)
        self.static_rates = self._client_rates(self.pop)
        self.shifts = hazard_shifts(self.pop, config.effect_propensity_correlation)
        self.state = self._initial_state(self.pop)

    def _initial_state(self, pop: Population) -> _BlockState:
        n = len(pop)
        return _BlockState(
            enrolled_from=pop.enrollment_day,
            alive=np.ones(n, dtype=bool),
            converted=np.zeros(n, dtype=bool),
            ring=np.zeros((HAZARD_WINDOW_DAYS, n, len(GROUP_NAMES)), dtype=np.uint8),
            window_sum=np.zeros((n, len(GROUP_NAMES)), dtype=np.int32),
            last_assigned=np.full(n, NEVER, dtype=np.int32),
            contacted=np.full((n, len(INTERVENTIONS)), NEVER, dtype=np.int32),
        )

    def _life_event_multipliers(self, pop: Population, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        since = day - pop.life_event_day
        kind = pop.life_event_type
        strength = np.where(since >= 0, np.exp(-np.maximum(since, 0) / _LE_DECAY_DAYS[kind]), 0.0)
        conversion = np.prod(1 + _LE_CONVERSION[kind] * strength, axis=1)
        churn = np.prod(1 + _LE_CHURN[kind] * strength, axis=1)
        activity = np.prod(1 + _LE_ACTIVITY[kind] * strength, axis=1)
        return conversion, churn, activity

    def _shift_strength(self, day: int) -> float:
        shift = self.config.regime_shift
        if shift is None or self.config.date_of(day) < shift.start:
            return 0.0
        return 1.0

    def _hazards(self, pop: Population, state: _BlockState, day: int) -> tuple[np.ndarray, np.ndarray]:
        """True daily probabilities of conversion and churn on `day`, from activity before `day`."""
        w = np.log1p(state.window_sum.astype(np.float64))
        age = pop.age_at(day)
        near_retirement = (pop.target_retirement_age - age) < 7
        shift = self.config.regime_shift
        r = shift.conversion_reweighting * self._shift_strength(day) if shift else 0.0
        conversion_logit = (
            CONVERSION_INTERCEPT
            + 0.65 * (1 - 0.8 * r) * w[:, G["calculator"]]
            + 0.90 * w[:, G["advisor"]]
            + (0.60 + 0.9 * r) * w[:, G["webinar"]]
            + 0.35 * (1 + r) * w[:, G["email_click"]]
            + 0.45 * pop.wealth_z
            + 0.30 * pop.tier_idx
            + 0.50 * near_retirement
            + 0.15 * pop.advice_affinity
        )
        churn_logit = (
            CHURN_INTERCEPT
            + 1.00 * w[:, G["documents"]]
            + 0.45 * w[:, G["calls"]]
            - 0.35 * w[:, G["activity"]]
            + 0.40 * (pop.tenure_years < 2)
            - 0.25 * pop.balance_z
            + 0.30 * (age < 35)
            + 0.15 * pop.flight_risk
            - 1.00 * state.converted
        )
        p_conversion = np.where(state.converted, 0.0, _sigmoid(conversion_logit))
        return p_conversion, _sigmoid(churn_logit)

    def _assign_interventions(self, day: int, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Today's randomised assignments (rows, arm per client): only clients not yet converted, not
        opted out of contact, and out of the cool-down since their last assignment, so no two contacts' windows overlap and each
        contact's effect is the stored true effect."""
        cfg, state = self.config, self.state
        rng = block_rng(cfg, STREAM_INTERVENTIONS, day, self.block)
        n = len(active)
        u, arm = rng.random(n), rng.integers(0, len(ARMS), n)
        eligible = (active & ~state.converted & ~self.pop.contact_opt_out
                    & (day - state.last_assigned > cfg.contact_cooldown_days))
        assigned = np.flatnonzero(eligible & (u < cfg.intervention_rate))
        state.last_assigned[assigned] = day
        for k in range(len(INTERVENTIONS)):
            contacted = assigned[arm[assigned] == k + 1]  # arm 0 is the hold-out
            state.contacted[contacted, k] = day
        return assigned, arm

    def _contact_effects(self, p_conversion: np.ndarray, p_churn: np.ndarray, day: int) -> tuple[np.ndarray, np.ndarray]:
        """The hazards of clients inside a contact's window, shifted by their true effect."""
        state = self.state
        for k, intervention in enumerate(INTERVENTIONS):
            acting = day - state.contacted[:, k] < intervention.window_days
            if acting.any():
                p_conversion = np.where(acting & ~state.converted, shifted_hazard(p_conversion, self.shifts[:, k, 0], "conversion"), p_conversion)
                p_churn = np.where(acting, shifted_hazard(p_churn, self.shifts[:, k, 1], "churn"), p_churn)
        return p_conversion, p_churn

    def _rates(self, pop: Population, day: int, active: np.ndarray) -> np.ndarray:
        """Expected events per (client, kind) on `day`; zero for inactive clients."""
        conversion, churn, activity = self._life_event_multipliers(pop, day)
        near_retirement = (pop.target_retirement_age - pop.age_at(day)) < 7
        conversion = conversion * np.where(near_retirement, 1.8, 1.0)
        advice = np.sqrt(conversion) * (1 + 0.3 * (churn - 1))
        drivers = np.column_stack([activity, conversion, churn, advice, np.ones(len(pop))]) * active[:, None]
        date = self.config.date_of(day)
        weekday = date.weekday()
        season = np.full(N_KINDS, 1 + 0.08 * np.sin(2 * np.pi * date.timetuple().tm_yday / 365.25))
        if weekday >= 5:
            season *= np.where(_IS_EMAIL, 0.3, np.where(_IS_PERSONAL | _IS_WEBINAR, 0.0 if weekday == 6 else 0.15, 0.7))
        shift = self.config.regime_shift
        if shift is not None and self._shift_strength(day):
            season *= np.where(_IS_MOBILE, shift.mobile_factor, np.where(_IS_EMAIL, shift.email_factor, np.where(_IS_WEB, 0.7, 1.0)))
        return self.static_rates * drivers[:, _DRIVER_INDEX] * season

    @staticmethod
    def _client_rates(pop: Population) -> np.ndarray:
        """The time-invariant part of the event rates: base rate x engagement x channel affinity."""
        digital = pop.digital_affinity[:, None]
        channel_affinity = np.select(
            [_IS_WEB, _IS_MOBILE, _IS_EMAIL, _IS_PERSONAL],
            [
                1.3 - 0.6 * digital,
                2.4 * digital**1.5,
                2.0 * pop.email_responsiveness[:, None],
                np.exp(0.5 * pop.advice_affinity[:, None]) * (1.2 - 0.5 * digital),
            ],
            default=1.0,
        )
        return _BASE_RATE * pop.engagement[:, None] * channel_affinity

    def step(self, day: int, emit: bool) -> dict[str, dict[str, np.ndarray]]:
        """Advance one day; return that day's rows per table when `emit`."""
        cfg, block, pop, state = self.config, self.block, self.pop, self.state
        n = len(pop)
        # a client joins during its enrolment day: active from the next day, as "as of the start of D" reads
        active = state.alive & (day > state.enrolled_from)
        in_history = day >= 0
        dnum = day_number(cfg.date_of(day))
        if in_history:
            assigned, arm = self._assign_interventions(day, active)
            base_conversion, base_churn = self._hazards(pop, state, day)
            p_conversion, p_churn = self._contact_effects(base_conversion, base_churn, day)

        counts = block_rng(cfg, STREAM_EVENTS, day + 10**5, block).poisson(self._rates(pop, day, active))

        rows: dict[str, dict[str, np.ndarray]] = {}
        response_rows = np.empty(0, dtype=np.int64)
        response_actions = np.empty(0, dtype=np.int64)
        if in_history:
            rng = block_rng(cfg, STREAM_TOUCHES, day, block)
            touched = (rng.random(n) < cfg.touch_rate) & active
            action = rng.integers(0, len(ACTIONS), n)
            respond_u = rng.random(n)
            idx = np.flatnonzero(touched)
            p_all = self.action_p[idx]
            chosen = action[idx]
            responded = respond_u[idx] < p_all[np.arange(len(idx)), chosen]
            response_rows, response_actions = idx[responded], chosen[responded]
            np.add.at(counts, (response_rows, _RESPONSE_KIND[response_actions]), 1)
            if emit:
                rows["touches"] = {
                    "client_id": pop.client_id[idx],
                    "day": np.full(len(idx), dnum),
                    "action": chosen,
                    "responded": responded,
                    "p_all": p_all,
                }

            rng = block_rng(cfg, STREAM_OUTCOMES, day, block)
            churn = active & (rng.random(n) < p_churn)
            convert = active & ~churn & (rng.random(n) < p_conversion)
            if emit:
                details = block_rng(cfg, STREAM_DETAILS, day, block, 1)
                who = np.flatnonzero(churn | convert)
                is_churn = churn[who]
                advisory_share = details.uniform(0.3, 1.0, len(who))
                amount = np.where(
                    is_churn,
                    pop.balance_401k[who],
                    pop.balance_401k[who] + advisory_share * pop.outside_assets[who],
                )
                rows["outcomes"] = {
                    "client_id": pop.client_id[who],
                    "day": np.full(len(who), dnum),
                    "is_churn": is_churn,
                    "p_true": np.where(is_churn, p_churn[who], p_conversion[who]),
                    "amount": np.round(amount, 2),
                }
                act = np.flatnonzero(active)
                rows["hazards"] = {
                    "client_id": pop.client_id[act],
                    "day": np.full(len(act), dnum),
                    "p_conversion": p_conversion[act].astype(np.float32),
                    "p_churn": p_churn[act].astype(np.float32),
                    "base_conversion": base_conversion[act].astype(np.float32),
                    "base_churn": base_churn[act].astype(np.float32),
                }
                rows["interventions"] = {
                    "client_id": pop.client_id[assigned],
                    "day": np.full(len(assigned), dnum),
                    "arm": arm[assigned],
                }
            state.alive &= ~churn
            state.converted |= convert

        if emit and in_history:
            rows["events"] = self._expand_events(counts, day, response_rows, response_actions)

        groups = np.minimum(counts.astype(np.float32) @ KIND_TO_GROUP, 255).astype(np.uint8)
        slot = day % HAZARD_WINDOW_DAYS
        state.window_sum += groups.astype(np.int32) - state.ring[slot]
        state.ring[slot] = groups
        return rows

    def _expand_events(
        self,
        counts: np.ndarray,
        day: int,
        response_rows: np.ndarray,
        response_actions: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """One row per event of the day: counts are exploded in (client, kind) order, which makes the
        within-client sequence number (and so the event id) deterministic."""
        pop = self.pop
        rng = block_rng(self.config, STREAM_DETAILS, day, self.block, 0)
        client_row, kind = np.nonzero(counts)
        reps = counts[client_row, kind]
        client_row = np.repeat(client_row, reps)
        kind = np.repeat(kind, reps)
        # mark response events (they were added to counts): the last `k` events of that (client, kind)
        is_response = np.zeros(len(kind), dtype=bool)
        response_action = np.full(len(kind), -1)
        if len(response_rows):
            order = np.lexsort((kind, client_row))  # already sorted; lexsort keeps it explicit
            client_row, kind = client_row[order], kind[order]
            key = client_row * N_KINDS + kind
            response_key = response_rows * N_KINDS + _RESPONSE_KIND[response_actions]
            last_of_key = np.searchsorted(key, response_key, side="right") - 1
            is_response[last_of_key] = True
            response_action[last_of_key] = response_actions
        first_of_client = np.searchsorted(client_row, client_row, side="left")
        seq = np.arange(len(client_row)) - first_of_client
        digital = pop.digital_affinity[client_row]
        u = rng.random(len(kind))
        device = np.select(
            [
                _IS_MOBILE[kind],
                _IS_EMAIL[kind] & (u < 0.2 + 0.6 * digital),
                _CHANNEL[kind] == "advisor_call",
                _CHANNEL[kind] == "branch",
                _IS_WEB[kind] & (u < 0.4 * digital),
                _IS_WEB[kind] & (u > 0.9),
            ],
            [1, 1, 3, 4, 1, 2],
            default=0,
        )
        personal = _IS_PERSONAL[kind] | _IS_WEBINAR[kind]
        seconds = np.where(personal, rng.integers(9 * 3600, 17 * 3600, len(kind)), rng.integers(6 * 3600, 23 * 3600, len(kind)))
        return {
            "client_id": pop.client_id[client_row],
            "day": np.full(len(kind), day_number(self.config.date_of(day))),
            "seq": seq,
            "kind": kind,
            "device": device,
            "seconds": seconds,
            "response_action": response_action,
        }


_RESPONSE_KIND = np.array([a.response_kind for a in ACTIONS])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------------------------------------------
# Column arrays -> typed frames. Strings are Arrow-backed (compact, and DuckDB/Snowflake read them as-is).

_DATE = pd.ArrowDtype(pa.date32())
_EPOCH = np.datetime64(ID_EPOCH, "D")


def _merge(
    chunks: list[dict[str, np.ndarray]], key: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Concatenate the blocks' column arrays, in `key` order (ids: date, then client) when given.

    The hazards, the largest table by far, are left in block order: sorting them costs a full copy and
    tables have no order."""
    cols = {}
    for name in list(chunks[0]):
        cols[name] = np.concatenate([c.pop(name) for c in chunks])
    if key is None:
        return cols
    order = np.argsort(key(cols), kind="stable")
    return {name: values[order] for name, values in cols.items()}


def _dates(day_num: np.ndarray) -> np.ndarray:
    return _EPOCH + day_num.astype("timedelta64[D]")


def _labels(codes: np.ndarray, dictionary: np.ndarray | tuple[str, ...]) -> pd.Series:
    """A string column from integer codes into `dictionary` (negative code = null), built in Arrow.

    Building millions of Python strings is what made frames slow; Arrow expands a dictionary in C++.
    """
    codes = np.asarray(codes, dtype=np.int32)
    indices = pa.array(codes, mask=codes < 0)
    column = pa.DictionaryArray.from_arrays(indices, pa.array(list(dictionary), pa.string())).cast(pa.string())
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([column])))


def _campaign_ids(dates: np.ndarray, action: np.ndarray, newsletter: np.ndarray) -> pd.Series:
    """`CMP-<yyyymm>-<action>` for marketing actions, `NL-<yyyymm>` for newsletters, else null."""
    month = dates.astype("datetime64[M]")
    months = np.unique(month)
    labels = [
        label
        for m in months.astype(str)
        for label in [f"CMP-{m.replace('-', '')}-{a}" for a in ACTION_NAMES] + [f"NL-{m.replace('-', '')}"]
    ]
    width = len(ACTION_NAMES) + 1
    base = np.searchsorted(months, month) * width
    codes = np.where(action >= 0, base + action, np.where(newsletter, base + width - 1, -1))
    return _labels(codes, np.asarray(labels, dtype=object))


def _event_ids(c: dict[str, np.ndarray]) -> np.ndarray:
    return (c["day"] * 10**7 + c["client_id"]) * 1000 + c["seq"]


def _events_frame(chunks: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    c = _merge(chunks, _event_ids)
    kind = c["kind"]
    dates = _dates(c["day"])
    return pd.DataFrame(
        {
            "event_id": _event_ids(c),
            "client_id": c["client_id"],
            "event_date": pd.Series(dates, dtype=_DATE),
            "event_ts": (dates.astype("datetime64[s]") + c["seconds"].astype("timedelta64[s]")).astype("datetime64[us]"),
            "channel": _labels(kind, _CHANNEL),
            "event_type": _labels(kind, _EVENT_TYPE),
            "device": _labels(c["device"], DEVICES),
            "campaign_id": _campaign_ids(dates, c["response_action"], _IS_EMAIL[kind]),
        }
    )


def _touch_ids(c: dict[str, np.ndarray]) -> np.ndarray:
    return c["day"] * 10**7 + c["client_id"]


def _touches_frame(chunks: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    c = _merge(chunks, _touch_ids)
    action, p_all = c["action"], c["p_all"]
    dates = _dates(c["day"])
    frame = pd.DataFrame(
        {
            "touch_id": _touch_ids(c),
            "client_id": c["client_id"],
            "touch_date": pd.Series(dates, dtype=_DATE),
            "action": _labels(action, ACTION_NAMES),
            "campaign_id": _campaign_ids(dates, action, np.zeros(len(action), dtype=bool)),
            "responded": c["responded"].astype(bool),
            "p_response_true": p_all[np.arange(len(action)), action],
        }
    )
    for j, name in enumerate(ACTION_NAMES):
        frame[f"p_true_{name}"] = p_all[:, j]
    return frame


def _outcome_ids(c: dict[str, np.ndarray]) -> np.ndarray:
    return (c["day"] * 10**7 + c["client_id"]) * 10 + c["is_churn"]


def _outcomes_frame(chunks: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    c = _merge(chunks, _outcome_ids)
    is_churn = c["is_churn"].astype(bool)
    return pd.DataFrame(
        {
            "outcome_id": _outcome_ids(c),
            "client_id": c["client_id"],
            "outcome_date": pd.Series(_dates(c["day"]), dtype=_DATE),
            "outcome_type": _labels(is_churn.astype(np.int32), ("conversion", "churn")),
            "p_true": c["p_true"].astype(np.float64),
            "amount_usd": c["amount"].astype(np.float64),
        }
    )


def _intervention_ids(c: dict[str, np.ndarray]) -> np.ndarray:
    return c["day"] * 10**7 + c["client_id"]


def _interventions_frame(chunks: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    c = _merge(chunks, _intervention_ids)
    return pd.DataFrame(
        {
            "intervention_id": _intervention_ids(c),
            "client_id": c["client_id"],
            "intervention_date": pd.Series(_dates(c["day"]), dtype=_DATE),
            "intervention": _labels(c["arm"], ARMS),
            "assignment_probability": np.full(len(c["arm"]), 1.0 / len(ARMS)),
        }
    )


def _hazards_frame(chunks: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    c = _merge(chunks)
    return pd.DataFrame(
        {
            "client_id": c["client_id"],
            "as_of_date": pd.Series(_dates(c["day"]), dtype=_DATE),
            "p_conversion_daily": c["p_conversion"].astype(np.float32),
            "p_churn_daily": c["p_churn"].astype(np.float32),
            # the hazards had no contact acted: what a contact's true effect is computed from
            "p_conversion_daily_uncontacted": c["base_conversion"].astype(np.float32),
            "p_churn_daily_uncontacted": c["base_churn"].astype(np.float32),
        }
    )
