"""Training as Dagster assets: thin wiring around `datasets`, `families`, `fitting` and `reports`.

Group `training`: `training_set_{conversion,churn,nba}` and, with ground truth, `nba_policy_evaluation_set`
(tables in the warehouse schema `training`, built by SQL), then one asset per task x family, all twelve made
by `build_model_asset`. The registry (`marketing_ml.registry.assets`) promotes the best of them.

`ground_truth` (`Settings.ground_truth`) says whether the simulator's truth exists beside the raw tables.
Without it (a provider's files) the training sets carry no oracle column, the policy evaluation set (true
response probabilities) is not in the graph, and next-best-action policies are valued by replay on the
held-out logged touches of `training_set_nba`.
"""

import datetime as dt

import dagster as dg
import pandas as pd
from pydantic import Field

from marketing_ml.features.catalog import FEATURE_MODEL
from marketing_ml.metadata import markdown_table
from marketing_ml.registry.frames import TrainingFrames, load_training_frames
from marketing_ml.registry.store import log_trained_model
from marketing_ml.registry.tasks import (
    HELD_OUT,
    LABEL,
    NBA,
    OUTCOME_TASKS,
    POLICY_SET,
    SPLIT,
    TASK_NAMES,
    TRAINING_SCHEMA,
    OutcomeTask,
    model_key,
    training_set_key,
    training_set_name,
    training_set_table,
)
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.training import datasets
from marketing_ml.training.families import FAMILIES, Family, FitOptions
from marketing_ml.training.fitting import train_action_model, train_outcome_model
from marketing_ml.training.reports import model_metadata, plan_metadata

FEATURES = dg.AssetKey(FEATURE_MODEL)
GROUP = "training"


class OutcomeTrainingSetConfig(dg.Config):
    horizon_days: int | None = Field(
        default=None, description="Label window [D, D + horizon) in days; default 30 for conversion, 90 for churn."
    )
    every_days: int = Field(default=7, description="Days between observation dates.")
    warmup_days: int = Field(default=90, description="Days of history before the first observation date, so the "
                             "longest feature window (90 days) is complete.")
    test_dates: int = Field(default=4, description="Latest observation dates held out as the out-of-time test slice "
                            "(every reported figure).")
    selection_dates: int = Field(default=2, description="Observation dates before the test slice, held out for "
                                 "choosing the champion.")
    validation_dates: int = Field(default=2, description="Latest observation dates before the test gap whose "
                                  "held-out clients form the validation slice (early stopping, calibration).")
    validation_share: float = Field(default=0.25, description="Share of clients held out of training for the "
                                    "validation slice.")
    max_train_rows: int = Field(default=300_000, description="Uniform sample cap of the training slice.")
    max_validation_rows: int = Field(default=100_000, description="Uniform sample cap of the validation slice.")
    max_test_rows: int = Field(default=250_000, description="Uniform sample cap of the test slice.")
    max_selection_rows: int = Field(default=250_000, description="Uniform sample cap of the selection slice.")
    fit_to_history: bool = Field(default=True, description="Shorten horizon and warm-up to fit a short history "
                                 "(noted in the metadata) instead of failing.")


class TouchTrainingSetConfig(dg.Config):
    warmup_days: int = Field(default=90, description="Days of history before the first training touch.")
    validation_days: int = Field(default=28, description="Touch days before the test slice, for early stopping and calibration.")
    test_days: int = Field(default=56, description="Latest touch days held out as the out-of-time test slice.")
    selection_days: int = Field(default=28, description="Touch days before the test slice, held out for choosing "
                                "the champion.")
    max_train_rows: int = Field(default=300_000, description="Uniform sample cap of the training touches.")
    max_validation_rows: int = Field(default=100_000, description="Uniform sample cap of the validation touches.")
    max_test_rows: int = Field(default=200_000, description="Uniform sample cap of the test touches.")
    max_selection_rows: int = Field(default=200_000, description="Uniform sample cap of the selection touches.")
    fit_to_history: bool = Field(default=True, description="Scale the windows down to fit a short history.")


