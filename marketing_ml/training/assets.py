"""Training and registry as Dagster assets: thin wiring around `datasets`, `tasks` and `registry`.

Group `training`: `training_set_{conversion,churn,nba}` and `nba_policy_evaluation_set` (tables in the
warehouse schema `training`, built by SQL), then one asset per task x family, all twelve made by
`build_model_asset`. Group `registry`: `{task}_champion`, which promotes the best family of the latest
training to `models:/<task>@champion` behind blocking asset checks (the gate).
"""

import datetime as dt

import dagster as dg
import pandas as pd
from pydantic import Field

from marketing_ml.metadata import figure_markdown, markdown_table
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.training import datasets
from marketing_ml.training.datasets import TRAINING_SCHEMA, ObservationPlan, TouchPlan
from marketing_ml.training.evaluation import oracle_horizon_probability
from marketing_ml.training.families import FAMILIES, Family, FitOptions
from marketing_ml.training.features import feature_catalog_version, model_feature_spec
from marketing_ml.training.registry import Candidate, GateThresholds, log_trained_model, promote
from marketing_ml.training.tasks import (
    LABEL,
    NBA,
    ORACLE,
    OUTCOME_TASKS,
    PRIMARY_METRIC,
    SPLIT,
    TASK_NAMES,
    OutcomeTask,
    TrainedModel,
    TrainingFrames,
    gate_metrics,
    train_action_model,
    train_outcome_model,
)

FEATURES = dg.AssetKey("client_features_daily")
TRAINING_GROUP = "training"
REGISTRY_GROUP = "registry"
POLICY_SET = "nba_policy_evaluation_set"
GATE_CHECKS = {
    "auc_vs_oracle": "The best candidate's AUC is at least a set fraction of the oracle's AUC on the same test rows.",
    "calibration": "The best candidate's expected calibration error is within a bound of the oracle's (sampling noise).",
    "not_worse_than_champion": "The best candidate is not worse than the current champion on the same test rows.",
}


def training_set_key(task: str) -> dg.AssetKey:
    return dg.AssetKey(f"training_set_{task}")


def model_key(task: str, family: str) -> dg.AssetKey:
    return dg.AssetKey(f"{task}_{family}")


def _table(name: str) -> str:
    return f"{TRAINING_SCHEMA}.{name}"


class OutcomeTrainingSetConfig(dg.Config):
    horizon_days: int | None = Field(
        default=None, description="Label window [D, D + horizon) in days; default 30 for conversion, 90 for churn."
    )
    every_days: int = Field(default=7, description="Days between observation dates.")
    warmup_days: int = Field(default=90, description="Days of history before the first observation date, so the "
                             "longest feature window (90 days) is complete.")
    test_dates: int = Field(default=4, description="Latest observation dates held out as the out-of-time test slice.")
    validation_dates: int = Field(default=2, description="Latest observation dates before the test gap whose "
                                  "held-out clients form the validation slice (early stopping, calibration).")
    validation_share: float = Field(default=0.25, description="Share of clients held out of training for the "
                                    "validation slice.")
    max_train_rows: int = Field(default=300_000, description="Uniform sample cap of the training slice.")
    max_validation_rows: int = Field(default=100_000, description="Uniform sample cap of the validation slice.")
    max_test_rows: int = Field(default=250_000, description="Uniform sample cap of the test slice.")
    fit_to_history: bool = Field(default=True, description="Shorten horizon and warm-up to fit a short history "
                                 "(noted in the metadata) instead of failing.")


class TouchTrainingSetConfig(dg.Config):
    warmup_days: int = Field(default=90, description="Days of history before the first training touch.")
    validation_days: int = Field(default=28, description="Touch days before the test slice, for early stopping and calibration.")
    test_days: int = Field(default=56, description="Latest touch days held out as the out-of-time test slice.")
    max_train_rows: int = Field(default=300_000, description="Uniform sample cap of the training touches.")
    max_validation_rows: int = Field(default=100_000, description="Uniform sample cap of the validation touches.")
    max_test_rows: int = Field(default=200_000, description="Uniform sample cap of the test touches.")
    fit_to_history: bool = Field(default=True, description="Scale the windows down to fit a short history.")


class PolicySetConfig(dg.Config):
    every_days: int = Field(default=7, description="Days between the test dates whose active clients form the "
                            "policy evaluation population.")
    max_rows: int = Field(default=100_000, description="Uniform sample cap of the policy population.")


