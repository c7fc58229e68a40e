"""One uplift model judged on one slice: per intervention, observed Qini/AUUC, truth metrics, policies.

The rows are the slice's randomised contacts. Observed metrics use an intervention's arm against the
no-contact arm (the contrast the randomisation makes unbiased). Truth metrics and the policy comparison
use every contact of the slice, whatever its arm: the true effect of contacting that client that day is
known for all of them, so the model, the oracle, propensity and random are compared on the same rows at
the same capacity. Only the simulator knows the true effects: on a provider's data a report has the
observed metrics and deciles only, and no truth metric or policy comparison (not zeros, not NaN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from marketing_ml.registry.encoding import EncodedRows
from marketing_ml.simulation.effects import CONTROL, INTERVENTIONS, shift_column, true_effect
from marketing_ml.uplift.dataset import ARM, HORIZONS, LABELS, SHIFT_PREFIX, UNCONTACTED_HAZARD
from marketing_ml.uplift.evaluation import (
    auuc,
    benefit_sign,
    policy_comparison,
    qini_coefficient,
    truth_metrics,
    uplift_by_decile,
)
from marketing_ml.uplift.learners import UpliftModel


def true_benefits(frame: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Per row and intervention, the true benefit of contacting (evaluation only: reads the truth columns)."""
    sign = benefit_sign(outcome)
    return pd.DataFrame({
        i.name: sign * true_effect(frame[UNCONTACTED_HAZARD[outcome]].to_numpy(),
                                   frame[SHIFT_PREFIX + shift_column(i.name, outcome)].to_numpy(),
                                   outcome, i.window_days, HORIZONS[outcome])
        for i in INTERVENTIONS
    }, index=frame.index)


@dataclass
class UpliftReport:
    metrics: dict[str, float]  # "<intervention>.<metric>"
    deciles: dict[str, pd.DataFrame]  # per intervention
    policies: dict[str, pd.DataFrame]  # per intervention; empty without ground truth


def judge_uplift(model: UpliftModel, frame: pd.DataFrame, capacity_share: float = 0.1,
                 costs: Mapping[str, float] | None = None, *, ground_truth: bool) -> UpliftReport:
    """Judge `model` on the contacts in `frame` (one slice of the uplift set); `costs` (USD per contact, by
    intervention) price each policy's contacts per incremental outcome. With `ground_truth` (the frame has
    the truth columns) also against the true effects; without, by the observed arms only."""
    outcome, sign = model.outcome, benefit_sign(model.outcome)
    rows = EncodedRows(frame)  # the effects and the control's risk read the same encoded rows
    predicted = sign * model.predict_effects(rows)
    propensity = model.predict_control(rows)
    y = sign * frame[LABELS[outcome]].to_numpy(dtype=float)
    arm = frame[ARM].to_numpy()
    capacity = max(1, int(round(capacity_share * len(frame))))
    metrics: dict[str, float] = {}
    deciles, policies = {}, {}
    truth = true_benefits(frame, outcome) if ground_truth else None
    for intervention in (i.name for i in INTERVENTIONS):
        pair = (arm == intervention) | (arm == CONTROL)
        treated = arm[pair] == intervention
        score = predicted[intervention].to_numpy()
        metrics[f"{intervention}.qini"] = qini_coefficient(y[pair], treated, score[pair])
        metrics[f"{intervention}.auuc"] = auuc(y[pair], treated, score[pair])
        # propensity ranking, judged the same way: what a non-causal model would earn
        metrics[f"{intervention}.qini_propensity"] = qini_coefficient(y[pair], treated, propensity[pair])
        if truth is None:
            deciles[intervention] = uplift_by_decile(y[pair], treated, score[pair])
            continue
        true_benefit = truth[intervention].to_numpy()
        metrics |= {f"{intervention}.{k}": v for k, v in truth_metrics(score, true_benefit).items()}
        table = policy_comparison(true_benefit, {"propensity": propensity, "model": score}, capacity)
        if costs is not None:
            table["cost_usd"] = capacity * costs[intervention]
            table["cost_per_incremental_outcome_usd"] = table["cost_usd"] / table["true_incremental_outcomes"]
        by_policy = table.set_index("policy")["true_incremental_outcomes"]
        metrics[f"{intervention}.captured_share_of_oracle"] = float(by_policy["model"] / by_policy["oracle"])
        metrics[f"{intervention}.ratio_to_propensity"] = float(by_policy["model"] / by_policy["propensity"])
        metrics[f"{intervention}.oracle_qini"] = qini_coefficient(y[pair], treated, true_benefit[pair])
        deciles[intervention] = uplift_by_decile(y[pair], treated, score[pair], true_benefit[pair])
        policies[intervention] = table
    metrics["contacts"] = float(len(frame))
    if truth is not None:  # the policies' capacity: there are no policies without the truth
        metrics["capacity"] = float(capacity)
    return UpliftReport(metrics, deciles, policies)
