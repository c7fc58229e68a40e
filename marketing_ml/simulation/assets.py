"""Raw data and ground truth as Dagster assets: thin wiring around the simulator.

`raw_clients` and `true_client_traits` are one row per client. The four daily tables come from one replay
of the simulated world (`simulated_daily_activity`), because events, touches, outcomes and hazards of a
day are drawn together; a backfill of any length is one run that replays the world once.
"""

import datetime as dt

import dagster as dg
import pandas as pd

from marketing_ml.metadata import markdown_table, preview
from marketing_ml.partitions import partition_dates
from marketing_ml.resources.simulation import SimulationResource
from marketing_ml.simulation.effects import shift_frame
from marketing_ml.simulation.config import SimulationConfig
from marketing_ml.simulation.engine import SimulatedDays, simulate_days
from marketing_ml.simulation.population import client_profiles, client_truth, generate_population
from marketing_ml.sources.checks import contract_check_results, contract_check_spec, fail_on_violations
from marketing_ml.sources.mapping import SourceMapping
from marketing_ml.sources.validation import TableReport, check_tables

RAW_SCHEMA = "raw"
TRUTH_SCHEMA = "ground_truth"

def contract_as_of(config: SimulationConfig, last: dt.date | None = None) -> dt.date:
    """The day after which the contract calls a simulated date "in the future": today, or later when the
    simulated world reaches further — its clients include those who enrol during the first year of the
    history, and a partition range may end after today."""
    return max(dt.date.today(), config.date_of(365), last or dt.date.min)


def contract_reports(tables: dict[str, pd.DataFrame], checked: list[str], as_of: dt.date) -> dict[str, TableReport]:
    """The contract's reports of the `checked` tables (the simulator's frames are in its names already)."""
    return check_tables(tables, SourceMapping(), as_of, checked)[0]


@dg.asset(
    group_name="raw",
    kinds={"python", "duckdb"},
    metadata={"schema": RAW_SCHEMA},
    check_specs=[contract_check_spec("clients")],
    description="One row per plan participant: profile, plan and contact data as the record keeper holds it.",
)
def raw_clients(simulation: SimulationResource):
    config = simulation.config
    clients = client_profiles(config, generate_population(config))
    reports = contract_reports({"clients": clients}, ["clients"], contract_as_of(config))
    if any(r.violations for r in reports.values()):
        yield from contract_check_results(reports)
        fail_on_violations(reports)  # before the output: the warehouse keeps what it had
    yield dg.Output(clients, metadata={"preview": preview(clients), "summary": dg.MetadataValue.md(clients_summary(clients))})
    yield from contract_check_results(reports)

@dg.asset(
    group_name="ground_truth",
    kinds={"python", "duckdb"},
    metadata={"schema": TRUTH_SCHEMA},
    deps=[raw_clients],
    description=(
        "One row per client: the simulator's latent traits, true response probability for every "
        "next-best action, and the true shift of the daily conversion and churn hazards while each "
        "intervention acts. Evaluation only; no feature or model reads it."
    ),
)
def true_client_traits(context: dg.AssetExecutionContext, simulation: SimulationResource) -> pd.DataFrame:
    config = simulation.config
    population = generate_population(config)
    truth = pd.concat(
        [client_truth(config, population), shift_frame(population, config.effect_propensity_correlation)], axis=1
    )
    best = truth["oracle_best_action"].value_counts(normalize=True).rename("share").reset_index()
    context.add_output_metadata({"oracle best action mix": dg.MetadataValue.md(markdown_table(best))})
    return truth

def _daily_spec(name: str, group: str, schema: str, partition_column: str, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        name,
        group_name=group,
        kinds={"python", "duckdb"},
        deps=[raw_clients],
        description=description,
        metadata={"schema": schema, "partition_expr": partition_column},
    ).with_io_manager_key("io_manager")