class ModelConfig(dg.Config):
    seed: int = Field(default=7, description="Seed of every random choice in fitting.")
    threads: int = Field(default=2, description="Threads for XGBoost, the random forest and PyTorch.")


class GateConfig(dg.Config):
    min_auc_ratio_to_oracle: float = Field(default=0.85, description="AUC floor as a fraction of the oracle AUC.")
    max_calibration_error: float = Field(default=0.02, description="How far the expected calibration error may "
                                         "exceed the oracle's on the same rows (its sampling noise).")
    champion_tolerance: float = Field(default=0.005, description="How much lower than the current champion's "
                                      "primary metric a candidate may score and still replace it.")


def history_bounds(warehouse: WarehouseResource) -> tuple[dt.date, dt.date]:
    """First and last day of the built history (events are written for every simulated day)."""
    bounds = warehouse.query("select min(event_date) as first, max(event_date) as last from raw.raw_marketing_events")
    first, last = bounds.iloc[0]["first"], bounds.iloc[0]["last"]
    if pd.isna(first):
        raise dg.Failure("raw.raw_marketing_events is empty: run the data and features steps first "
                         "(marketing-ml run --step data --step features).")
    return pd.Timestamp(first).date(), pd.Timestamp(last).date()


def _split_summary(warehouse: WarehouseResource, table: str, date_column: str) -> pd.DataFrame:
    summary = warehouse.query(
        f"select {SPLIT}, count(*) as row_count, sum(cast({LABEL} as integer)) as positives, "
        f"min({date_column}) as first_date, max({date_column}) as last_date, "
        f"count(distinct {date_column}) as dates from {table} group by {SPLIT}"
    )
    summary["rate"] = summary["positives"] / summary["row_count"]
    order = {s: i for i, s in enumerate(("train", "validation", "test"))}
    summary = summary.sort_values(SPLIT, key=lambda s: s.map(order)).reset_index(drop=True)
    missing = {"train", "validation", "test"} - set(summary[SPLIT])
    if missing:
        raise dg.Failure(f"{table}: no rows in the {', '.join(sorted(missing))} slice(s); are the features built for "
                         "the whole history? (marketing-ml run --step features)")
    return summary


def _plan_metadata(plan: ObservationPlan | TouchPlan, summary: pd.DataFrame) -> dict[str, object]:
    described = (
        {"horizon_days": plan.horizon_days, "warmup_days": plan.warmup_days, "every_days": plan.every_days,
         "dates": {k: [d.isoformat() for d in v] for k, v in plan.dates.items()}}
        if isinstance(plan, ObservationPlan)
        else {"ranges": {k: [a.isoformat(), b.isoformat()] for k, (a, b) in plan.ranges.items()}}
    )
    metadata: dict[str, object] = {
        "dagster/row_count": int(summary["row_count"].sum()),
        "slices": dg.MetadataValue.md(markdown_table(summary)),
        "plan": dg.MetadataValue.json(described),
    }
    if plan.notes:
        metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {n}" for n in plan.notes))
    return metadata


