"""Uplift as Dagster assets: thin wiring around `dataset`, `learners`, `report` and `store`.

Group `uplift`: `uplift_training_set` (SQL over the randomised contact log), one asset per meta-learner
(`uplift_t_learner`, `uplift_x_learner`: both outcomes, every intervention, logged to MLflow), and
`uplift_champions`, which promotes per intervention the learner with the best selection-slice Qini if it
passes the gate (a check per intervention; a refusal warns and keeps the alias where it was).

`Settings.ground_truth` (a factory parameter) says whether the set carries the simulator's truth and the
models are also judged against it; a contact log without randomised contacts trains and promotes nothing,
and every asset of the group says why (`dataset.no_randomised_contacts`).
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg
import pandas as pd
from pydantic import Field

from marketing_ml.features.catalog import FEATURE_MODEL
from marketing_ml.metadata import figure_markdown, logged_model_metadata, markdown_table
from marketing_ml.registry.frames import model_feature_spec
from marketing_ml.registry.tasks import SPLIT
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.training import datasets
from marketing_ml.training.assets import ModelConfig
from marketing_ml.training.families import FAMILIES, FitOptions
from marketing_ml.settings import NO_GROUND_TRUTH
from marketing_ml.uplift.dataset import (
    ARM,
    CONTACT_LOG_SQL,
    HORIZONS,
    LABELS,
    UPLIFT_SET,
    UPLIFT_TABLE,
    no_randomised_contacts,
    plan_uplift,
    uplift_set_sql,
)
from marketing_ml.uplift.evaluation import decile_figure
from marketing_ml.uplift.learners import LEARNERS, ArmData, TooFewContacts, fit_uplift
from marketing_ml.uplift.report import judge_uplift
from marketing_ml.uplift.store import (
    PRIMARY_OUTCOME,
    UpliftCandidate,
    choose_champions,
    log_uplift_models,
    unchanged_champions,
)

GROUP = "uplift"
CHAMPIONS = "uplift_champions"
# the test report's columns: from the observed arms, and (the simulator's data only) against the truth
OBSERVED_HEADLINE = ("qini", "auuc", "qini_propensity")
TRUTH_HEADLINE = ("oracle_qini", "rank_correlation", "pehe", "captured_share_of_oracle", "ratio_to_propensity")


class UpliftSetConfig(dg.Config):
    warmup_days: int = Field(default=90, description="Days of history before the first training contact.")
    selection_days: int = Field(default=45, description="Contact days after training: early stopping and the "
                                "slice champions are chosen on.")
    test_days: int = Field(default=60, description="Latest contact days with matured 90-day labels: the "
                           "out-of-time slice the reported figures come from.")
    fit_to_history: bool = Field(default=True, description="Scale the windows down to fit a short history.")


class UpliftModelConfig(ModelConfig):
    family: str = Field(default="xgboost", description="The model family of the arm models.")
    capacity_share: float = Field(default=0.1, description="Share of a slice's contacts treated when policies "
                                  "are compared at equal capacity.")
    advisor_outreach_cost_usd: float = Field(default=60.0, description="Cost of one advisor outreach call.")
    retention_call_cost_usd: float = Field(default=35.0, description="Cost of one retention call with its offer.")

    def costs(self) -> dict[str, float]:
        return {"advisor_outreach": self.advisor_outreach_cost_usd, "retention_call": self.retention_call_cost_usd}


def contact_log(warehouse: WarehouseResource) -> tuple[int, int]:
    """The raw contact log's logged contacts and the randomised ones among them."""
    log = warehouse.query(CONTACT_LOG_SQL)
    return int(log["logged"].iloc[0]), int(log["randomised"].iloc[0])


