"""Champion promotion: the best candidate of the latest training moves `@champion` only through a gate.

Every candidate of the latest training and the current champion are scored on the same out-of-time
selection rows, with the models as logged (what scoring will load). The test rows, later, are kept out of
every choice: the figures reported for a model come from them. The best candidate by the task's primary metric
becomes `@champion` only if the gate passes:

- `auc_vs_oracle`: its AUC is at least `min_auc_ratio_to_oracle` x the oracle's AUC on those rows
  (for the next best action: the response model on the observed test touches);
- `calibration`: its calibration error exceeds the oracle's on the same rows by at most
  `max_relative_calibration_error` x the oracle's mean probability on those rows. Relative, because
  outcomes are rare: an absolute 0.02 would pass a model predicting twice the true rate of a 1% outcome.
  The oracle's own error on a finite sample is sampling noise, a floor no model can beat; the oracle's
  mean (not the candidate's) sets the scale, so inflating every probability cannot widen the allowance;
- `not_worse_than_champion`: its primary metric is at least the current champion's minus
  `champion_tolerance` (retraining on newer data moves metrics by noise; the tolerance absorbs that).

Without ground truth (a provider's files) there is no oracle to compare with; the first two checks are
replaced by checks that need only the labels of the same rows:

- `auc_vs_baseline`: its AUC exceeds the no-skill baseline's on those rows (their base rate: 0.5; for the
  next best action the per-action response rates) by at least `min_auc_margin_over_baseline`;
- `calibration`: its calibration error is at most the error a calibrated model would still show on
  those labels (`evaluation.calibration_noise`) plus `max_relative_calibration_error` x the observed rate.

Then the runner-up becomes `@challenger`. A refused candidate moves no alias.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from marketing_ml.registry.predictor import Predictor, load_predictor
from marketing_ml.registry.store import CHALLENGER, CHAMPION, alias_version, register
from marketing_ml.registry.tasks import NBA, PRIMARY_METRIC
from marketing_ml.resources.mlflow_tracking import MLflowResource


@dataclass(frozen=True)
class GateThresholds:
    min_auc_ratio_to_oracle: float = 0.85
    max_relative_calibration_error: float = 0.5
    champion_tolerance: float = 0.005
    min_auc_margin_over_baseline: float = 0.02  # without ground truth


def gate_check_names(ground_truth: bool) -> tuple[str, ...]:
    """The gate's checks, in order: against the oracle with ground truth, against the baseline without."""
    return ("auc_vs_oracle" if ground_truth else "auc_vs_baseline", "calibration", "not_worse_than_champion")


@dataclass(frozen=True)
class GateCheck:
    """One criterion of the champion gate, evaluated for the best candidate."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    description: str


@dataclass(frozen=True)
class Candidate:
    family: str
    model_uri: str
    run_id: str | None = None


@dataclass
class Promotion:
    """What the gate decided, and why."""

    task: str
    decision: str
    checks: list[GateCheck]
    ranking: pd.DataFrame  # candidates (and the current champion) x gate metrics, best first
    champion_version: str | None
    challenger_version: str | None
    previous_champion_version: str | None
    best_family: str
    notes: list[str] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return all(c.passed for c in self.checks)


def evaluate_gate(task: str, candidate: Mapping[str, float], champion: Mapping[str, float] | None,
                  thresholds: GateThresholds, *, ground_truth: bool) -> list[GateCheck]:
    """The gate's three criteria for the best candidate (see the module docstring)."""
    primary = PRIMARY_METRIC[task]
    checks = _oracle_checks(candidate, thresholds) if ground_truth else _label_checks(candidate, thresholds)
    if champion is None:
        checks.append(GateCheck("not_worse_than_champion", True, None, None, "no current champion: nothing to beat."))
    else:
        floor = champion[primary] - thresholds.champion_tolerance
        checks.append(
            GateCheck(
                "not_worse_than_champion",
                bool(candidate[primary] >= floor),
                candidate[primary],
                floor,
                f"{primary} {candidate[primary]:.4f} vs the current champion's {champion[primary]:.4f} on the same "
                f"rows (tolerance {thresholds.champion_tolerance}).",
            )
        )
    return checks


def _oracle_checks(candidate: Mapping[str, float], thresholds: GateThresholds) -> list[GateCheck]:
    """AUC and calibration against the oracle on the same rows."""
    ratio, ece = candidate.get("auc_ratio_to_oracle", math.nan), candidate.get("calibration_error", math.nan)
    noise = candidate.get("oracle_calibration_error", 0.0)
    allowed = thresholds.max_relative_calibration_error * candidate.get("oracle_mean_probability", math.nan)
    return [
        GateCheck(
            "auc_vs_oracle",
            bool(ratio >= thresholds.min_auc_ratio_to_oracle),
            ratio,
            thresholds.min_auc_ratio_to_oracle,
            f"AUC {candidate.get('auc', math.nan):.4f} is {ratio:.3f} x the oracle's "
            f"{candidate.get('oracle_auc', math.nan):.4f} on the same test rows (floor {thresholds.min_auc_ratio_to_oracle}).",
        ),
        GateCheck(
            "calibration",
            bool(ece <= noise + allowed),
            ece,
            noise + allowed,
            f"expected calibration error {ece:.4f}; the oracle's on the same rows (sampling noise) {noise:.4f}, "
            f"plus {thresholds.max_relative_calibration_error:.0%} of the oracle's mean probability "
            f"({allowed:.4f}).",
        ),
    ]