def build_outcome_training_set(task: OutcomeTask) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"training_set_{task.name}",
        group_name=TRAINING_GROUP,
        kinds={"sql", "duckdb"},
        deps=[FEATURES, dg.AssetKey("raw_outcomes"), dg.AssetKey("true_daily_hazards")],
        metadata={"schema": TRAINING_SCHEMA},
        description=(
            f"One row per (client, observation date D) for clients active at D{' and not yet converted' if task.unconverted_only else ''}: "
            f"the features as of D, label = {task.outcome_type} in [D, D + horizon), the out-of-time slice, "
            "and the simulator's true hazard at D (evaluation only). Table training."
            f"training_set_{task.name}."
        ),
    )
    def training_set(context: dg.AssetExecutionContext, config: OutcomeTrainingSetConfig,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
        first, last = history_bounds(warehouse)
        plan = datasets.plan_observations(
            first, last, horizon_days=config.horizon_days or task.default_horizon_days, every_days=config.every_days,
            warmup_days=config.warmup_days, test_dates=config.test_dates, validation_dates=config.validation_dates,
            fit_to_history=config.fit_to_history,
        )
        for note in plan.notes:
            context.log.warning(note)
        table = _table(f"training_set_{task.name}")
        context.log.info(f"{table}: {sum(len(d) for d in plan.dates.values())} observation dates, horizon "
                         f"{plan.horizon_days} days, history {first}..{last}")
        warehouse.execute(f"create schema if not exists {TRAINING_SCHEMA}")
        warehouse.execute(datasets.outcome_training_set_sql(
            task, plan, table,
            {"train": config.max_train_rows, "validation": config.max_validation_rows, "test": config.max_test_rows},
            config.validation_share,
        ))
        summary = _split_summary(warehouse, table, "as_of_date")
        return dg.MaterializeResult(metadata=_plan_metadata(plan, summary) | {"horizon_days": plan.horizon_days})

    return training_set


@dg.asset(
    name="training_set_nba",
    group_name=TRAINING_GROUP,
    kinds={"sql", "duckdb"},
    deps=[FEATURES, dg.AssetKey("raw_campaign_touches")],
    metadata={"schema": TRAINING_SCHEMA},
    description=(
        "One row per logged random campaign touch: the client's features as of the touch date, the action, "
        "whether the client responded (label), the slice by touch date, and the true response probability "
        "of that action (evaluation only). Table training.training_set_nba."
    ),
)
def training_set_nba(context: dg.AssetExecutionContext, config: TouchTrainingSetConfig,
                     warehouse: WarehouseResource) -> dg.MaterializeResult:
    first, last = history_bounds(warehouse)
    plan = datasets.plan_touches(
        first, last, warmup_days=config.warmup_days, validation_days=config.validation_days,
        test_days=config.test_days, fit_to_history=config.fit_to_history,
    )
    for note in plan.notes:
        context.log.warning(note)
    table = _table("training_set_nba")
    warehouse.execute(f"create schema if not exists {TRAINING_SCHEMA}")
    warehouse.execute(datasets.touch_training_set_sql(
        plan, table,
        {"train": config.max_train_rows, "validation": config.max_validation_rows, "test": config.max_test_rows},
    ))
    summary = _split_summary(warehouse, table, "as_of_date")
    by_action = warehouse.query(
        f"select {SPLIT}, action, count(*) as touches, avg(cast({LABEL} as double)) as response_rate "
        f"from {table} group by all order by 1, 2"
    )
    return dg.MaterializeResult(
        metadata=_plan_metadata(plan, summary) | {"responses by action": dg.MetadataValue.md(markdown_table(by_action))}
    )


@dg.asset(
    name=POLICY_SET,
    group_name=TRAINING_GROUP,
    kinds={"sql", "duckdb"},
    deps=[FEATURES, dg.AssetKey("true_client_traits"), training_set_key(NBA)],
    metadata={"schema": TRAINING_SCHEMA},
    description=(
        "One row per client active on a test date of the next-best-action training set: the features as of "
        "that date and the simulator's true response probability of every action and best action "
        "(evaluation only), to value a policy against random assignment and the oracle."
    ),
)
def nba_policy_evaluation_set(context: dg.AssetExecutionContext, config: PolicySetConfig,
                              warehouse: WarehouseResource) -> dg.MaterializeResult:
    # the test period of the touches as built, so both tables always describe the same dates
    test = warehouse.query(
        f"select min(as_of_date) as first, max(as_of_date) as last from {_table('training_set_nba')} "
        f"where {SPLIT} = 'test'"
    ).iloc[0]
    dates = datasets.population_dates(pd.Timestamp(test["first"]).date(), pd.Timestamp(test["last"]).date(),
                                      config.every_days)
    table = _table(POLICY_SET)
    warehouse.execute(datasets.policy_population_sql(dates, table, config.max_rows))
    summary = warehouse.query(
        f"select as_of_date, count(*) as clients from {table} group by 1 order by 1"
    )
    best = warehouse.query(f"select oracle_best_action, count(*) as clients from {table} group by 1 order by 2 desc")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": int(summary["clients"].sum()),
        "dates": dg.MetadataValue.md(markdown_table(summary)),
        "oracle best action mix": dg.MetadataValue.md(markdown_table(best)),
    })


