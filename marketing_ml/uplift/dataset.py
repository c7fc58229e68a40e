"""The uplift training set: the randomised contact log with features as of each contact, built in SQL.

One row per assignment of the daily intervention experiment (`raw.raw_interventions`, arms no_contact,
advisor_outreach, retention_call): the client's features as of the contact date D (strictly before D),
the arm, and the observed outcomes in the windows after it, `converted` in [D, D + 30) and `churned` in
[D, D + 90). Point in time like the outcome training sets; out of time by contact date: train, then a
selection slice (early stopping, and the slice champions are chosen on), then the test slice the reported
figures come from, which no choice has seen. Only contacts whose 90-day window ends inside the built
history are used, so every label is matured. Only randomised contacts are used (those with an
`assignment_probability`): a targeted contact's outcome says nothing about what the contact caused, so a
log without randomised contacts gives no uplift set and no effect model (`no_randomised_contacts`).

With the simulator's raw data the truth columns (the uncontacted hazards at D and the client's true hazard
shifts) are there to judge the models against it; they are not catalogued features, so no model can read
them. A provider's files have no truth, and the set has no truth columns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from marketing_ml.features.catalog import FEATURE_TABLE
from marketing_ml.registry.tasks import SPLIT, TRAINING_SCHEMA
from marketing_ml.simulation.effects import INTERVENTION_NAMES, OUTCOMES, shift_column
from marketing_ml.training.datasets import PlanError, TouchPlan, plan_touches

UPLIFT_SET = "uplift_training_set"
UPLIFT_TABLE = f"{TRAINING_SCHEMA}.{UPLIFT_SET}"
ARM = "intervention"
# outcome -> (label column, label window in days)
HORIZONS = {"conversion": 30, "churn": 90}
LABELS = {"conversion": "converted", "churn": "churned"}
UNCONTACTED_HAZARD = {o: f"truth_p_{o}_daily_uncontacted" for o in OUTCOMES}
SHIFT_PREFIX = "truth_"
TRUTH_COLUMNS = frozenset(
    {*UNCONTACTED_HAZARD.values(), *(SHIFT_PREFIX + shift_column(i, o) for i in INTERVENTION_NAMES for o in OUTCOMES)}
)


@dataclass(frozen=True)
class UpliftPlan:
    """Contact-date slices (train, selection, test) of the uplift set."""

    ranges: dict[str, tuple[dt.date, dt.date]]
    notes: tuple[str, ...]


def plan_uplift(history_start: dt.date, history_end: dt.date, *, warmup_days: int, selection_days: int,
                test_days: int, fit_to_history: bool) -> UpliftPlan:
    """Contact-date slices ending where the longest label window still fits in the history."""
    longest = max(HORIZONS.values())
    last_matured = history_end - dt.timedelta(days=longest - 1)
    # train, selection and test need a few weeks of matured contacts between them
    if (last_matured - history_start).days + 1 < 60:
        days = (history_end - history_start).days + 1
        raise PlanError(
            f"{days} days of history hold {max(0, (last_matured - history_start).days + 1)} days of contacts whose "
            f"{longest}-day churn window has ended; the uplift step needs at least 60 of them ({longest + 59} days "
            "of history). Build more history (marketing-ml run --days 365) or skip it (--step ... without uplift)."
        )
    touches: TouchPlan = plan_touches(history_start, last_matured, warmup_days=warmup_days,
                                      validation_days=selection_days, test_days=test_days,
                                      fit_to_history=fit_to_history)
    ranges = {"train": touches.ranges["train"], "selection": touches.ranges["validation"],
              "test": touches.ranges["test"]}
    return UpliftPlan(ranges, touches.notes)


# what the raw contact log holds: every logged assignment, and the randomised ones among them
CONTACT_LOG_SQL = ("select count(*) as logged, count(assignment_probability) as randomised "
                   "from raw.raw_interventions")


def no_randomised_contacts(logged: int, randomised: int) -> str | None:
    """Why effects cannot be learned from the contact log, or None when it holds randomised contacts."""
    if logged == 0:
        return ("no uplift model: the interventions table is empty or not provided, so there is no contact log "
                "to learn the effect of contacts from")
    if randomised == 0:
        return (f"no uplift model: none of the {logged:,} logged contacts has an assignment_probability, so none is "
                "known to be randomised; the effect of a targeted contact cannot be told from who was targeted "
                "(confounded), so no model is trained on them")
    return None


def _date(d: dt.date) -> str:
    return f"date '{d.isoformat()}'"


def uplift_set_sql(plan: UpliftPlan, *, ground_truth: bool, table: str = UPLIFT_TABLE) -> str:
    """`create or replace table` of the uplift training set (see the module docstring); the truth columns
    only with the simulator's `ground_truth`."""
    slices = " ".join(f"when i.intervention_date between {_date(a)} and {_date(b)} then '{split}'"
                      for split, (a, b) in plan.ranges.items())
    first, last = plan.ranges["train"][0], plan.ranges["test"][1]
    labels = ",\n    ".join(
        f"exists (select 1 from raw.raw_outcomes o where o.client_id = i.client_id and o.outcome_type = '{outcome}' "
        f"and o.outcome_date >= i.intervention_date and o.outcome_date < i.intervention_date + {days}) "
        f"as {LABELS[outcome]}"
        for outcome, days in HORIZONS.items()
    )
    truth_columns, truth_joins = "", ""
    if ground_truth:
        shifts = ", ".join(f"t.{shift_column(i, o)} as {SHIFT_PREFIX}{shift_column(i, o)}"
                           for i in INTERVENTION_NAMES for o in OUTCOMES)
        truth_columns = (f""",
    h.p_conversion_daily_uncontacted as {UNCONTACTED_HAZARD['conversion']},
    h.p_churn_daily_uncontacted as {UNCONTACTED_HAZARD['churn']},
    {shifts}""")
        truth_joins = """
left join ground_truth.true_daily_hazards h on h.client_id = i.client_id and h.as_of_date = i.intervention_date
left join ground_truth.true_client_traits t on t.client_id = i.client_id"""
    return f"""
create or replace table {table} as
select f.*, i.intervention_id, i.intervention as {ARM}, i.assignment_probability,
    case {slices} end as {SPLIT},
    {labels}{truth_columns}
from raw.raw_interventions i
join {FEATURE_TABLE} f on f.client_id = i.client_id and f.as_of_date = i.intervention_date{truth_joins}
where i.intervention_date between {_date(first)} and {_date(last)} and i.assignment_probability is not null
order by i.intervention_date, i.client_id
"""
