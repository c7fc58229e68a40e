"""The API's per-classifier shortcuts give each family's own numbers, row by row and in blocks."""

from __future__ import annotations

import numpy as np
import pytest

from marketing_ml.scoring.explanations import attribute, top_reasons
from marketing_ml.serving.models import ServedModel
from marketing_ml.training.families import FAMILIES, Split
from marketing_ml_tests.serving_world import FAST, SPEC, labelled, feature_rows


@pytest.fixture(scope="module")
def splits():
    rng = np.random.default_rng(5)
    frames = [labelled(feature_rows(n, rng), -3.0, rng) for n in (3000, 1000, 200)]
    return [Split(f[list(SPEC.all)], f["label"].to_numpy()) for f in frames]


@pytest.mark.parametrize("family", ["logreg", "xgboost", "random_forest", "torch_mlp"])
def test_served_scores_and_reasons_are_the_models_own(family, splits):
    train, validation, rows = splits
    model = FAMILIES[family].fit(SPEC, train, validation, FAST)
    served = ServedModel(model)
    assert served.margin_is_score == (family in ("logreg", "xgboost"))
    X = model.encode(rows.X)
    expected = model.predict_proba(rows.X)
    reasons = top_reasons(attribute(model, rows.X))

    block = served.probability_and_reasons(X)
    np.testing.assert_allclose(block.probability, expected, atol=1e-6)
    np.testing.assert_allclose(served.probability(X), expected, atol=1e-6)
    for i in range(0, len(rows), 37):  # one row at a time, as a request runs it
        one = served.probability_and_reasons(X[i:i + 1])
        assert one.probability[0] == pytest.approx(expected[i], abs=1e-6)
        assert served.probability(X[i:i + 1])[0] == pytest.approx(expected[i], abs=1e-6)
        names = [reasons[f"reason_{k}"].iloc[i] for k in (1, 2, 3) if reasons[f"reason_{k}"].iloc[i]]
        assert [r.feature for r in one.reasons[0]] == names
        assert [r.contribution for r in one.reasons[0]] == pytest.approx(
            [reasons[f"reason_{k}_contribution"].iloc[i] for k in range(1, len(names) + 1)], abs=1e-6)


def test_boosters_reading_the_same_rows_share_one_dmatrix_and_keep_their_own_scores(splits):
    train, validation, rows = splits
    half = len(train) // 2
    first = FAMILIES["xgboost"].fit(SPEC, train, validation, FAST)
    second = FAMILIES["xgboost"].fit(SPEC, Split(train.X.iloc[half:], train.y[half:]), validation, FAST)
    X = first.encode(rows.X)
    np.testing.assert_array_equal(X, second.encode(rows.X))  # no missing values: same encoding
    shared: dict = {}
    for model in (first, second):
        np.testing.assert_allclose(ServedModel(model).probability(X[:1], shared), model.predict_proba(rows.X.iloc[:1]),
                                   atol=1e-6)
    assert len(shared) == 1