def load_training_frames(warehouse: WarehouseResource, task: str, splits: tuple[str, ...] | None = None) -> tuple[TrainingFrames, dict[str, str]]:
    """The task's training set (optionally only some slices) as frames, and its lineage for MLflow tags."""
    where = f" where {SPLIT} in ({', '.join(repr(s) for s in splits)})" if splits else ""
    # a stable row order: bootstrap samples, subsampling and batch order follow it, so results repeat
    order = " order by as_of_date, client_id" + (", touch_id" if task == NBA else "")
    table = warehouse.query(f"select * from {_table(f'training_set_{task}')}{where}{order}")
    population = (
        warehouse.query(f"select * from {_table(POLICY_SET)} order by as_of_date, client_id") if task == NBA else None
    )
    if task != NBA:
        horizon = (pd.to_datetime(table[datasets.LABEL_END]) - pd.to_datetime(table["as_of_date"])).dt.days
        table[ORACLE] = oracle_horizon_probability(table[datasets.ORACLE_HAZARD], horizon.to_numpy())
    spec = model_feature_spec(table)
    dates = pd.to_datetime(table["as_of_date"])
    lineage = {
        "data.training_set": _table(f"training_set_{task}"),
        "data.partition_range": f"{dates.min().date()}..{dates.max().date()}",
        **{f"data.{s}_dates": f"{dates[table[SPLIT] == s].min().date()}..{dates[table[SPLIT] == s].max().date()}"
           for s in table[SPLIT].unique()},
        "features.catalog_version": feature_catalog_version(),
    }
    return TrainingFrames.from_table(table, spec, population), lineage


def _horizon(frames: TrainingFrames) -> int:
    row = frames.test.iloc[0]
    return int((pd.Timestamp(row[datasets.LABEL_END]) - pd.Timestamp(row["as_of_date"])).days)


def _importance_table(importance: pd.Series, top: int = 15) -> dg.TableMetadataValue:
    head = importance.head(top)
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"feature": str(k), "importance": round(float(v), 4)}) for k, v in head.items()],
        schema=dg.TableSchema(columns=[dg.TableColumn("feature", "string"), dg.TableColumn("importance", "float")]),
    )


def model_metadata(trained: TrainedModel, seconds: float, run_id: str, model_uri: str) -> dict[str, object]:
    """What the UI shows for a trained model: its metrics beside the oracle's and the baseline's, plots."""
    headline = ("auc", "oracle_auc", "baseline_auc", "auc_ratio_to_oracle", "pr_auc", "log_loss", "brier",
                "accuracy", "calibration_error", "oracle_calibration_error", "policy_value", "policy_value_random",
                "policy_value_baseline", "policy_value_oracle", "captured_lift", "policy_accuracy")
    plots = "\n\n".join(figure_markdown(fig, name) for name, fig in trained.figures.items())
    comparison = trained.comparison.reset_index(names="metric")
    extra = "\n\n".join(f"**{name.replace('_', ' ')}**\n\n{markdown_table(t)}" for name, t in trained.tables.items())
    return {
        **{k: dg.MetadataValue.float(trained.metrics[k]) for k in headline if k in trained.metrics},
        "evaluation": dg.MetadataValue.md(
            "Out-of-time test rows. `oracle` = the simulator's true probability for the same rows; "
            "`baseline` = the training base rate.\n\n" + markdown_table(comparison) + ("\n\n" + extra if extra else "")
        ),
        "feature_importance": _importance_table(trained.importance),
        "importance_kind": trained.importance_kind,
        "plots": dg.MetadataValue.md(plots),
        "training_seconds": dg.MetadataValue.float(round(seconds, 2)),
        "rows": dg.MetadataValue.json({k: int(v) for k, v in trained.metrics.items() if k.endswith(("_rows", "_positives"))}),
        "fit": dg.MetadataValue.json({k: v for k, v in trained.fit_info.items()}),
        "mlflow_run_id": run_id,
        "mlflow_model_uri": model_uri,
    }


def build_model_asset(task: str, family: Family) -> dg.AssetsDefinition:
    deps = [training_set_key(task)] + ([dg.AssetKey(POLICY_SET)] if task == NBA else [])
    question = "next best action (response per action)" if task == NBA else OUTCOME_TASKS[task].question

    @dg.asset(
        name=f"{task}_{family.name}",
        group_name=TRAINING_GROUP,
        kinds={"python", family.library, "mlflow"},
        deps=deps,
        description=(
            f"{task} / {family.name}: {family.description} Answers: {question} Trained on the training set's "
            "train slice, judged on its out-of-time test slice beside the oracle and a trivial baseline; "
            "logged to MLflow as a pyfunc model."
        ),
    )
    def model(context: dg.AssetExecutionContext, config: ModelConfig, warehouse: WarehouseResource,
              mlflow: MLflowResource) -> dg.MaterializeResult:
        frames, lineage = load_training_frames(warehouse, task)
        options = FitOptions(seed=config.seed, threads=config.threads, log=context.log.info)
        context.log.info(f"{task}/{family.name}: {len(frames.train):,} train, {len(frames.validation):,} validation, "
                         f"{len(frames.test):,} test rows, {len(frames.spec.all)} features")
        began = dt.datetime.now()
        if task == NBA:
            trained = train_action_model(family, frames, options)
        else:
            trained = train_outcome_model(OUTCOME_TASKS[task], family, frames, _horizon(frames), options)
        seconds = (dt.datetime.now() - began).total_seconds()
        trained.metrics["training_seconds"] = seconds
        context.log.info(f"{task}/{family.name}: test AUC {trained.metrics['auc']:.4f} (oracle "
                         f"{trained.metrics['oracle_auc']:.4f}) in {seconds:.1f}s; logging to MLflow")
        logged = log_trained_model(
            mlflow, trained, library=family.library,
            params={**family.params, "seed": config.seed, "features": len(frames.spec.all)},
            tags={**lineage, "dagster.run_id": context.run.run_id, "dagster.asset_key": context.asset_key.to_user_string()},
            input_example=frames.test,
        )
        return dg.MaterializeResult(metadata=model_metadata(trained, seconds, logged.run_id, logged.model_uri))

    return model