def build_uplift_set_asset(ground_truth: bool) -> dg.AssetsDefinition:
    truth = (", and the true hazards and effects (evaluation only)" if ground_truth
             else "; no truth columns (the provider's data has no ground truth)")

    @dg.asset(
        name=UPLIFT_SET,
        group_name=GROUP,
        kinds={"sql", "duckdb"},
        deps=[dg.AssetKey(FEATURE_MODEL), "raw_interventions", "raw_outcomes",
              *(["true_daily_hazards", "true_client_traits"] if ground_truth else [])],
        metadata={"schema": "training"},
        description=(
            "One row per randomised assignment (no_contact, advisor_outreach, retention_call; contacts without an "
            "assignment probability are not randomised and left out): the features as of the contact date, "
            "conversion within 30 days and churn within 90 days after it, the out-of-time slice (train, "
            f"selection, test){truth}. Table {UPLIFT_TABLE}."
        ),
    )
    def uplift_training_set(context: dg.AssetExecutionContext, config: UpliftSetConfig,
                            warehouse: WarehouseResource) -> dg.MaterializeResult:
        first, last = datasets.history_bounds(warehouse)
        plan = plan_uplift(first, last, warmup_days=config.warmup_days, selection_days=config.selection_days,
                           test_days=config.test_days, fit_to_history=config.fit_to_history)
        for note in plan.notes:
            context.log.warning(note)
        warehouse.execute("create schema if not exists training")
        warehouse.execute(uplift_set_sql(plan, ground_truth=ground_truth))
        summary = warehouse.query(
            f"select {SPLIT}, {ARM}, count(*) as contacts, avg(converted::int) as conversion_rate, "
            f"avg(churned::int) as churn_rate, min(as_of_date) as first_date, max(as_of_date) as last_date "
            f"from {UPLIFT_TABLE} group by all order by 1, 2"
        )
        logged, randomised = contact_log(warehouse)
        problem = no_randomised_contacts(logged, randomised)
        if problem:
            context.log.warning(problem)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": int(summary["contacts"].sum()),
            "contacts_logged": logged,
            "contacts_randomised": randomised,
            **({"no_uplift_model": problem} if problem else {}),
            "slices": dg.MetadataValue.md(markdown_table(summary)),
            "slice_dates": dg.MetadataValue.json({k: [str(a), str(b)] for k, (a, b) in plan.ranges.items()}),
            "truth_columns": "yes (evaluation only)" if ground_truth else NO_GROUND_TRUTH,
        })

    return uplift_training_set


