"""Meta-learners of the conditional average treatment effect (CATE), on the platform's model families.

Each learner estimates, for one outcome, the effect of every intervention against the no-contact arm on
P(outcome within its window): `predict_effects(frame)` has one column per intervention.

- **T-learner**: one outcome model per arm, fitted on that arm's randomised contacts; effect = the arm's
  prediction minus the control's. Simple and unbiased under randomisation, but the difference of two
  noisy models is noisier than either.
- **X-learner** (Kuenzel et al., 2019): starts from the T-learner's arm models, imputes each contact's
  individual effect with the *other* arm's model (treated: y - mu0(x); control: mu1(x) - y), regresses
  those imputed effects on the features in each arm and blends the two regressions by the assignment
  propensity, which is known here because assignment was random (equal arms: one half each).

The arm models are the platform's own families (`marketing_ml.training.families`), with their encoding,
early stopping and calibration; the X-learner's effect regressions are gradient-boosted trees. causalml
(the library we would use) does not install with this stack: every causalml release that fits Python 3.11
requires black >= 26, which needs pathspec >= 1.0, and dbt-core < 1.12 pins pathspec < 0.13. Both
learners are a few lines over the families, written out here and tested on worlds with known effects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.registry.encoding import EncodedRows, FrameEncoder, model_input
from marketing_ml.registry.frames import Split
from marketing_ml.registry.model import BinaryModel
from marketing_ml.simulation.effects import CONTROL, INTERVENTION_NAMES
from marketing_ml.training.families import Family, FitOptions

LEARNERS = ("t_learner", "x_learner")


@dataclass
class ArmData:
    """One outcome's rows of one slice, per arm."""

    X: dict[str, pd.DataFrame]
    y: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, spec: ModelInputs, arm_column: str, label: str) -> ArmData:
        arms = (CONTROL, *INTERVENTION_NAMES)
        rows = {arm: frame[frame[arm_column] == arm] for arm in arms}
        return cls({a: r[list(spec.all)] for a, r in rows.items()},
                   {a: r[label].to_numpy(dtype=np.int8) for a, r in rows.items()})

    def split(self, arm: str) -> Split:
        return Split(self.X[arm], self.y[arm])


@dataclass
class UpliftModel:
    """A fitted meta-learner for one outcome: effects of every intervention, and the control's risk."""

    learner: str
    family: str
    outcome: str
    horizon_days: int
    spec: ModelInputs
    arm_models: dict[str, BinaryModel]
    # X-learner only: per intervention, (regression of imputed effects on control rows, on treated rows,
    # the treated share of the two arms: the known assignment propensity)
    effect_models: dict[str, tuple[Pipeline, Pipeline, float]] = field(default_factory=dict)

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return self.spec.all

    def predict_control(self, frame: pd.DataFrame | EncodedRows) -> np.ndarray:
        """P(outcome within the window | no contact): the propensity a non-causal model ranks by."""
        return self.arm_models[CONTROL].predict_proba(frame)

    def predict_effects(self, frame: pd.DataFrame | EncodedRows,
                        interventions: Sequence[str] = INTERVENTION_NAMES) -> pd.DataFrame:
        """The effect of each of `interventions` (all by default: scoring asks only for the one it acts on,
        which saves the other arms' models) for every row of `frame`."""
        rows = EncodedRows.of(frame)
        if self.learner == "t_learner":
            control = self.arm_models[CONTROL].predict_proba(rows)
            effects = {i: self.arm_models[i].predict_proba(rows) - control for i in interventions}
        else:
            def regression(pipeline: Pipeline) -> np.ndarray:
                return pipeline[-1].predict(model_input(pipeline, rows))

            effects = {}
            for i in interventions:
                on_control, on_treated, g = self.effect_models[i]
                effects[i] = g * regression(on_control) + (1 - g) * regression(on_treated)
        return pd.DataFrame(effects, index=rows.index)


def _effect_regressor(spec: ModelInputs, options: FitOptions) -> Pipeline:
    return Pipeline([
        ("encode", FrameEncoder(spec.numeric, spec.categorical)),
        ("regress", HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, max_depth=3,
                                                  min_samples_leaf=200, l2_regularization=1.0,
                                                  early_stopping=True, random_state=options.seed)),
    ])


class TooFewContacts(ValueError):
    """An arm of the contact log holds too few contacts, or no outcome, to fit: a fact about the data (a
    small or young contact log), not a fault; the message says what there is."""


def fit_uplift(learner: str, family: Family, outcome: str, horizon_days: int, spec: ModelInputs,
               train: ArmData, selection: ArmData, options: FitOptions = FitOptions()) -> UpliftModel:
    """Fit one meta-learner for one outcome on the train slice (the selection slice early-stops the arms)."""
    if learner not in LEARNERS:
        raise ValueError(f"unknown uplift learner {learner!r}; one of {', '.join(LEARNERS)}")
    arm_models: dict[str, BinaryModel] = {}
    for arm in (CONTROL, *INTERVENTION_NAMES):
        fit_rows, stop_rows = train.split(arm), selection.split(arm)
        if len(np.unique(fit_rows.y)) < 2 or len(np.unique(stop_rows.y)) < 2:
            raise TooFewContacts(
                f"uplift {outcome}/{arm}: {len(fit_rows)} train contacts with {int(fit_rows.y.sum())} outcomes and "
                f"{len(stop_rows)} selection contacts with {int(stop_rows.y.sum())}; both slices need both classes. "
                "Build more history or clients."
            )
        options.log(f"uplift {learner}/{family.name} {outcome}: fitting the {arm} arm on {len(fit_rows):,} contacts")
        arm_models[arm] = family.fit(spec, fit_rows, stop_rows, options)
    model = UpliftModel(learner, family.name, outcome, horizon_days, spec, arm_models)
    if learner == "x_learner":
        control = train.split(CONTROL)
        for intervention in INTERVENTION_NAMES:
            treated = train.split(intervention)
            imputed_treated = treated.y - arm_models[CONTROL].predict_proba(treated.X)
            imputed_control = arm_models[intervention].predict_proba(control.X) - control.y
            on_treated = _effect_regressor(spec, options).fit(treated.X, imputed_treated)
            on_control = _effect_regressor(spec, options).fit(control.X, imputed_control)
            model.effect_models[intervention] = (on_control, on_treated, len(treated) / (len(treated) + len(control)))
    return model