class PolicySetConfig(dg.Config):
    every_days: int = Field(default=7, description="Days between the test dates whose active clients form the "
                            "policy evaluation population.")
    max_rows: int = Field(default=100_000, description="Uniform sample cap of the policy population, per slice.")


class ModelConfig(dg.Config):
    seed: int = Field(default=7, description="Seed of every random choice in fitting.")
    threads: int = Field(default=2, description="Threads for XGBoost, the random forest and PyTorch.")


def build_outcome_training_set(task: OutcomeTask, ground_truth: bool) -> dg.AssetsDefinition:
    truth = ", and the simulator's true hazard at D (evaluation only)" if ground_truth else ""

    @dg.asset(
        name=training_set_name(task.name),
        group_name=GROUP,
        kinds={"sql", "duckdb"},
        deps=[FEATURES, "raw_outcomes", *(["true_daily_hazards"] if ground_truth else [])],
        metadata={"schema": TRAINING_SCHEMA},
        description=(
            f"One row per (client, observation date D) for clients active at D{' and not yet converted' if task.unconverted_only else ''}: "
            f"the features as of D, label = {task.outcome_type} in [D, D + horizon), the out-of-time slice{truth}. "
            f"Table {training_set_table(task.name)}."
        ),
    )
    def training_set(context: dg.AssetExecutionContext, config: OutcomeTrainingSetConfig,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
        first, last = datasets.history_bounds(warehouse)
        plan = datasets.plan_observations(
            first, last, horizon_days=config.horizon_days or task.default_horizon_days, every_days=config.every_days,
            warmup_days=config.warmup_days, test_dates=config.test_dates, validation_dates=config.validation_dates,
            selection_dates=config.selection_dates, fit_to_history=config.fit_to_history,
        )
        for note in plan.notes:
            context.log.warning(note)
        table = training_set_table(task.name)
        context.log.info(f"{table}: {sum(len(d) for d in plan.dates.values())} observation dates, horizon "
                         f"{plan.horizon_days} days, history {first}..{last}")
        warehouse.execute(f"create schema if not exists {TRAINING_SCHEMA}")
        warehouse.execute(datasets.outcome_training_set_sql(
            task, plan, table,
            {"train": config.max_train_rows, "validation": config.max_validation_rows,
             "selection": config.max_selection_rows, "test": config.max_test_rows},
            config.validation_share, ground_truth=ground_truth,
        ))
        summary = datasets.slice_summary(warehouse, table, "as_of_date")
        return dg.MaterializeResult(metadata=plan_metadata(plan, summary) | {"horizon_days": plan.horizon_days})

    return training_set


def build_touch_training_set(ground_truth: bool) -> dg.AssetsDefinition:
    truth = ", and the true response probability of that action (evaluation only)" if ground_truth else ""

    @dg.asset(
        name=training_set_name(NBA),
        group_name=GROUP,
        kinds={"sql", "duckdb"},
        deps=[FEATURES, "raw_campaign_touches"],
        metadata={"schema": TRAINING_SCHEMA},
        description=(
            "One row per logged random campaign touch: the client's features as of the touch date, the action, "
            f"whether the client responded (label), the slice by touch date{truth}. Table "
            f"{training_set_table(NBA)}."
        ),
    )
    def training_set_nba(context: dg.AssetExecutionContext, config: TouchTrainingSetConfig,
                         warehouse: WarehouseResource) -> dg.MaterializeResult:
        first, last = datasets.history_bounds(warehouse)
        plan = datasets.plan_touches(
            first, last, warmup_days=config.warmup_days, validation_days=config.validation_days,
            test_days=config.test_days, selection_days=config.selection_days, fit_to_history=config.fit_to_history,
        )
        for note in plan.notes:
            context.log.warning(note)
        table = training_set_table(NBA)
        warehouse.execute(f"create schema if not exists {TRAINING_SCHEMA}")
        warehouse.execute(datasets.touch_training_set_sql(
            plan, table,
            {"train": config.max_train_rows, "validation": config.max_validation_rows,
             "selection": config.max_selection_rows, "test": config.max_test_rows},
            ground_truth=ground_truth,
        ))
        summary = datasets.slice_summary(warehouse, table, "as_of_date")
        by_action = warehouse.query(
            f"select {SPLIT}, action, count(*) as touches, avg(cast({LABEL} as double)) as response_rate "
            f"from {table} group by all order by 1, 2"
        )
        return dg.MaterializeResult(
            metadata=plan_metadata(plan, summary) | {"responses by action": dg.MetadataValue.md(markdown_table(by_action))}
        )

    return training_set_nba


@dg.asset(
    name=POLICY_SET,
    group_name=GROUP,
    kinds={"sql", "duckdb"},
    deps=[FEATURES, "true_client_traits", training_set_key(NBA)],
    metadata={"schema": TRAINING_SCHEMA},
    description=(
        "One row per client active on a selection or test date of the next-best-action training set: the "
        "features as of that date, the slice, and the simulator's true response probability of every action "
        "and best action (evaluation only), to value a policy against random assignment and the oracle."
    ),
)
def nba_policy_evaluation_set(context: dg.AssetExecutionContext, config: PolicySetConfig,
                              warehouse: WarehouseResource) -> dg.MaterializeResult:
    # the held-out periods of the touches as built, so both tables always describe the same dates
    held = warehouse.query(
        f"select {SPLIT}, min(as_of_date) as first, max(as_of_date) as last from {training_set_table(NBA)} "
        f"where {SPLIT} in {HELD_OUT} group by 1"
    )
    dates = {row[SPLIT]: datasets.population_dates(pd.Timestamp(row["first"]).date(), pd.Timestamp(row["last"]).date(),
                                                   config.every_days) for _, row in held.iterrows()}
    table = f"{TRAINING_SCHEMA}.{POLICY_SET}"
    warehouse.execute(datasets.policy_population_sql(dates, table, config.max_rows))
    summary = warehouse.query(
        f"select {SPLIT}, as_of_date, count(*) as clients from {table} group by all order by 2"
    )
    best = warehouse.query(f"select oracle_best_action, count(*) as clients from {table} group by 1 order by 2 desc")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": int(summary["clients"].sum()),
        "dates": dg.MetadataValue.md(markdown_table(summary)),
        "oracle best action mix": dg.MetadataValue.md(markdown_table(best)),
    })


