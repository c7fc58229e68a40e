"""Point-in-time training sets, built in the warehouse (SQL), split out of time.

Conversion and churn (`outcome_training_set_sql`): observation dates D every `every_days` days. A row is
a client active at the start of D (a row of `features.client_features_daily` at as_of_date = D, so its
features use only data strictly before D; for conversion also not converted before D), labelled 1 if the
outcome happens in [D, D + horizon). Only dates whose label window ends inside the built history are used.
The last `test_dates` dates are the test slice (every reported figure) and the `selection_dates` before
them the selection slice (the champion is chosen on it); every other date has D + horizon <= the first
selection date, so no training label window reaches into the held-out period (out of time). The validation slice (early
stopping, calibration) is a held-out share of CLIENTS on the latest `validation_dates` dates before that
gap; the other clients' rows on every earlier date are the training slice. Client-disjoint because label
windows of nearby dates overlap: the same future conversion would be a positive in both slices, and early
stopping on it measured memorisation (seen here: XGBoost never stopped and lost AUC out of time).
Each row also carries `label_end` (the window's exclusive end) and, when the simulator made the raw data
(`Settings.ground_truth`), `oracle_daily_hazard`, its true hazard at D: an evaluation column, never a model
input. A provider's files have no truth, so their training sets have no oracle column.

Next best action (`touch_training_set_sql`): one row per logged random campaign touch with the features as
of the touch date, the action and the observed response; split by touch date (train, then validation,
then selection, then test). Responses are same-day events, so a touch's label is known when the day ends and the test
touches come after every training touch. With ground truth a touch also carries the true response
probability of its action (`oracle_probability`), and `policy_population_sql` adds the policy evaluation
rows: every client active on selection and test dates (every `every_days` days) with the true response
probability of every action (evaluation only), labelled with its slice. Without it, policies are valued
on the held-out touches themselves (`marketing_ml.registry.evaluation.replay_policy_evaluation`).

Large histories are sampled per slice, deterministically (ordered by a hash of client and date), up to
`max_rows` per slice: uniform sampling keeps the base rate, so probabilities stay calibrated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from marketing_ml.features.catalog import FEATURE_TABLE
from marketing_ml.registry.tasks import (
    ACTION,
    HELD_OUT,
    LABEL,
    LABEL_END,
    NON_FEATURE_COLUMNS,
    ORACLE,
    ORACLE_ACTION_PREFIX,
    ORACLE_BEST_ACTION,
    ORACLE_HAZARD,
    SPLIT,
    SPLITS,
    OutcomeTask,
)
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.simulation.vocabulary import ACTION_NAMES


class PlanError(ValueError):
    """The built history cannot hold the requested windows; the message says what to change."""


@dataclass(frozen=True)
class ObservationPlan:
    """Observation dates per slice for conversion or churn, and how the windows were fitted."""

    horizon_days: int
    warmup_days: int
    every_days: int
    dates: dict[str, tuple[dt.date, ...]]
    notes: tuple[str, ...] = ()

    def rows(self) -> list[tuple[dt.date, dt.date, str]]:
        """(observation date, label window end exclusive, slice) for every date."""
        return [
            (d, d + dt.timedelta(days=self.horizon_days), split) for split, ds in self.dates.items() for d in ds
        ]

    @property
    def first_date(self) -> dt.date:
        return min(d for ds in self.dates.values() for d in ds)

    @property
    def last_label_day(self) -> dt.date:
        return max(self.dates["test"]) + dt.timedelta(days=self.horizon_days - 1)


@dataclass(frozen=True)
class TouchPlan:
    """Touch-date ranges (inclusive) per slice for the next best action."""

    ranges: dict[str, tuple[dt.date, dt.date]]
    notes: tuple[str, ...] = field(default=())


def _grid(history_start: dt.date, history_end: dt.date, horizon: int, warmup: int, every: int,
          test_dates: int, validation_dates: int, selection_dates: int) -> dict[str, tuple[dt.date, ...]] | None:
    """Dates on a grid anchored at the last date whose label window fits; None if the slices do not fit."""
    first = history_start + dt.timedelta(days=warmup)
    last = history_end - dt.timedelta(days=horizon - 1)
    held = [last - dt.timedelta(days=every * i) for i in range(test_dates + selection_dates)]
    if held[-1] < first:
        return None
    gap_steps = -(-horizon // every)  # grid steps from the first held-out date back to the first date whose window ends before it
    earlier = []
    d = held[-1] - dt.timedelta(days=every * gap_steps)
    while d >= first:
        earlier.append(d)
        d -= dt.timedelta(days=every)
    if len(earlier) < validation_dates + 1:
        return None
    return {
        "train": tuple(sorted(earlier[validation_dates:])),
        "validation": tuple(sorted(earlier[:validation_dates])),
        "selection": tuple(sorted(held[test_dates:])),
        "test": tuple(sorted(held[:test_dates])),
    }


def plan_observations(history_start: dt.date, history_end: dt.date, *, horizon_days: int, every_days: int,
                      warmup_days: int, test_dates: int, validation_dates: int, selection_dates: int,
                      fit_to_history: bool) -> ObservationPlan:
    """Observation dates for a history [history_start, history_end] (the last day with outcomes).

    With `fit_to_history`, a history too short for the requested horizon and warm-up shortens both by the
    same factor (largest horizon that fits) and says so in `notes`, so small demo worlds still train;
    otherwise it is an error.
    """
    if min(horizon_days, every_days, test_dates, validation_dates, selection_dates) < 1 or warmup_days < 0:
        raise PlanError("horizon, spacing, test, selection and validation dates must be >= 1 and the warm-up >= 0")
    for horizon in range(horizon_days, 0, -1) if fit_to_history else (horizon_days,):
        warmup = round(warmup_days * horizon / horizon_days)
        dates = _grid(history_start, history_end, horizon, warmup, every_days, test_dates, validation_dates,
                      selection_dates)
        if dates is not None:
            notes = ()
            if horizon != horizon_days:
                notes = (
                    f"the history {history_start}..{history_end} is too short for a {horizon_days}-day horizon "
                    f"after a {warmup_days}-day warm-up: shortened to {horizon} and {warmup} days",
                )
            return ObservationPlan(horizon, warmup, every_days, dates, notes)
    days = (history_end - history_start).days + 1
    raise PlanError(
        f"{days} days of history cannot hold {test_dates} test + {selection_dates} selection + {validation_dates} "
        "validation + 1 training "
        f"observation dates {every_days} days apart with a {horizon_days}-day label horizon after a "
        f"{warmup_days}-day warm-up. Build more history (marketing-ml run --days ...) or lower horizon_days, "
        "warmup_days, every_days or the number of dates in the run config."
    )


def plan_touches(history_start: dt.date, history_end: dt.date, *, warmup_days: int, validation_days: int,
                 test_days: int, fit_to_history: bool, selection_days: int = 0) -> TouchPlan:
    """Touch-date slices: [start + warm-up, ...) train, then validation, then (if `selection_days`) the
    selection slice, then the last `test_days` days.

    Training needs at least as many days as the test slice; with `fit_to_history` a shorter history
    scales every window down by one factor (noted), otherwise it is an error.
    """
    days = (history_end - history_start).days + 1
    needed = warmup_days + validation_days + selection_days + 2 * test_days
    notes: tuple[str, ...] = ()
    if needed > days:
        if not fit_to_history:
            raise PlanError(
                f"{days} days of history cannot hold a {warmup_days}-day warm-up, {validation_days} validation, "
                f"{selection_days} selection and {test_days} test days and at least as many training days. Build "
                "more history or lower them in the run config."
            )
        scale = days / needed

        def scaled(window: int) -> int:
            return max(1, int(window * scale)) if window else 0

        warmup_days = int(warmup_days * scale)
        validation_days, selection_days, test_days = scaled(validation_days), scaled(selection_days), scaled(test_days)
        notes = (f"the {days}-day history is short: warm-up, validation, selection and test windows scaled by {scale:.2f}",)
    test_start = history_end - dt.timedelta(days=test_days - 1)
    selection_start = test_start - dt.timedelta(days=selection_days)
    validation_start = selection_start - dt.timedelta(days=validation_days)
    train_start = history_start + dt.timedelta(days=warmup_days)
    if validation_start <= train_start:
        raise PlanError(f"{days} days of history leave no training days before the held-out touches")
    ranges = {
        "train": (train_start, validation_start - dt.timedelta(days=1)),
        "validation": (validation_start, selection_start - dt.timedelta(days=1)),
    }
    if selection_days:
        ranges["selection"] = (selection_start, test_start - dt.timedelta(days=1))
    ranges["test"] = (test_start, history_end)
    return TouchPlan(ranges, notes)


def population_dates(first: dt.date, last: dt.date, every_days: int) -> tuple[dt.date, ...]:
    """The dates, `every_days` apart, whose active clients form a slice's policy evaluation population."""
    span = (last - first).days
    return tuple(first + dt.timedelta(days=i) for i in range(0, span + 1, max(every_days, 1)))


