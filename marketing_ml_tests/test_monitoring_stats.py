"""Drift statistics and alert thresholds, on distributions whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketing_ml.monitoring.alerts import AUC_RATIO, FEATURE_PSI, Severity, evaluate
from marketing_ml.monitoring.drift import NumericReference, categorical_psi, column_drift


def test_psi_is_quiet_for_the_same_distribution_and_loud_for_a_shift():
    rng = np.random.default_rng(0)
    reference = NumericReference.of(rng.normal(0, 1, 20_000))
    assert reference.psi(rng.normal(0, 1, 20_000)) < 0.01
    assert reference.psi(rng.normal(0.5, 1, 20_000)) > 0.2
    assert reference.ks(rng.normal(0, 1, 20_000)) < 0.03
    assert 0.15 < reference.ks(rng.normal(0.5, 1, 20_000)) < 0.25  # KS of a 0.5 sd shift is ~0.20


def test_psi_handles_discrete_counts_and_categories():
    rng = np.random.default_rng(1)
    counts = NumericReference.of(rng.poisson(0.3, 10_000).astype(float))  # mostly zeros: quantile bins collapse
    assert counts.psi(rng.poisson(0.3, 10_000).astype(float)) < 0.01
    assert counts.psi(rng.poisson(0.9, 10_000).astype(float)) > 0.25
    ref = pd.Series(rng.choice(["web", "mobile"], 5_000, p=[0.7, 0.3])).value_counts(normalize=True)
    assert categorical_psi(ref, pd.Series(rng.choice(["web", "mobile"], 5_000, p=[0.7, 0.3]))) < 0.01
    assert categorical_psi(ref, pd.Series(rng.choice(["web", "mobile"], 5_000, p=[0.3, 0.7]))) > 0.5


def test_column_drift_reports_each_column_with_its_kind():
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"x": rng.normal(size=1000), "c": rng.choice(["a", "b"], 1000)})
    current = pd.DataFrame({"x": rng.normal(2, 1, 1000), "c": rng.choice(["a", "b"], 1000)})
    drift = {d.feature: d for d in column_drift(reference, current, ["x", "c"])}
    assert drift["x"].kind == "numeric" and drift["x"].psi > 1 and drift["x"].current_mean > 1.5
    assert drift["c"].kind == "categorical" and drift["c"].ks is None and drift["c"].psi < 0.05


def test_severity_is_ordered_and_direction_aware():
    assert Severity.CRITICAL > Severity.WARNING > Severity.OK
    assert evaluate("feature:x", FEATURE_PSI, 0.05) is None
    assert evaluate("feature:x", FEATURE_PSI, 0.15).severity is Severity.WARNING
    assert evaluate("feature:x", FEATURE_PSI, 0.30).severity is Severity.CRITICAL
    assert evaluate("model:conversion", AUC_RATIO, 0.97) is None
    assert evaluate("model:conversion", AUC_RATIO, 0.85).severity is Severity.CRITICAL
    assert evaluate("feature:x", FEATURE_PSI, float("nan")) is None