def _label_checks(candidate: Mapping[str, float], thresholds: GateThresholds) -> list[GateCheck]:
    """AUC against the no-skill baseline and calibration against the observed rate of the same rows: no truth needed."""
    auc, baseline = candidate.get("auc", math.nan), candidate.get("baseline_auc", math.nan)
    floor = baseline + thresholds.min_auc_margin_over_baseline
    ece, noise = candidate.get("calibration_error", math.nan), candidate.get("calibration_noise", math.nan)
    allowed = thresholds.max_relative_calibration_error * candidate.get("observed_rate", math.nan)
    return [
        GateCheck(
            "auc_vs_baseline",
            bool(auc >= floor),
            auc,
            floor,
            f"AUC {auc:.4f} vs the no-skill baseline's {baseline:.4f} on the same rows (margin "
            f"{thresholds.min_auc_margin_over_baseline}); no oracle: no ground truth.",
        ),
        GateCheck(
            "calibration",
            bool(ece <= noise + allowed),
            ece,
            noise + allowed,
            f"expected calibration error {ece:.4f}; a calibrated model's on these labels (sampling noise) "
            f"{noise:.4f}, plus {thresholds.max_relative_calibration_error:.0%} of the observed rate ({allowed:.4f}).",
        ),
    ]


def promote(
    resource: MLflowResource,
    task: str,
    candidates: list[Candidate],
    gate_metrics: Callable[[Predictor], dict[str, float]],
    thresholds: GateThresholds,
    tags: Mapping[str, str],
    log: Callable[[str], None] = lambda message: None,
    *,
    ground_truth: bool,
) -> Promotion:
    """Rank the candidates, gate the best one against the oracle (or, without ground truth, the baseline)
    and the current champion, move aliases.

    `gate_metrics(predictor)` scores a predictor on the current test rows (`tasks.gate_metrics`).
    """
    primary = PRIMARY_METRIC[task]
    scored = {}
    for candidate in candidates:
        log(f"{task}: scoring candidate {candidate.family} ({candidate.model_uri}) on the test rows")
        scored[candidate.family] = gate_metrics(load_predictor(candidate.model_uri, resource.tracking_uri))
    ranked = sorted(candidates, key=lambda c: scored[c.family][primary], reverse=True)
    best, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    notes: list[str] = []
    with resource.client() as client:
        current = alias_version(client, task, CHAMPION)
        champion_metrics = None
        if current is not None:
            try:
                champion_metrics = gate_metrics(load_predictor(f"models:/{task}/{current.version}", resource.tracking_uri))
            except (KeyError, AttributeError, ImportError, pickle.UnpicklingError) as error:
                # it needs feature columns that no longer exist, or code that changed since it was logged:
                # scoring could not use it either, so it is no benchmark for the candidate
                notes.append(f"the current champion v{current.version} cannot score today's rows "
                             f"({type(error).__name__}: {error}); not compared")
        checks = evaluate_gate(task, scored[best.family], champion_metrics, thresholds, ground_truth=ground_truth)
        champion_version = str(current.version) if current else None
        challenger = alias_version(client, task, CHALLENGER)
        challenger_version = str(challenger.version) if challenger else None
        if all(c.passed for c in checks):
            version = register(client, task, best.model_uri, best.run_id, {**tags, "family": best.family})
            client.set_registered_model_alias(task, CHAMPION, version.version)
            champion_version = str(version.version)
            decision = (f"{best.family} is @{CHAMPION} (v{version.version}"
                        + (", unchanged)" if current and current.version == version.version else ")"))
            if runner_up is not None:
                second = register(client, task, runner_up.model_uri, runner_up.run_id, {**tags, "family": runner_up.family})
                client.set_registered_model_alias(task, CHALLENGER, second.version)
                challenger_version = str(second.version)
        else:
            failed = ", ".join(c.name for c in checks if not c.passed)
            decision = (f"refused {best.family} ({failed}); @{CHAMPION} stays "
                        + (f"v{current.version}" if current else "unset"))
    log(f"{task}: {decision}")
    rows = {c.family: scored[c.family] for c in ranked}
    if champion_metrics is not None:
        rows[f"current champion v{current.version}"] = champion_metrics
    compared = (["oracle_auc", "auc_ratio_to_oracle"] if ground_truth
                else ["baseline_auc", *(["policy_value_standard_error", "policy_value_random"] if task == NBA else [])])
    columns = [primary, "auc", *compared, "calibration_error", "log_loss"]
    ranking = pd.DataFrame(rows).T.reindex(columns=list(dict.fromkeys(columns)))
    return Promotion(task, decision, checks, ranking, champion_version, challenger_version,
                     str(current.version) if current else None, best.family, notes)