def _date(d: dt.date) -> str:
    return f"date '{d.isoformat()}'"


def _values(rows: list[tuple]) -> str:
    def literal(v) -> str:
        return _date(v) if isinstance(v, dt.date) else f"'{v}'"

    return ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)


def _sample_filter(max_rows: dict[str, int]) -> str:
    cases = " ".join(f"when '{split}' then {int(n)}" for split, n in max_rows.items())
    return f"sample_rank <= case {SPLIT} {cases} end"


def holdout_clients_sql(share: float, column: str = "client_id") -> str:
    """A deterministic, client-level predicate selecting `share` of all clients (the validation clients)."""
    return f"abs(hash({column})) % 1000 < {round(share * 1000)}"


def outcome_training_set_sql(task: OutcomeTask, plan: ObservationPlan, table: str, max_rows: dict[str, int],
                             validation_share: float, *, ground_truth: bool) -> str:
    """`create or replace table` of a conversion or churn training set (see the module docstring); with
    `ground_truth`, the simulator's true hazard at D as the oracle column."""
    oracle_column = f",\n    h.{task.hazard_column} as {ORACLE_HAZARD}" if ground_truth else ""
    oracle_join = ("left join ground_truth.true_daily_hazards h on h.client_id = s.client_id and h.as_of_date = s.as_of_date"
                   if ground_truth else "")
    unconverted = "and not f.is_converted" if task.unconverted_only else ""
    holdout = holdout_clients_sql(validation_share, "f.client_id")
    return f"""
create or replace table {table} as
with observation({'as_of_date'}, {LABEL_END}, date_slice) as (
    select * from (values {_values(plan.rows())})
),
assigned as (
    select f.*, o.{LABEL_END},
        case when o.date_slice in {HELD_OUT} then o.date_slice
             when {holdout} then case when o.date_slice = 'validation' then 'validation' end
             else 'train' end as {SPLIT}
    from {FEATURE_TABLE} f
    join observation o on f.as_of_date = o.as_of_date
    where true {unconverted}
),
ranked as (
    select *, row_number() over (partition by {SPLIT} order by hash(client_id, as_of_date)) as sample_rank
    from assigned
    where {SPLIT} is not null
),
sampled as (
    select * from ranked where {_sample_filter(max_rows)}
),
labelled as (
    select distinct s.client_id, s.as_of_date
    from sampled s
    join raw.raw_outcomes oc
      on oc.client_id = s.client_id
     and oc.outcome_type = '{task.outcome_type}'
     and oc.outcome_date >= s.as_of_date
     and oc.outcome_date < s.{LABEL_END}
)
select s.* exclude (sample_rank),
    l.client_id is not null as {LABEL}{oracle_column}
from sampled s
left join labelled l on l.client_id = s.client_id and l.as_of_date = s.as_of_date
{oracle_join}
order by s.as_of_date, s.client_id
"""


