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
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.simulation.effects import shift_frame
from marketing_ml.simulation.config import SimulationConfig
from marketing_ml.simulation.engine import simulate_blocks
from marketing_ml.simulation.population import client_profiles, client_truth, generate_population
from marketing_ml.sources.checks import contract_check_results, contract_check_spec, fail_on_violations
from marketing_ml.sources.contract import CONTRACT
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
    # no IO manager: `simulated_daily_activity` writes the table itself, block by block (see there)
    return dg.AssetSpec(
        name,
        group_name=group,
        kinds={"python", "duckdb"},
        deps=[raw_clients],
        description=description,
        metadata={"schema": schema, "partition_expr": partition_column},
    )

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


# the block rows of a run wait here until every block is written and checked; then one transaction moves
# them into the daily tables (a schema of its own, so a killed run's leftovers never mix with the tables)
STAGING_SCHEMA = "simulation_staging"
# the warehouse's buffers while it stages and copies them: the copy streams, a cache of its size only costs RAM
STAGING_MEMORY_LIMIT = "1GB"
# output name -> the `SimulatedDays` field that holds its rows
DAILY_FRAMES = {"raw_marketing_events": "events", "raw_campaign_touches": "touches", "raw_outcomes": "outcomes",
                "raw_interventions": "interventions", "true_daily_hazards": "hazards"}