def _candidate(instance: dg.DagsterInstance, task: str, family: str) -> Candidate:
    event = instance.get_latest_materialization_event(model_key(task, family))
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "mlflow_model_uri" not in metadata:
        raise dg.Failure(f"{task}_{family} has no trained model yet: run the models step first "
                         "(marketing-ml run --step models).")
    return Candidate(family, metadata["mlflow_model_uri"].value, metadata["mlflow_run_id"].value)


def build_champion_asset(task: str) -> dg.AssetsDefinition:
    name = f"{task}_champion"
    deps = [model_key(task, f) for f in FAMILIES] + [training_set_key(task)]

    @dg.asset(
        name=name,
        group_name=REGISTRY_GROUP,
        kinds={"python", "mlflow"},
        deps=deps + ([dg.AssetKey(POLICY_SET)] if task == NBA else []),
        check_specs=[dg.AssetCheckSpec(check, asset=name, blocking=True, description=text)
                     for check, text in GATE_CHECKS.items()],
        description=(
            f"The registered version of model '{task}' that holds the alias @champion (the runner-up holds "
            f"@challenger). The best family of the latest training by out-of-time {PRIMARY_METRIC[task]} is "
            "promoted only if the gate checks pass; otherwise no alias moves and the checks fail."
        ),
    )
    def champion(context: dg.AssetExecutionContext, config: GateConfig, warehouse: WarehouseResource,
                 mlflow: MLflowResource) -> dg.MaterializeResult:
        candidates = [_candidate(context.instance, task, f) for f in FAMILIES]
        frames, lineage = load_training_frames(warehouse, task, splits=("test",))
        thresholds = GateThresholds(config.min_auc_ratio_to_oracle, config.max_calibration_error, config.champion_tolerance)
        promotion = promote(
            mlflow, task, candidates,
            lambda predictor: gate_metrics(predictor, task, frames.test, frames.population),
            thresholds,
            tags={**lineage, "dagster.run_id": context.run.run_id},
            log=context.log.info,
        )
        checks = [
            dg.AssetCheckResult(
                check_name=c.name, passed=c.passed, severity=dg.AssetCheckSeverity.ERROR,
                description=c.description,
                metadata={"value": c.value if c.value is not None else float("nan"),
                          "threshold": c.threshold if c.threshold is not None else float("nan"),
                          "candidate": promotion.best_family},
            )
            for c in promotion.checks
        ]
        notes = "".join(f"\n\n- {n}" for n in promotion.notes)
        return dg.MaterializeResult(
            metadata={
                "decision": dg.MetadataValue.md(f"**{promotion.decision}**{notes}"),
                "champion_version": promotion.champion_version or "none",
                "challenger_version": promotion.challenger_version or "none",
                "previous_champion_version": promotion.previous_champion_version or "none",
                "candidates": dg.MetadataValue.md(markdown_table(promotion.ranking.reset_index(names="model"))),
                "model_uri": f"models:/{task}@champion",
            },
            check_results=checks,
        )

    return champion


def training_assets() -> list[dg.AssetsDefinition]:
    """Every asset of the `training` and `registry` groups."""
    return [
        *(build_outcome_training_set(t) for t in OUTCOME_TASKS.values()),
        training_set_nba,
        nba_policy_evaluation_set,
        *(build_model_asset(task, family) for task in TASK_NAMES for family in FAMILIES.values()),
        *(build_champion_asset(task) for task in TASK_NAMES),
    ]

