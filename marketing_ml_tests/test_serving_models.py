"""The API's per-classifier shortcuts give each family's own numbers, row by row and in blocks."""

from __future__ import annotations

import numpy as np
import pytest

from marketing_ml.registry.attribution import attribute, top_reasons
from marketing_ml.registry.frames import Split
from marketing_ml.registry.predictor import ActionPredictor, LoadedModel, OutcomePredictor
from marketing_ml.serving.models import ChampionSet, ServedModel
from marketing_ml.serving.trees import CompiledTrees
from marketing_ml.simulation.vocabulary import ACTION_NAMES
from marketing_ml.training.families import FAMILIES
from marketing_ml_tests.serving_world import FAST, SPEC, feature_rows, labelled


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


def test_compiled_boosters_give_the_boosters_own_probabilities_missing_values_included(splits):
    train, validation, rows = splits
    models = [FAMILIES["xgboost"].fit(SPEC, Split(train.X.iloc[i::2], train.y[i::2]), validation, FAST) for i in (0, 1)]
    boosters = [ServedModel(m).booster for m in models]
    inputs = [m.encode(rows.X) for m in models]
    inputs[0][::7, 0] = np.nan  # missing values take each split's default direction
    compiled = CompiledTrees(boosters)
    own = np.column_stack([b.inplace_predict(x, iteration_range=(0, n)) for (b, n, _), x in zip(boosters, inputs)])
    np.testing.assert_allclose(compiled.probabilities(inputs), own, atol=1e-6)
    np.testing.assert_allclose(compiled.probabilities([x[3:4] for x in inputs]), own[3:4], atol=1e-6)
    assert compiled.matches(boosters, inputs)
    booster, rounds, width = boosters[0]
    wrong = CompiledTrees([(booster, rounds - 1, width)])
    assert not wrong.matches([boosters[0]], inputs[:1]), "a wrong model is caught"


def test_a_champion_set_compiles_its_nba_boosters_only_when_they_match(splits):
    train, validation, rows = splits
    nba = ActionPredictor("nba", "xgboost", SPEC, {a: FAMILIES["xgboost"].fit(SPEC, train, validation, FAST)
                                                   for a in ACTION_NAMES})
    outcome = FAMILIES["logreg"].fit(SPEC, train, validation, FAST)
    loaded = {task: LoadedModel(task, "champion", "1", f"models:/{task}/1", None, predictor) for task, predictor in (
        ("conversion", OutcomePredictor("conversion", "logreg", SPEC, outcome, 30)),
        ("churn", OutcomePredictor("churn", "logreg", SPEC, outcome, 90)), ("nba", nba))}
    plain = ChampionSet(loaded)
    encoded = plain.encode(rows.X)
    compiled = plain.with_compiled_actions(encoded)
    assert plain.compiled_actions is None and compiled.compiled_actions is not None
    np.testing.assert_allclose(compiled.score(encoded, slice(0, 5)).actions.scores,
                               nba.predict_proba(rows.X.iloc[:5]), atol=1e-6)
    assert compiled.with_compiled_actions(encoded) is compiled