def build_simulated_daily_activity(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.multi_asset(
        specs=DAILY_SPECS,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=False,
        check_specs=[contract_check_spec(t) for t in CHECKED_DAILY_TABLES],
    )
    def simulated_daily_activity(
        context: dg.AssetExecutionContext, simulation: SimulationResource, warehouse: WarehouseResource
    ):
        """The five daily tables of the run's range, streamed to the warehouse one client block at a time.

        A year of a million clients is tens of gigabytes as frames, so no step may hold the range: each
        block is checked against the contract and appended to a staging table as it arrives, and once
        every block is there one transaction replaces the range's rows of all five tables with the
        staged ones. A failed or killed run leaves the tables as they were (the staging tables are
        dropped, or replaced by the next run), and a re-run replaces its days, never duplicates them.
        """
        first, last = partition_dates(context)
        config = simulation.config
        context.log.info(f"Simulating {first}..{last} for {simulation.n_clients:,} clients in {config.n_blocks} blocks")
        staged = {name: f"{STAGING_SCHEMA}.{name}" for name in DAILY_FRAMES}
        rows = dict.fromkeys(DAILY_FRAMES, 0)
        previews: dict[str, pd.DataFrame] = {}
        # nothing is yielded inside the session (see `session`): a broken block's reports wait for its end
        with warehouse.bulk_session(STAGING_MEMORY_LIMIT):
            warehouse.execute(f"create schema if not exists {STAGING_SCHEMA}")
            for table in staged.values():
                warehouse.execute(f"drop table if exists {table}")  # what a killed run left
            try:
                broken = _stage_blocks(context, simulation, warehouse, staged, rows, previews)
                if not broken:
                    summary = dg.MetadataValue.md(activity_summary(warehouse, staged))
                    context.log.info(f"replacing {first}..{last} of the daily tables with the "
                                     f"{sum(rows.values()):,} staged rows")
                    replacing = [_replace_range_sql(name, table, list(previews[name].columns), first, last)
                                 for name, table in staged.items()]
                    # the tables first (empty, if new): DDL in a transaction commits it on Snowflake
                    warehouse.execute_atomically([statement for create, _ in replacing for statement in create])
                    warehouse.execute_atomically([statement for _, replace in replacing for statement in replace])
            finally:
                for table in staged.values():
                    warehouse.execute(f"drop table if exists {table}")
        if broken:
            yield from contract_check_results(broken)
            fail_on_violations(broken)  # the tables were not replaced: the warehouse keeps what it had
        for name in DAILY_FRAMES:
            yield dg.Output(None, output_name=name, metadata={"preview": preview(previews[name]), "summary": summary,
                                                              "rows": rows[name]})
        yield from contract_check_results({
            table: TableReport(table, (), rows[CONTRACT[table].metadata["asset"]]) for table in CHECKED_DAILY_TABLES
        })

    return simulated_daily_activity


def _stage_blocks(context: dg.AssetExecutionContext, simulation: SimulationResource, warehouse: WarehouseResource,
                  staged: dict[str, str], rows: dict[str, int], previews: dict[str, pd.DataFrame]
                  ) -> dict[str, TableReport] | None:
    """Simulate the run's range block by block, appending each block's rows to the `staged` tables and
    counting them into `rows` (and the first block's first rows into `previews`); the contract reports
    of the first block that breaks the contract, before it is staged, else None."""
    first, last = partition_dates(context)
    config = simulation.config
    clients = client_profiles(config, generate_population(config))
    as_of = contract_as_of(config, last)
    for done, (block, days) in enumerate(
        simulate_blocks(config, first, last, workers=simulation.workers or None), start=1
    ):
        frames = {name: getattr(days, field) for name, field in DAILY_FRAMES.items()}
        lo, hi = config.block_bounds(block)
        # checked against the block's own clients: a block's rows are of its clients only
        tables = {"clients": clients.iloc[lo:hi],
                  **{t: frames[CONTRACT[t].metadata["asset"]] for t in CHECKED_DAILY_TABLES}}
        reports = contract_reports(tables, list(CHECKED_DAILY_TABLES), as_of)
        if any(r.violations for r in reports.values()):
            return reports
        warehouse.append({staged[name]: frame for name, frame in frames.items()})
        for name, frame in frames.items():
            rows[name] += len(frame)
            previews.setdefault(name, frame.head(10))
        context.log.info(f"client block {done}/{config.n_blocks}: {sum(map(len, frames.values())):,} rows "
                         f"staged, {sum(rows.values()):,} so far")
    return None


def _replace_range_sql(name: str, staged: str, columns: list[str], first: dt.date, last: dt.date
                       ) -> tuple[list[tuple[str, list]], list[tuple[str, list]]]:
    """The statements that create the daily table `name` if it is new, and those that replace its days
    first..last with its staged rows."""
    metadata = next(spec.metadata for spec in DAILY_SPECS if spec.key.path[-1] == name)
    schema, date_column = metadata["schema"], metadata["partition_expr"]
    table, listed = f"{schema}.{name}", ", ".join(columns)
    create = [(f"create schema if not exists {schema}", []),
              (f"create table if not exists {table} as select {listed} from {staged} limit 0", [])]
    # in date order, as one frame of the range was written: the blocks' rows arrive client block by client
    # block, and date-filtered reads (the features' windows) skip storage by its date ranges. The hazards,
    # by far the largest table, stay in block order, as they were before blocks were streamed.
    order = "" if name == "true_daily_hazards" else f" order by {date_column}, client_id"
    replace = [(f"delete from {table} where {date_column} between ? and ?", [first, last]),
               (f"insert into {table} ({listed}) select {listed} from {staged}{order}", [])]
    return create, replace


def clients_summary(clients: pd.DataFrame) -> str:
    numeric = clients[["annual_income", "balance_401k", "outside_assets", "contribution_rate", "tenure_years"]]
    stats = numeric.describe(percentiles=[0.5]).T[["mean", "50%", "min", "max"]].reset_index(names="attribute")
    tiers = clients["service_tier"].value_counts(normalize=True).rename("share").reset_index()
    return (
        f"**{len(clients):,} clients**\n\n{markdown_table(stats, 6)}\n\n**Service tier mix**\n\n{markdown_table(tiers)}"
    )

def activity_summary(warehouse: WarehouseResource, staged: dict[str, str]) -> str:
    """Event mix by channel and the outcome base rates of the simulated range, counted in the warehouse
    over the staged rows (`staged`: output name -> table), which no process holds at once."""
    channels = warehouse.query(f"select channel, count(*) as n from {staged['raw_marketing_events']} group by channel")
    channels = channels.assign(share=channels["n"] / channels["n"].sum()).sort_values("share", ascending=False)
    client_days = max(int(warehouse.query(f"select count(*) as n from {staged['true_daily_hazards']}")["n"].iloc[0]), 1)
    rates = warehouse.query(f"select outcome_type, count(*) as count from {staged['raw_outcomes']} "
                            "group by outcome_type order by outcome_type")
    rates["per 1,000 client-days"] = rates["count"] / client_days * 1000
    actions = warehouse.query(f"select action, count(*) as touches, avg(case when responded then 1.0 else 0.0 end) "
                              f"as response_rate from {staged['raw_campaign_touches']} group by action order by action")
    actions = actions.rename(columns={"response_rate": "response rate"})
    arms = warehouse.query(f"select intervention, count(*) as assignments from {staged['raw_interventions']} "
                           "group by intervention order by assignments desc")
    n_events, n_outcomes = int(channels["n"].sum()), int(rates["count"].sum())
    return (
        f"**{n_events:,} events, {int(actions['touches'].sum()):,} touches, {n_outcomes:,} outcomes over "
        f"{client_days:,} active client-days**\n\n**Events by channel**\n\n{markdown_table(channels[['channel', 'share']])}\n\n"
        f"**Outcome base rates**\n\n{markdown_table(rates)}\n\n**Random actions and responses**\n\n"
        f"{markdown_table(actions)}\n\n**Intervention experiment (randomised arms)**\n\n{markdown_table(arms)}"
    )