def touch_training_set_sql(plan: TouchPlan, table: str, max_rows: dict[str, int], *, ground_truth: bool) -> str:
    """`create or replace table` of the next-best-action training set: touches with features as of the touch
    date; with `ground_truth`, the true response probability of the touch's action as the oracle column."""
    truth = ", t.p_response_true" if ground_truth else ""
    oracle = f", t.p_response_true as {ORACLE}" if ground_truth else ""
    slices = " ".join(
        f"when t.touch_date between {_date(a)} and {_date(b)} then '{split}'" for split, (a, b) in plan.ranges.items()
    )
    first, last = plan.ranges["train"][0], plan.ranges["test"][1]
    return f"""
create or replace table {table} as
with touches as (
    select t.touch_id, t.client_id, t.touch_date, t.action, t.responded{truth},
        case {slices} end as {SPLIT}
    from raw.raw_campaign_touches t
    where t.touch_date between {_date(first)} and {_date(last)}
),
ranked as (
    select f.*, t.{SPLIT}, t.touch_id, t.action as {ACTION}, t.responded as {LABEL}{oracle},
        row_number() over (partition by t.{SPLIT} order by hash(t.touch_id)) as sample_rank
    from touches t
    join {FEATURE_TABLE} f on f.client_id = t.client_id and f.as_of_date = t.touch_date
)
select * exclude (sample_rank) from ranked
where {_sample_filter(max_rows)}
order by as_of_date, client_id
"""