def build_uplift_asset(learner: str, ground_truth: bool) -> dg.AssetsDefinition:
    judged = ("by observed Qini and against the true effects" if ground_truth
              else "by observed Qini and AUUC (no true effects: the provider's data has no ground truth)")

    @dg.asset(
        name=f"uplift_{learner}",
        group_name=GROUP,
        kinds={"python", "xgboost", "mlflow"},
        deps=[UPLIFT_SET],
        description=(
            f"The {learner.replace('_', '-')} of the effect of each intervention on conversion (30 days) and "
            "churn (90 days), fitted on the train slice's randomised contacts; judged on the selection slice "
            f"(the choice) and the out-of-time test slice (the report) {judged}; logged to MLflow. Not trained "
            "when the contact log holds no randomised contacts (said so in the metadata)."
        ),
    )
    def uplift_model(context: dg.AssetExecutionContext, config: UpliftModelConfig, warehouse: WarehouseResource,
                     mlflow: MLflowResource) -> dg.MaterializeResult:
        problem = no_randomised_contacts(*contact_log(warehouse))
        if problem:
            context.log.warning(problem)
            return dg.MaterializeResult(metadata={"not_trained": problem})
        table = warehouse.query(f"select * from {UPLIFT_TABLE} order by as_of_date, client_id")
        spec = model_feature_spec(table)
        slices = {name: table[table[SPLIT] == name] for name in ("train", "selection", "test")}
        options = FitOptions(seed=config.seed, threads=config.threads, log=context.log.info)
        began = dt.datetime.now()
        models, metrics, tables, figures = {}, {}, {}, {}
        for outcome, horizon in HORIZONS.items():
            arms = {name: ArmData.from_frame(rows, spec, ARM, LABELS[outcome]) for name, rows in slices.items()}
            try:
                model = fit_uplift(learner, FAMILIES[config.family], outcome, horizon, spec, arms["train"],
                                   arms["selection"], options)
            except TooFewContacts as error:  # nothing logged, nothing to promote: the champions say so
                context.log.warning(str(error))
                return dg.MaterializeResult(metadata={"not_trained": str(error)})
            models[outcome] = model
            for slice_name in ("selection", "test"):
                report = judge_uplift(model, slices[slice_name], config.capacity_share, config.costs(),
                                      ground_truth=ground_truth)
                metrics |= {f"{slice_name}.{outcome}.{k}": v for k, v in report.metrics.items()}
                if slice_name == "test":
                    for intervention, deciles in report.deciles.items():
                        tables[f"deciles_{outcome}_{intervention}"] = deciles
                        figures[f"{outcome}_{intervention}"] = decile_figure(
                            deciles, f"{outcome} uplift of {intervention} by decile (test)")
                    tables |= {f"policies_{outcome}_{i}": policies for i, policies in report.policies.items()}
        seconds = (dt.datetime.now() - began).total_seconds()
        metrics["training_seconds"] = seconds
        run_id, model_uri = log_uplift_models(
            mlflow, learner, models, metrics, tables, figures,
            tags={"dagster.run_id": context.run.run_id, "dagster.asset_key": context.asset_key.to_user_string(),
                  "data.training_set": UPLIFT_TABLE, "family": config.family},
            input_example=slices["test"],
        )
        headline = OBSERVED_HEADLINE + (TRUTH_HEADLINE if ground_truth else ())
        report_rows = [
            {"outcome": o, "intervention": i, **{m: metrics.get(f"test.{o}.{i}.{m}") for m in headline}}
            for o in HORIZONS for i in PRIMARY_OUTCOME
        ]
        if ground_truth:
            judged_by = ("`oracle_qini` ranks by the true effect; truth metrics and policy shares use the "
                         f"simulator's true effects at a capacity of {config.capacity_share:.0%} of the contacts.")
            policies = dg.MetadataValue.md("\n\n".join(
                f"**{intervention} on {outcome}**\n\n{markdown_table(tables[f'policies_{outcome}_{intervention}'])}"
                for intervention, outcome in PRIMARY_OUTCOME.items()))
        else:
            judged_by = f"the true uplift, share of the oracle and true incremental outcomes are {NO_GROUND_TRUTH}."
            policies = NO_GROUND_TRUTH
        return dg.MaterializeResult(metadata={
            "test_report": dg.MetadataValue.md(
                "Out-of-time test contacts. `qini` and `auuc` from observed outcomes of the randomised arms; "
                f"`qini_propensity` ranks by the no-contact risk; {judged_by}\n\n"
                + markdown_table(pd.DataFrame(report_rows))),
            "test_policies": policies,
            **({} if ground_truth else {"truth_figures": NO_GROUND_TRUTH}),
            "plots": dg.MetadataValue.md("\n\n".join(figure_markdown(f, n) for n, f in figures.items())),
            "selection_metrics": dg.MetadataValue.json({k: v for k, v in metrics.items() if k.startswith("selection.")}),
            "test_metrics": dg.MetadataValue.json({k: v for k, v in metrics.items() if k.startswith("test.")}),
            "training_seconds": dg.MetadataValue.float(round(seconds, 2)),
            "mlflow_run_id": run_id,
            "mlflow_model_uri": model_uri,
        })

    return uplift_model


