"""What the UI shows for the training sets and the trained models: slices, plans, evaluations and plots."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from marketing_ml.metadata import figure_markdown, markdown_table
from marketing_ml.registry.store import TrainedModel
from marketing_ml.training.datasets import ObservationPlan, TouchPlan


def plan_metadata(plan: ObservationPlan | TouchPlan, summary: pd.DataFrame) -> dict[str, object]:
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


def importance_table(importance: pd.Series, top: int = 15) -> dg.TableMetadataValue:
    head = importance.head(top)
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"feature": str(k), "importance": round(float(v), 4)}) for k, v in head.items()],
        schema=dg.TableSchema(columns=[dg.TableColumn("feature", "string"), dg.TableColumn("importance", "float")]),
    )


def model_metadata(trained: TrainedModel, seconds: float, run_id: str, model_uri: str) -> dict[str, object]:
    """What the UI shows for a trained model: its metrics beside the oracle's (with ground truth) and the
    baseline's, plots, and the notes on what is omitted or estimated (each also a metadata entry)."""
    headline = ("auc", "oracle_auc", "baseline_auc", "auc_ratio_to_oracle", "pr_auc", "log_loss", "brier",
                "accuracy", "calibration_error", "oracle_calibration_error", "policy_value", "policy_value_random",
                "policy_value_baseline", "policy_value_oracle", "policy_value_standard_error", "captured_lift",
                "policy_accuracy")
    plots = "\n\n".join(figure_markdown(fig, name) for name, fig in trained.figures.items())
    comparison = trained.comparison.reset_index(names="metric")
    extra = "\n\n".join(f"**{name.replace('_', ' ')}**\n\n{markdown_table(t)}" for name, t in trained.tables.items())
    scorers = ("`oracle` = the simulator's true probability for the same rows; " if "oracle" in trained.comparison
               else "")
    notes = "".join(f"\n\n- {name.replace('_', ' ')}: {text}" for name, text in trained.notes.items())
    return {
        **{k: dg.MetadataValue.float(trained.metrics[k]) for k in headline if k in trained.metrics},
        **trained.notes,
        "evaluation": dg.MetadataValue.md(
            f"Out-of-time test rows. {scorers}`baseline` = the training base rate.{notes}\n\n"
            + markdown_table(comparison) + ("\n\n" + extra if extra else "")
        ),
        "feature_importance": importance_table(trained.importance),
        "importance_kind": trained.importance_kind,
        "plots": dg.MetadataValue.md(plots),
        "training_seconds": dg.MetadataValue.float(round(seconds, 2)),
        "rows": dg.MetadataValue.json({k: int(v) for k, v in trained.metrics.items() if k.endswith(("_rows", "_positives"))}),
        "fit": dg.MetadataValue.json({k: v for k, v in trained.fit_info.items()}),
        "mlflow_run_id": run_id,
        "mlflow_model_uri": model_uri,
    }