def policy_population_sql(dates: dict[str, tuple[dt.date, ...]], table: str, max_rows: int) -> str:
    """`create or replace table` of the policy evaluation rows: active clients on the dates of each held-out
    slice, with its name and the true probabilities; up to `max_rows` per slice. Ground truth only."""
    truth = ", ".join(f"tr.p_response_{a} as {ORACLE_ACTION_PREFIX}{a}" for a in ACTION_NAMES)
    listed = _values([(d, split) for split, ds in dates.items() for d in ds])
    return f"""
create or replace table {table} as
with population_date(as_of_date, {SPLIT}) as (values {listed})
select * exclude (sample_rank) from (
    select f.*, p.{SPLIT}, {truth}, tr.oracle_best_action as {ORACLE_BEST_ACTION},
        row_number() over (partition by p.{SPLIT} order by hash(f.client_id, f.as_of_date)) as sample_rank
    from {FEATURE_TABLE} f
    join population_date p on p.as_of_date = f.as_of_date
    join ground_truth.true_client_traits tr on tr.client_id = f.client_id
)
where sample_rank <= {int(max_rows)}
order by as_of_date, client_id
"""


def model_input_columns(columns: list[str], feature_names: set[str]) -> list[str]:
    """The columns of a training set a model may read: catalogued features, never labels or ground truth."""
    return [c for c in columns if c in feature_names and c not in NON_FEATURE_COLUMNS]


def history_bounds(warehouse: WarehouseResource) -> tuple[dt.date, dt.date]:
    """First and last day of the built history (events are written for every simulated day)."""
    bounds = warehouse.query("select min(event_date) as first, max(event_date) as last from raw.raw_marketing_events")
    first, last = bounds.iloc[0]["first"], bounds.iloc[0]["last"]
    if pd.isna(first):
        raise PlanError("raw.raw_marketing_events is empty: run the data and features steps first "
                         "(marketing-ml run --step data --step features).")
    return pd.Timestamp(first).date(), pd.Timestamp(last).date()


def slice_summary(warehouse: WarehouseResource, table: str, date_column: str) -> pd.DataFrame:
    summary = warehouse.query(
        f"select {SPLIT}, count(*) as row_count, sum(cast({LABEL} as integer)) as positives, "
        f"min({date_column}) as first_date, max({date_column}) as last_date, "
        f"count(distinct {date_column}) as dates from {table} group by {SPLIT}"
    )
    summary["rate"] = summary["positives"] / summary["row_count"]
    order = {s: i for i, s in enumerate(SPLITS)}
    summary = summary.sort_values(SPLIT, key=lambda s: s.map(order)).reset_index(drop=True)
    missing = set(SPLITS) - set(summary[SPLIT])
    if missing:
        raise PlanError(f"{table}: no rows in the {', '.join(sorted(missing))} slice(s); are the features built for "
                         "the whole history? (marketing-ml run --step features)")
    return summary
