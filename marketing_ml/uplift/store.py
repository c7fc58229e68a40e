"""Uplift models in MLflow, and the choice of a champion per intervention behind a gate.

One experiment (`marketing_ml/uplift`), one run per meta-learner holding its models for both outcomes as
one pyfunc (`predict` returns the effect of every intervention on every outcome). One registered model per
intervention (`uplift_advisor_outreach`, `uplift_retention_call`) whose `@champion` is the learner with the
best Qini on the *selection* slice for the intervention's primary outcome; the test slice, which no choice
has seen, is what the reports quote. The gate: the champion's selection Qini is positive and above what
ranking by propensity earns on the same contacts, so a model that only finds who converts anyway (or who
would leave anyway) is refused.
"""

from __future__ import annotations

import importlib.metadata
import math
import pickle
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from marketing_ml.metadata import markdown_table
from marketing_ml.registry.encoding import EncodedRows
from marketing_ml.registry.store import CHAMPION, alias_version, code_version, feature_signature, register
from marketing_ml.resources.mlflow_tracking import MLflowResource, tracking
from marketing_ml.uplift.learners import UpliftModel

EXPERIMENT = "uplift"
# the outcome each intervention is for: its champion is chosen on this outcome's Qini
PRIMARY_OUTCOME = {"advisor_outreach": "conversion", "retention_call": "churn"}
MODEL_ARTIFACT = "uplift_models.pkl"
# the models-from-code entry point MLflow stores with every uplift run
PYFUNC_ENTRY = Path(__file__).with_name("pyfunc_entry.py")


def registered_name(intervention: str) -> str:
    return f"uplift_{intervention}"


class UpliftPyfunc(mlflow.pyfunc.PythonModel):
    """Serves a learner's models: one column `<outcome>.<intervention>` per effect."""

    def load_context(self, context) -> None:
        with open(context.artifacts["models"], "rb") as handle:
            self.models: dict[str, UpliftModel] = pickle.load(handle)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return effects_frame(self.models, model_input)


def effects_frame(models: Mapping[str, UpliftModel], frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([m.predict_effects(frame).add_prefix(f"{outcome}.") for outcome, m in models.items()], axis=1)


def log_uplift_models(resource: MLflowResource, learner: str, models: Mapping[str, UpliftModel],
                      metrics: Mapping[str, float], tables: Mapping[str, pd.DataFrame], figures: Mapping[str, object],
                      tags: Mapping[str, str], input_example: pd.DataFrame) -> tuple[str, str]:
    """One run with the learner's models, metrics, tables and plots, and the signature the models' effects
    have on `input_example` (feature rows); returns (run id, model uri)."""
    columns = sorted({c for m in models.values() for c in m.feature_columns})
    example = input_example[columns].head(5).reset_index(drop=True)
    with resource.client() as client:
        experiment_id = resource.experiment_id(client, EXPERIMENT)
        run_tags = {**tags, "learner": learner, "code_version": code_version()}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"uplift_{learner}", tags=run_tags) as run:
            mlflow.log_metrics({k.replace(".", "__"): v for k, v in metrics.items() if math.isfinite(v)})
            for name, table in tables.items():
                mlflow.log_text(markdown_table(table), f"{name}.md")
            for name, figure in figures.items():
                mlflow.log_figure(figure, f"plots/{name}.png")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / MODEL_ARTIFACT
                path.write_bytes(pickle.dumps(dict(models)))
                packages = ["mlflow", "numpy", "pandas", "scikit-learn", "xgboost"]
                signature = feature_signature(example, effects_frame(models, example))
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=str(PYFUNC_ENTRY), artifacts={"models": str(path)},
                    signature=signature, input_example=example,
                    pip_requirements=[f"{p}=={importlib.metadata.version(p)}" for p in packages],
                )
    return run.info.run_id, info.model_uri


def beats_propensity(qini: float, qini_propensity: float) -> bool:
    """The gate: a positive Qini, above what ranking the same contacts by propensity earns."""
    return qini > 0 and qini > qini_propensity


@dataclass(frozen=True)
class UpliftCandidate:
    learner: str
    run_id: str
    model_uri: str
    selection_metrics: Mapping[str, float]  # "<outcome>.<intervention>.<metric>" on the selection slice


@dataclass(frozen=True)
class UpliftChoice:
    intervention: str
    learner: str
    qini: float
    qini_propensity: float
    passed: bool
    decision: str
    version: str | None


def choose_champions(resource: MLflowResource, candidates: list[UpliftCandidate],
                     tags: Mapping[str, str]) -> list[UpliftChoice]:
    """Per intervention, the best learner by selection Qini, promoted to @champion if the gate passes."""
    choices = []
    with resource.client() as client:
        for intervention, outcome in PRIMARY_OUTCOME.items():
            def qini(c: UpliftCandidate, metric: str = "qini") -> float:
                return float(c.selection_metrics[f"{outcome}.{intervention}.{metric}"])

            best = max(candidates, key=qini)
            value, propensity = qini(best), qini(best, "qini_propensity")
            passed = beats_propensity(value, propensity)
            name = registered_name(intervention)
            current = alias_version(client, name, CHAMPION)
            if passed:
                version = register(client, name, best.model_uri, best.run_id, {**tags, "learner": best.learner})
                client.set_registered_model_alias(name, CHAMPION, version.version)
                decision, version_id = f"{best.learner} is {name}@{CHAMPION} (v{version.version})", str(version.version)
            else:
                decision = (f"refused {best.learner}: selection Qini {value:.5f} is not above 0 and propensity's "
                            f"{propensity:.5f}; @{CHAMPION} stays " + (f"v{current.version}" if current else "unset"))
                version_id = str(current.version) if current else None
            choices.append(UpliftChoice(intervention, best.learner, value, propensity, passed, decision, version_id))
    return choices


def unchanged_champions(resource: MLflowResource, reason: str) -> dict[str, str]:
    """Per intervention, the decision when there is no candidate (`reason`): the alias stays where it was."""
    decisions = {}
    with resource.client() as client:
        for intervention in PRIMARY_OUTCOME:
            name = registered_name(intervention)
            current = alias_version(client, name, CHAMPION)
            decisions[intervention] = (f"{reason}; {name}@{CHAMPION} stays "
                                       + (f"v{current.version}" if current else "unset"))
    return decisions


def load_uplift_champion(intervention: str, tracking_uri: str) -> dict[str, UpliftModel]:
    """The champion learner's models of an intervention, by outcome."""
    with tracking(tracking_uri):
        model = mlflow.pyfunc.load_model(f"models:/{registered_name(intervention)}@{CHAMPION}")
    return model.unwrap_python_model().models


@dataclass(frozen=True)
class UpliftChampion:
    intervention: str
    version: str
    models: dict[str, UpliftModel]  # by outcome

    def effect(self, frame: pd.DataFrame | EncodedRows, outcome: str) -> pd.Series:
        """Predicted change of P(outcome within the model's horizon) if contacted."""
        return self.models[outcome].predict_effects(frame, [self.intervention])[self.intervention]


def uplift_champions(tracking_uri: str) -> dict[str, UpliftChampion]:
    """Every intervention's @champion that exists (the gate may have refused all so far), loaded once so
    a whole run decides with the same versions."""
    found = {}
    with tracking(tracking_uri) as client:
        for intervention in PRIMARY_OUTCOME:
            version = alias_version(client, registered_name(intervention), CHAMPION)
            if version is not None:
                found[intervention] = UpliftChampion(
                    intervention, str(version.version), load_uplift_champion(intervention, tracking_uri))
    return found