DAILY_SPECS = [
    _daily_spec(
        "raw_marketing_events",
        "raw",
        RAW_SCHEMA,
        "event_date",
        "One row per client interaction: channel, event type, device, campaign; partitioned by event date.",
    ),
    _daily_spec(
        "raw_campaign_touches",
        "raw",
        RAW_SCHEMA,
        "touch_date",
        "One row per marketing action taken (assigned at random, a logged experiment) with the observed "
        "response and the true response probability of every action for that client.",
    ),
    _daily_spec(
        "raw_outcomes",
        "raw",
        RAW_SCHEMA,
        "outcome_date",
        "One row per conversion to wealth advisory or churn (rollover out), with the probability that drew it.",
    ),
    _daily_spec(
        "raw_interventions",
        "raw",
        RAW_SCHEMA,
        "intervention_date",
        "One row per client assigned in the daily randomised intervention experiment: the arm (no_contact "
        "hold-out, advisor_outreach or retention_call) and its assignment probability, as a contact log.",
    ),
    _daily_spec(
        "true_daily_hazards",
        "ground_truth",
        TRUTH_SCHEMA,
        "as_of_date",
        "One row per active client per day: the true daily probability of conversion and churn that day "
        "(the oracle for model evaluation), and the same had no contact acted on the client (the base of "
        "every true intervention effect). Evaluation only.",
    ),
]

# the daily tables of the data contract (the hazards are the simulator's own truth)
CHECKED_DAILY_TABLES = ("marketing_events", "campaign_touches", "interventions", "outcomes")


def build_simulated_daily_activity(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=DAILY_SPECS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
        check_specs=[contract_check_spec(t) for t in CHECKED_DAILY_TABLES],
    )
    def simulated_daily_activity(context: dg.AssetExecutionContext, simulation: SimulationResource):
        first, last = partition_dates(context)
        context.log.info(f"Simulating {first}..{last} for {simulation.n_clients:,} clients")

        def progress(done: int, total: int) -> None:
            context.log.info(f"simulated client block {done}/{total}")

        config = simulation.config
        days = simulate_days(config, first, last, workers=simulation.workers or None, progress=progress)
        tables = {"clients": client_profiles(config, generate_population(config)), "marketing_events": days.events,
                  "campaign_touches": days.touches, "interventions": days.interventions, "outcomes": days.outcomes}
        reports = contract_reports(tables, list(CHECKED_DAILY_TABLES), contract_as_of(config, last))
        if any(r.violations for r in reports.values()):
            yield from contract_check_results(reports)
            fail_on_violations(reports)  # before any output: the warehouse keeps what it had
        summary = dg.MetadataValue.md(activity_summary(days))
        for name, frame in (
            ("raw_marketing_events", days.events),
            ("raw_campaign_touches", days.touches),
            ("raw_outcomes", days.outcomes),
            ("raw_interventions", days.interventions),
            ("true_daily_hazards", days.hazards),
        ):
            # Dagster writes each output (and a materialization per day) before the next: the write phase's progress
            context.log.info(f"writing {name}: {len(frame):,} rows of {first}..{last}")
            yield dg.Output(frame, output_name=name, metadata={"preview": preview(frame), "summary": summary})
        yield from contract_check_results(reports)

    return simulated_daily_activity

def clients_summary(clients: pd.DataFrame) -> str:
    numeric = clients[["annual_income", "balance_401k", "outside_assets", "contribution_rate", "tenure_years"]]
    stats = numeric.describe(percentiles=[0.5]).T[["mean", "50%", "min", "max"]].reset_index(names="attribute")
    tiers = clients["service_tier"].value_counts(normalize=True).rename("share").reset_index()
    return (
        f"**{len(clients):,} clients**\n\n{markdown_table(stats, 6)}\n\n**Service tier mix**\n\n{markdown_table(tiers)}"
    )

def activity_summary(days: SimulatedDays) -> str:
    """Event mix by channel and the outcome base rates of the simulated range."""
    events, outcomes, hazards, touches = days.events, days.outcomes, days.hazards, days.touches
    channels = events["channel"].value_counts(normalize=True).rename("share").reset_index()
    client_days = max(len(hazards), 1)
    rates = (
        outcomes.groupby("outcome_type").size().rename("count").reset_index()
        if len(outcomes)
        else pd.DataFrame({"outcome_type": [], "count": []})
    )
    rates["per 1,000 client-days"] = rates["count"] / client_days * 1000
    actions = touches.groupby("action")["responded"].agg(["size", "mean"]).reset_index()
    actions.columns = ["action", "touches", "response rate"]
    arms = days.interventions["intervention"].value_counts().rename("assignments").reset_index()
    return (
        f"**{len(events):,} events, {len(touches):,} touches, {len(outcomes):,} outcomes over "
        f"{client_days:,} active client-days**\n\n**Events by channel**\n\n{markdown_table(channels)}\n\n"
        f"**Outcome base rates**\n\n{markdown_table(rates)}\n\n**Random actions and responses**\n\n"
        f"{markdown_table(actions)}\n\n**Intervention experiment (randomised arms)**\n\n{markdown_table(arms)}"
    )