def _candidate(instance: dg.DagsterInstance, learner: str) -> UpliftCandidate | str:
    """The learner's latest model, or why its latest materialization trained none."""
    event = instance.get_latest_materialization_event(dg.AssetKey(f"uplift_{learner}"))
    not_trained = event.asset_materialization.metadata.get("not_trained") if event and event.asset_materialization else None
    if not_trained is not None:
        return not_trained.value
    metadata = logged_model_metadata(instance, dg.AssetKey(f"uplift_{learner}"), "uplift")
    selection = {k.removeprefix("selection."): v for k, v in metadata["selection_metrics"].value.items()}
    return UpliftCandidate(learner, metadata["mlflow_run_id"].value, metadata["mlflow_model_uri"].value, selection)


def _no_candidates(mlflow: MLflowResource, reason: str, log: Callable[[str], None]) -> dg.MaterializeResult:
    """No learner to choose from: every alias stays where it was, and each check says why."""
    decisions = unchanged_champions(mlflow, reason)
    for decision in decisions.values():
        log(decision)
    return dg.MaterializeResult(
        metadata={"decisions": dg.MetadataValue.md("\n".join(f"- {d}" for d in decisions.values()))},
        check_results=[
            dg.AssetCheckResult(check_name=f"{intervention}_beats_propensity", passed=False,
                                severity=dg.AssetCheckSeverity.WARN, metadata={"no_candidate": decision})
            for intervention, decision in decisions.items()
        ],
    )


@dg.asset(
    name=CHAMPIONS,
    group_name=GROUP,
    kinds={"python", "mlflow"},
    deps=[f"uplift_{learner}" for learner in LEARNERS],
    # a refusal is a warning, not a failure: the alias stays where it was (or unset), and the lists then rank
    # by propensity and say so, so the rest of the run goes on
    check_specs=[dg.AssetCheckSpec(f"{intervention}_beats_propensity", asset=CHAMPIONS,
                                   description=f"The {intervention} champion's selection Qini on {outcome} is "
                                               "positive and above ranking by propensity on the same contacts; "
                                               "a candidate that is not is not promoted.")
                 for intervention, outcome in PRIMARY_OUTCOME.items()],
    description=(
        "Per intervention, the registered model `uplift_<intervention>` whose @champion is the learner with the "
        "best Qini on the selection slice for the intervention's outcome (advisor_outreach: conversion, "
        "retention_call: churn), promoted only if it beats ranking by propensity. Without randomised contacts "
        "there is no candidate: the aliases stay where they were (or unset), said so."
    ),
)
def uplift_champions(context: dg.AssetExecutionContext, mlflow: MLflowResource) -> dg.MaterializeResult:
    found = [_candidate(context.instance, learner) for learner in LEARNERS]
    candidates = [c for c in found if isinstance(c, UpliftCandidate)]
    if not candidates:  # each learner said why (no randomised contacts, too few): the same reason once
        return _no_candidates(mlflow, "no learner was trained (" + "; ".join(dict.fromkeys(found)) + ")",
                              context.log.warning)
    choices = choose_champions(mlflow, candidates, tags={"dagster.run_id": context.run.run_id})
    for choice in choices:
        context.log.info(choice.decision)
    return dg.MaterializeResult(
        metadata={"decisions": dg.MetadataValue.md("\n".join(f"- {c.decision}" for c in choices))},
        check_results=[
            dg.AssetCheckResult(
                check_name=f"{c.intervention}_beats_propensity", passed=c.passed, severity=dg.AssetCheckSeverity.WARN,
                metadata={"selection_qini": c.qini, "selection_qini_propensity": c.qini_propensity, "learner": c.learner},
            )
            for c in choices
        ],
    )


def uplift_assets(ground_truth: bool) -> list[dg.AssetsDefinition]:
    """The uplift group; `ground_truth` (`Settings.ground_truth`): whether the models are also judged against
    the simulator's true effects."""
    return [build_uplift_set_asset(ground_truth), *(build_uplift_asset(learner, ground_truth) for learner in LEARNERS),
            uplift_champions]
