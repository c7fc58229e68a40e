"""The four model families behind every task: one interface, `Family.fit(spec, train, validation)`.

Each family returns a `BinaryModel`: an sklearn `Pipeline` (the shared `FrameEncoder`, then the family's
own steps) and, for the families whose raw scores are not probabilities to trust, a Platt scaling fitted
on the validation slice. No family uses class weights: outcomes are rare (1-3% per window) and the
scores are read as probabilities (expected conversions, expected churn saves), so they must stay
calibrated. The validation slice lies between the training and test dates, so early stopping and
calibration never see the test rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.training.preprocessing import FrameEncoder, importance_by_feature

EPS = 1e-6


@dataclass
class Split:
    """Rows of one slice (train, validation, test): feature frame and 0/1 labels."""

    X: pd.DataFrame
    y: np.ndarray

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int8)

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class FitOptions:
    seed: int = 7
    threads: int = 2
    log: Callable[[str], None] = field(default=lambda message: None)


@dataclass(frozen=True)
class PlattScaling:
    """p -> sigmoid(slope * logit(p) + intercept), fitted on the validation slice.

    On the logit scale, not sklearn's sigmoid-of-probability: for rare events the raw scores cluster near
    zero, where a sigmoid of p is nearly flat and cannot correct them.
    """

    slope: float
    intercept: float

    @classmethod
    def fit(cls, p: np.ndarray, y: np.ndarray) -> PlattScaling:
        if len(np.unique(y)) < 2:  # nothing to learn a scaling from: keep the scores as they are
            return cls(1.0, 0.0)
        model = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(p)[:, None], y)
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def apply(self, p: np.ndarray) -> np.ndarray:
        return _sigmoid(self.slope * _logit(p) + self.intercept)


@dataclass
class BinaryModel:
    """A fitted classifier over feature rows: `predict_proba(frame)` -> P(label = 1), one value per row."""

    pipeline: Pipeline
    calibration: PlattScaling | None
    importance: pd.Series  # by input feature name, sums to 1, largest first
    importance_kind: str
    fit_info: dict[str, Any]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba_encoded(self.encode(X))

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        """The classifier's input matrix: every pipeline step but the last. The real-time API encodes its
        stored feature rows once, so a request runs only the classifier."""
        return self.pipeline[:-1].transform(X)

    def predict_proba_encoded(self, X_encoded: np.ndarray) -> np.ndarray:
        """`predict_proba` for rows already passed through `encode` (same numbers)."""
        p = self.pipeline[-1].predict_proba(X_encoded)[:, 1].astype(np.float64)
        return self.calibration.apply(p) if self.calibration else p


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
        {"platt_slope": calibration.slope, "platt_intercept": calibration.intercept},
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
            "Random forest (each tree on a 30% bootstrap, leaves of at least 50 rows), Platt-scaled on the "
            "validation slice.",
            {"n_estimators": 100, "min_samples_leaf": 50, "max_features": "sqrt", "max_samples": 0.3},
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
FAMILY_NAMES = tuple(FAMILIES)


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """A small feed-forward network trained with plain binary cross-entropy, CPU-only and deterministic.

    Deterministic: `torch.manual_seed`, a seeded generator for the batch order and
    `torch.use_deterministic_algorithms(True)` while fitting. The output bias starts at the logit of the
    base rate, so a rare positive class does not spend the first epochs learning its frequency.
    Early stopping keeps the weights of the epoch with the lowest validation loss.
    """

    def __init__(self, hidden=(64, 32), dropout=0.1, lr=1e-3, weight_decay=1e-5, batch_size=1024, max_epochs=30,
                 patience=4, seed=7, threads=2):
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.seed = seed
        self.threads = threads

    def fit(self, X, y, X_valid, y_valid, log: Callable[[str], None] = lambda m: None) -> TorchMLPClassifier:
        with _torch_determinism(self.threads):
            torch.manual_seed(self.seed)
            generator = torch.Generator().manual_seed(self.seed)
            X_t, y_t = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
            X_v, y_v = torch.as_tensor(X_valid, dtype=torch.float32), torch.as_tensor(y_valid, dtype=torch.float32)
            network = _mlp(X_t.shape[1], self.hidden, self.dropout, base_rate=float(y_t.mean()))
            optimiser = torch.optim.Adam(network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            loss_fn = torch.nn.BCEWithLogitsLoss()
            best_loss, best_state, stale, epochs = np.inf, None, 0, 0
            for epoch in range(self.max_epochs):
                network.train()
                for batch in torch.randperm(len(X_t), generator=generator).split(self.batch_size):
                    optimiser.zero_grad()
                    loss_fn(network(X_t[batch]).squeeze(1), y_t[batch]).backward()
                    optimiser.step()
                network.eval()
                with torch.inference_mode():
                    validation_loss = float(loss_fn(network(X_v).squeeze(1), y_v))
                epochs = epoch + 1
                log(f"torch_mlp epoch {epochs}: validation log loss {validation_loss:.5f}")
                if validation_loss < best_loss - 1e-6:
                    best_loss, stale = validation_loss, 0
                    best_state = {k: v.clone() for k, v in network.state_dict().items()}
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
            if best_state is not None:
                network.load_state_dict(best_state)
        self.network_ = network.eval()
        self.epochs_ = epochs
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X) -> np.ndarray:
        with torch.inference_mode():
            return self.network_(torch.as_tensor(np.asarray(X), dtype=torch.float32)).squeeze(1).numpy().astype(np.float64)

    def predict_proba(self, X) -> np.ndarray:
        p = _sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict(self, X) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _mlp(n_inputs: int, hidden: tuple[int, ...], dropout: float, base_rate: float) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    width = n_inputs
    for units in hidden:
        layers += [torch.nn.Linear(width, units), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
        width = units
    output = torch.nn.Linear(width, 1)
    torch.nn.init.constant_(output.bias, float(_logit(np.array([base_rate]))[0]))
    return torch.nn.Sequential(*layers, output)


class _torch_determinism:
    """Deterministic kernels and a fixed thread count while fitting; the process's settings come back after."""

    def __init__(self, threads: int):
        self.threads = threads

    def __enter__(self):
        self.previous = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.previous[0])
        torch.set_num_threads(self.previous[1])


def permutation_importance(model: BinaryModel, spec: ModelInputs, rows: Split, seed: int, max_rows: int = 20_000) -> pd.Series:
    """Drop in AUC when one feature is shuffled (on up to `max_rows` validation rows), normalised to sum 1."""
    rng = np.random.default_rng(seed)
    take = rng.permutation(len(rows))[:max_rows]
    X, y = rows.X.iloc[take].reset_index(drop=True), rows.y[take]
    if len(np.unique(y)) < 2:
        return pd.Series(0.0, index=list(spec.all))
    reference = roc_auc_score(y, model.predict_proba(X))
    drops = {}
    for column in spec.all:
        shuffled = X.copy()
        shuffled[column] = X[column].to_numpy()[rng.permutation(len(X))]
        drops[column] = max(reference - roc_auc_score(y, model.predict_proba(shuffled)), 0.0)
    series = pd.Series(drops)
    total = series.sum()
    return (series / total if total > 0 else series).sort_values(ascending=False)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
