"""The registry as Dagster assets: `{task}_champion` promotes the best family of the latest training to
`models:/<task>@champion` behind blocking asset checks (the gate). Wiring around `promotion`.

With ground truth the gate compares with the oracle; without (a provider's files, `Settings.ground_truth`
False) with the no-skill baseline and the observed rate of the same rows, and the metadata says why the
oracle's figures are omitted."""

import dagster as dg
from pydantic import Field

from marketing_ml.metadata import logged_model_metadata, markdown_table
from marketing_ml.registry.evaluation import gate_metrics
from marketing_ml.registry.frames import load_training_frames
from marketing_ml.registry.promotion import Candidate, GateThresholds, gate_check_names, promote
from marketing_ml.registry.tasks import (
    FAMILY_NAMES,
    NBA,
    POLICY_SET,
    PRIMARY_METRIC,
    TASK_NAMES,
    champion_key,
    model_key,
    training_set_key,
)
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.settings import NO_GROUND_TRUTH

GROUP = "registry"
GATE_CHECKS = {
    "auc_vs_oracle": "The best candidate's AUC is at least a set fraction of the oracle's AUC on the same test rows.",
    "auc_vs_baseline": "The best candidate's AUC exceeds the no-skill baseline's (the rows' base rate) on the same "
                       "rows by a set margin.",
    "calibration": "The best candidate's expected calibration error is within a share of the true mean probability of "
                   "the oracle's own (its sampling noise); without ground truth, within a share of the observed "
                   "rate of the sampling noise a calibrated model would show.",
    "not_worse_than_champion": "The best candidate is not worse than the current champion on the same test rows.",
}


class GateConfig(dg.Config):
    min_auc_ratio_to_oracle: float = Field(default=0.85, description="AUC floor as a fraction of the oracle AUC.")
    max_relative_calibration_error: float = Field(default=0.5, description="How far the expected calibration "
                                                  "error may exceed the oracle's on the same rows (its sampling "
                                                  "noise), as a share of the oracle's mean probability.")
    champion_tolerance: float = Field(default=0.005, description="How much lower than the current champion's "
                                      "primary metric a candidate may score and still replace it.")
    min_auc_margin_over_baseline: float = Field(default=0.02, description="Without ground truth: how far the AUC "
                                                "must exceed the no-skill baseline's on the same rows.")


def _candidate(instance: dg.DagsterInstance, task: str, family: str) -> Candidate:
    metadata = logged_model_metadata(instance, model_key(task, family), "models")
    return Candidate(family, metadata["mlflow_model_uri"].value, metadata["mlflow_run_id"].value)


def build_champion_asset(task: str, ground_truth: bool) -> dg.AssetsDefinition:
    name = champion_key(task).path[0]
    deps = [model_key(task, f) for f in FAMILY_NAMES] + [training_set_key(task)]
    omitted = {} if ground_truth else {"oracle": NO_GROUND_TRUTH}

    @dg.asset(
        name=name,
        group_name=GROUP,
        kinds={"python", "mlflow"},
        deps=deps + ([dg.AssetKey(POLICY_SET)] if task == NBA and ground_truth else []),
        check_specs=[dg.AssetCheckSpec(check, asset=name, blocking=True, description=GATE_CHECKS[check])
                     for check in gate_check_names(ground_truth)],
        description=(
            f"The registered version of model '{task}' that holds the alias @champion (the runner-up holds "
            f"@challenger). The best family of the latest training by {PRIMARY_METRIC[task]} on the selection "
            "slice (out of time; the test slice after it is kept for the reported figures) is "
            "promoted only if the gate checks pass; otherwise no alias moves and the checks fail."
        ),
    )
    def champion(context: dg.AssetExecutionContext, config: GateConfig, warehouse: WarehouseResource,
                 mlflow: MLflowResource) -> dg.MaterializeResult:
        candidates = [_candidate(context.instance, task, f) for f in FAMILY_NAMES]
        # chosen on the selection slice: the test slice, later, stays unseen by any choice for the reports
        frames, lineage = load_training_frames(warehouse, task, splits=("selection",), ground_truth=ground_truth)
        thresholds = GateThresholds(config.min_auc_ratio_to_oracle, config.max_relative_calibration_error,
                                    config.champion_tolerance, config.min_auc_margin_over_baseline)
        promotion = promote(
            mlflow, task, candidates,
            lambda predictor: gate_metrics(predictor, task, frames.selection, frames.population_of("selection"),
                                           ground_truth=ground_truth),
            thresholds,
            tags={**lineage, "dagster.run_id": context.run.run_id},
            log=context.log.info,
            ground_truth=ground_truth,
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
                **omitted,
            },
            check_results=checks,
        )

    return champion


def champion_assets(ground_truth: bool) -> list[dg.AssetsDefinition]:
    """Every asset of the `registry` group."""
    return [build_champion_asset(task, ground_truth) for task in TASK_NAMES]
