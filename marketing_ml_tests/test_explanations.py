"""Attributions add up to each family's own raw score, and name the features that drive it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.registry.attribution import attribute, raw_margin, top_reasons
from marketing_ml.registry.frames import Split
from marketing_ml.training.families import FAMILIES, FitOptions

SPEC = ModelInputs(numeric=("calculator_use_30d", "balance_401k", "noise"), categorical=("service_tier",))


def _rows(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame(
        {
            "calculator_use_30d": rng.poisson(1.0, n).astype(float),
            "balance_401k": rng.lognormal(11, 1, n),
            "noise": rng.normal(size=n),
            "service_tier": rng.choice(["basic", "plus", "premier"], n),
        }
    )
    logit = -3 + 1.2 * np.log1p(frame["calculator_use_30d"]) + 0.8 * (frame["service_tier"] == "premier")
    return frame, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    return [Split(*_rows(n, rng)) for n in (6000, 2000, 500)]


@pytest.mark.parametrize("family", ["xgboost", "logreg", "random_forest", "torch_mlp"])
def test_contributions_sum_to_the_models_raw_score(family, data):
    train, validation, rows = data
    model = FAMILIES[family].fit(SPEC, train, validation, FitOptions(seed=1, threads=1))
    attribution = attribute(model, rows.X)
    assert attribution.features == ("balance_401k", "calculator_use_30d", "noise", "service_tier")
    tolerance = 2e-2 if family == "torch_mlp" else 1e-4  # integrated gradients: finite integration steps
    np.testing.assert_allclose(attribution.margin, raw_margin(model, rows.X), atol=tolerance)
    # the feature that drives the outcome carries more attribution than pure noise
    mean_abs = dict(zip(attribution.features, np.abs(attribution.contributions).mean(axis=0)))
    assert mean_abs["calculator_use_30d"] > mean_abs["noise"]


def test_top_reasons_are_the_largest_positive_contributions():
    from marketing_ml.registry.attribution import Attribution

    attribution = Attribution(
        features=("a", "b", "c", "d"),
        contributions=np.array([[0.5, -1.0, 0.2, 0.9], [-0.1, -0.2, -0.3, 0.05], [0.4, 0.7, 0.4, 0.4]]),
        base=np.zeros(3),
        score_kind="log-odds",
        method="test",
    )
    reasons = top_reasons(attribution, k=3)
    assert reasons.iloc[0][["reason_1", "reason_2", "reason_3"]].tolist() == ["d", "a", "c"]
    assert reasons.iloc[1][["reason_1", "reason_2", "reason_3"]].tolist() == ["d", "", ""]
    assert reasons.iloc[1]["reason_2_contribution"] == 0.0
    assert reasons.iloc[2][["reason_1", "reason_2", "reason_3"]].tolist() == ["b", "a", "c"]  # ties: first feature first
