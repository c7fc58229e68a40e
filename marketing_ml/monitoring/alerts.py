"""Thresholds and alerts. Severity is an ordered enum, so "at least WARNING" is a comparison of
levels, never of strings."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pandas as pd


class Severity(enum.IntEnum):
    OK = 0
    INFO = 1
    WARNING = 2
    CRITICAL = 3


@dataclass(frozen=True)
class Threshold:
    """`metric` breaches at WARNING past `warning` and at CRITICAL past `critical`.

    `higher_is_worse` says which way "past" is: drift grows worse upwards, AUC downwards."""

    metric: str
    warning: float
    critical: float
    higher_is_worse: bool = True

    def severity(self, value: float) -> Severity:
        if value != value:  # NaN: nothing measured, nothing to alert on
            return Severity.OK
        worse = (lambda v, t: v >= t) if self.higher_is_worse else (lambda v, t: v <= t)
        if worse(value, self.critical):
            return Severity.CRITICAL
        if worse(value, self.warning):
            return Severity.WARNING
        return Severity.OK


# PSI bands are the scorecard convention; the AUC ratio is realised AUC over the AUC the model had at
# training time on its own out-of-time test set.
FEATURE_PSI = Threshold("feature_psi", warning=0.1, critical=0.25)
SCORE_PSI = Threshold("score_psi", warning=0.1, critical=0.25)
AUC_RATIO = Threshold("realized_auc_ratio", warning=0.95, critical=0.90, higher_is_worse=False)
CALIBRATION_GAP = Threshold("calibration_error", warning=0.02, critical=0.05)


@dataclass(frozen=True)
class Alert:
    subject: str  # e.g. "feature:calculator_use_30d" or "model:conversion"
    metric: str
    value: float
    severity: Severity
    message: str


def evaluate(subject: str, threshold: Threshold, value: float) -> Alert | None:
    severity = threshold.severity(value)
    if severity is Severity.OK:
        return None
    direction = "above" if threshold.higher_is_worse else "below"
    limit = threshold.critical if severity is Severity.CRITICAL else threshold.warning
    return Alert(subject, threshold.metric, value, severity, f"{threshold.metric} {value:.3f} is {direction} {limit:g}")


def alert_table(feature_drift: pd.DataFrame, score_drift: pd.DataFrame, realized: pd.DataFrame) -> pd.DataFrame:
    """Every breach of the thresholds, one row each, most severe first."""
    found = []
    for row in feature_drift.itertuples():
        found.append((row.as_of_date, evaluate(f"feature:{row.feature}", FEATURE_PSI, row.psi)))
    for row in score_drift.itertuples():
        found.append((row.as_of_date, evaluate(f"score:{row.score}", SCORE_PSI, row.psi)))
    for row in realized.itertuples():
        found.append((row.as_of_date, evaluate(f"model:{row.task}", AUC_RATIO, row.auc_ratio)))
        found.append((row.as_of_date, evaluate(f"model:{row.task}", CALIBRATION_GAP, row.calibration_error)))
    rows = [
        {"as_of_date": day, "subject": a.subject, "metric": a.metric, "value": a.value, "severity": int(a.severity),
         "severity_name": a.severity.name, "message": a.message}
        for day, a in found if a is not None
    ]
    table = pd.DataFrame(rows, columns=["as_of_date", "subject", "metric", "value", "severity", "severity_name", "message"])
    return table.sort_values(["as_of_date", "severity", "value"], ascending=[True, False, False]).reset_index(drop=True)