def build_model_asset(task: str, family: Family, ground_truth: bool) -> dg.AssetsDefinition:
    deps = [training_set_key(task)] + ([dg.AssetKey(POLICY_SET)] if task == NBA and ground_truth else [])
    judged_beside = "the oracle and a trivial baseline" if ground_truth else "a trivial baseline (no oracle: no ground truth)"
    question = "next best action (response per action)" if task == NBA else OUTCOME_TASKS[task].question

    @dg.asset(
        name=model_key(task, family.name).path[0],
        group_name=GROUP,
        kinds={"python", family.library, "mlflow"},
        deps=deps,
        description=(
            f"{task} / {family.name}: {family.description} Answers: {question} Trained on the training set's "
            "train slice, judged on its out-of-time test slice (later than the selection slice the champion is "
            f"chosen on) beside {judged_beside}; logged to MLflow as a pyfunc model."
        ),
    )
    def model(context: dg.AssetExecutionContext, config: ModelConfig, warehouse: WarehouseResource,
              mlflow: MLflowResource) -> dg.MaterializeResult:
        context.log.info(f"training {task}/{family.name}: {model_progress(context)}")
        frames, lineage = _last_frames.load(context, warehouse, task, ground_truth, deps)
        options = FitOptions(seed=config.seed, threads=config.threads, log=context.log.info)
        context.log.info(f"{task}/{family.name}: {len(frames.train):,} train, {len(frames.validation):,} validation, "
                         f"{len(frames.test):,} test rows, {len(frames.spec.all)} features")
        began = dt.datetime.now()
        if task == NBA:
            trained = train_action_model(family, frames, options)
        else:
            trained = train_outcome_model(OUTCOME_TASKS[task], family, frames, frames.horizon_days, options)
        seconds = (dt.datetime.now() - began).total_seconds()
        trained.metrics["training_seconds"] = seconds
        oracle = f" (oracle {trained.metrics['oracle_auc']:.4f})" if ground_truth else ""
        context.log.info(f"{task}/{family.name}: test AUC {trained.metrics['auc']:.4f}{oracle} in {seconds:.1f}s; "
                         "logging to MLflow")
        log_began = dt.datetime.now()
        logged = log_trained_model(
            mlflow, trained, library=family.library,
            params={**family.params, "seed": config.seed, "features": len(frames.spec.all)},
            tags={**lineage, "dagster.run_id": context.run.run_id, "dagster.asset_key": context.asset_key.to_user_string()},
            input_example=frames.test,
        )
        context.log.info(f"{task}/{family.name}: logged in {(dt.datetime.now() - log_began).total_seconds():.1f}s")
        return dg.MaterializeResult(metadata=model_metadata(trained, seconds, logged.run_id, logged.model_uri))

    return model


