"""The fitted models behind every registered version: what scoring, the API and the registry run.

A `BinaryModel` is an sklearn `Pipeline` (the shared `FrameEncoder`, then a family's own steps) and, for
the families whose raw scores are not probabilities to trust, a Platt scaling fitted on the validation
slice. The classes here are what a logged model's pickle refers to, so they live in the model contract
(this package), not in training: loading a champion never imports the code that fitted it. Training
(`marketing_ml.training.families`) builds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from marketing_ml.registry.encoding import EncodedRows, model_input

EPS = 1e-6


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
        model = LogisticRegression(C=1e4, max_iter=1000).fit(logit(p)[:, None], y)
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def apply(self, p: np.ndarray) -> np.ndarray:
        return sigmoid(self.slope * logit(p) + self.intercept)


@dataclass
class BinaryModel:
    """A fitted classifier over feature rows: `predict_proba(frame)` -> P(label = 1), one value per row."""

    pipeline: Pipeline
    calibration: PlattScaling | None
    importance: pd.Series  # by input feature name, sums to 1, largest first
    importance_kind: str
    fit_info: dict[str, Any]

    def predict_proba(self, X: pd.DataFrame | EncodedRows) -> np.ndarray:
        return self.predict_proba_encoded(self.encode(X))

    def encode(self, X: pd.DataFrame | EncodedRows) -> np.ndarray:
        """The classifier's input matrix: every pipeline step but the last. The real-time API encodes its
        stored feature rows once, so a request runs only the classifier; batch scoring shares the encoding
        of a day's rows between models (`EncodedRows`)."""
        return model_input(self.pipeline, X)

    def predict_proba_encoded(self, X_encoded: np.ndarray) -> np.ndarray:
        """`predict_proba` for rows already passed through `encode` (same numbers)."""
        p = self.pipeline[-1].predict_proba(X_encoded)[:, 1].astype(np.float64)
        return self.calibration.apply(p) if self.calibration else p


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
        p = sigmoid(self.decision_function(X))
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
    torch.nn.init.constant_(output.bias, float(logit(np.array([base_rate]))[0]))
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


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