class _LastTrainingFrames:
    """The training frames the previous model asset in this process read, handed to the next one of its task.

    The four families of a task read the same training set, and under the in-process executor (DuckDB) they
    run one after the other in one process: the later ones take the frames the first read instead of
    reading the tables again. The key is the latest materialization of each table read (the training set,
    and the policy evaluation set for the next best action), so a rebuilt table is read afresh; one task's
    frames are kept, not all (hundreds of MB each at the default scale). Training only reads the frames
    (every slice it fits on is a copy), so handing them on cannot change a model.
    """

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: tuple[TrainingFrames, dict[str, str]] | None = None

    def load(self, context: dg.AssetExecutionContext, warehouse: WarehouseResource, task: str, ground_truth: bool,
             tables: list[dg.AssetKey]) -> tuple[TrainingFrames, dict[str, str]]:
        built = [context.instance.get_latest_materialization_event(t) for t in tables]
        key = None if None in built else (task, ground_truth, *((b.run_id, b.timestamp) for b in built))
        if key is not None and key == self.key:
            context.log.info(f"{task}: the training frames the previous model of this task read")
            return self.value
        self.key, self.value = None, None  # the previous task's frames go before the next are read
        began = dt.datetime.now()
        self.value = load_training_frames(warehouse, task, ground_truth=ground_truth)
        self.key = key
        context.log.info(f"{task}: training frames read in {(dt.datetime.now() - began).total_seconds():.1f}s")
        return self.value


_last_frames = _LastTrainingFrames()


def model_progress(context: dg.AssetExecutionContext) -> str:
    """'model k of n': n is how many model assets (task x family) this run materializes, k how many of them
    it has materialized so far, plus this one. The DuckDB runs train them one at a time (in-process
    executor), so k is this model's place in the sequence."""
    models = {model_key(task, family) for task in TASK_NAMES for family in FAMILIES}
    in_run = models & set(context.job_def.asset_layer.selected_asset_keys)
    materialized = context.instance.get_records_for_run(
        context.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    done = {r.event_log_entry.dagster_event.asset_key for r in materialized} & in_run
    return f"model {len(done) + 1} of {len(in_run)} in this run"


def training_assets(ground_truth: bool) -> list[dg.AssetsDefinition]:
    """Every asset of the `training` group; the policy evaluation set only with ground truth."""
    return [
        *(build_outcome_training_set(t, ground_truth) for t in OUTCOME_TASKS.values()),
        build_touch_training_set(ground_truth),
        *([nba_policy_evaluation_set] if ground_truth else []),
        *(build_model_asset(task, family, ground_truth) for task in TASK_NAMES for family in FAMILIES.values()),
    ]
