"""Why a client got its score: additive feature attributions for every model family.

Each family gets the attribution that is exact for it, so a client's contributions plus the base value
add up to the model's own raw score (its margin), not to an approximation of it:

- xgboost: TreeSHAP, XGBoost's `pred_contribs` (log-odds);
- logreg: linear SHAP, coefficient x standardised input, the training mean as baseline (log-odds);
- random_forest: path attributions (each split's change in leaf purity goes to the split's feature),
  averaged over trees (probability, before the Platt scaling);
- torch_mlp: integrated gradients from the training mean (the Aumann-Shapley value of the network's
  log-odds), complete up to the integration error of a fixed number of steps.

Contributions are summed back from model columns (one-hot levels, scaled inputs) to the plain feature
names of the feature catalog, and a client's "reasons" are the features that pushed its score up most.
Calibration (Platt scaling) is monotone, so it changes no ranking of reasons and is left outside.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import xgboost as xgb
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from marketing_ml.registry.model import BinaryModel, TorchMLPClassifier

INTEGRATION_STEPS = 32
IG_PASS_ROWS = 8192  # integration points per forward/backward pass


@dataclass(frozen=True)
class Attribution:
    """Per-row contributions of each input feature to the model's raw score."""

    features: tuple[str, ...]
    contributions: np.ndarray  # (rows, features)
    base: np.ndarray  # (rows,) score of the reference input
    score_kind: str  # what contributions add up to: "log-odds" or "probability"
    method: str

    @property
    def margin(self) -> np.ndarray:
        return self.base + self.contributions.sum(axis=1)


def attribute(model: BinaryModel, frame: pd.DataFrame) -> Attribution:
    """Feature attributions of `model` for each row of `frame`."""
    return attribute_encoded(model, model.encode(frame))


def attribute_encoded(model: BinaryModel, X: np.ndarray) -> Attribution:
    """`attribute` for rows already passed through `model.encode` (the real-time API keeps rows encoded)."""
    classifier = model.pipeline.steps[-1][1]
    encoder = model.pipeline.steps[0][1]
    X = np.asarray(X, dtype=np.float32)
    if isinstance(classifier, xgb.XGBClassifier):
        columns, base, kind, method = _tree_shap(classifier, X)
    elif isinstance(classifier, LogisticRegression):
        columns = X.astype(np.float64) * classifier.coef_[0]
        base, kind, method = np.full(len(X), float(classifier.intercept_[0])), "log-odds", "linear SHAP"
    elif isinstance(classifier, RandomForestClassifier):
        columns, base = _forest_paths(classifier, X)
        kind, method = "probability", "tree path attributions"
    elif isinstance(classifier, TorchMLPClassifier):
        columns, base = _integrated_gradients(classifier, X)
        kind, method = "log-odds", "integrated gradients"
    else:
        raise TypeError(f"no attribution method for {type(classifier).__name__}")
    features, contributions = _by_source_feature(encoder.source_features_, columns)
    return Attribution(features, contributions, base, kind, method)


def raw_margin(model: BinaryModel, frame: pd.DataFrame) -> np.ndarray:
    """The family's own raw score, which an attribution adds up to (for checks and tests)."""
    classifier = model.pipeline.steps[-1][1]
    X = np.asarray(model.encode(frame), dtype=np.float32)
    if isinstance(classifier, RandomForestClassifier):
        return classifier.predict_proba(X)[:, 1]
    if isinstance(classifier, xgb.XGBClassifier):
        return classifier.predict(X, output_margin=True)
    return classifier.decision_function(X)


def top_reasons(attribution: Attribution, k: int = 3) -> pd.DataFrame:
    """The `k` features that raised each row's score most: columns reason_1..k and their contributions.

    Only positive contributions count as reasons; a row with fewer gets empty strings."""
    order, values = largest_contributions(attribution, k)
    names = np.asarray(attribution.features, dtype=object)[order]
    names = np.where(values > 0, names, "")
    out = {}
    for i in range(k):
        out[f"reason_{i + 1}"] = names[:, i]
        out[f"reason_{i + 1}_contribution"] = np.where(values[:, i] > 0, values[:, i], 0.0)
    return pd.DataFrame(out)


def largest_contributions(attribution: Attribution, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the indices (into `features`) and values of the `k` largest contributions, largest first,
    ties to the first feature (as a stable sort would order them).

    `k` passes of argmax (which returns the first maximum), each masking the one found: a full sort of
    ~90 contributions per row to keep 3 was a third of the batch explanation time."""
    remaining = attribution.contributions.copy()
    rows = np.arange(len(remaining))
    k = min(k, remaining.shape[1])
    order = np.empty((len(remaining), k), dtype=np.intp)
    for i in range(k):
        order[:, i] = remaining.argmax(axis=1)
        remaining[rows, order[:, i]] = -np.inf
    return order, np.take_along_axis(attribution.contributions, order, axis=1)


def _by_source_feature(sources: np.ndarray, columns: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Sum model columns that come from one input feature (one-hot levels) into that feature."""
    names, summing = _source_summing(tuple(sources))
    return names, columns @ summing


@functools.lru_cache(maxsize=64)
def _source_summing(sources: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """The (model columns x features) 0/1 matrix that sums columns into their feature; built once per
    encoder layout, because the real-time API attributes one row per request."""
    names, index = np.unique(np.asarray(sources, dtype=object), return_inverse=True)
    summing = np.zeros((len(index), len(names)))
    summing[np.arange(len(index)), index] = 1.0
    return tuple(names), summing


def _tree_shap(classifier: xgb.XGBClassifier, X: np.ndarray):
    booster = classifier.get_booster()
    best = getattr(classifier, "best_iteration", None)
    rounds = (0, best + 1) if best is not None else (0, 0)
    contribs = booster.predict(xgb.DMatrix(X), pred_contribs=True, iteration_range=rounds)
    return contribs[:, :-1].astype(np.float64), contribs[:, -1].astype(np.float64), "log-odds", "TreeSHAP (XGBoost pred_contribs)"


def _forest_paths(forest: RandomForestClassifier, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Saabas attributions: per tree, the rows' decision paths times the per-node "purity change x split
    feature" matrix, averaged over trees. Tree by tree, because stacking all trees' paths into one
    sparse matrix costs more than the products themselves."""
    contributions = np.zeros(X.shape, dtype=np.float64)
    roots = []
    for tree in forest.estimators_:
        t = tree.tree_
        share = t.value[:, 0, 1] / t.value[:, 0, :].sum(axis=1)
        parent = np.full(t.node_count, -1)
        for children in (t.children_left, t.children_right):
            inner = children >= 0
            parent[children[inner]] = np.flatnonzero(inner)
        child = np.flatnonzero(parent >= 0)
        per_node = sp.csr_matrix(
            (share[child] - share[parent[child]], (child, t.feature[parent[child]])), shape=(t.node_count, X.shape[1])
        )
        contributions += (tree.decision_path(X) @ per_node).toarray()
        roots.append(share[0])
    return contributions / len(forest.estimators_), np.full(len(X), float(np.mean(roots)))


def _integrated_gradients(network: TorchMLPClassifier, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Path integral of the log-odds gradient from the all-zero input (the training mean after scaling).

    The first layer is linear, so along the path its pre-activation is `alpha * (W x) + b` and the input
    gradient is `W^T` times the gradient at that pre-activation: `W x` is computed once per row and `W^T`
    applied once to the summed gradients, so the integration points only go through the narrower rest of
    the network (the same integral, several times fewer multiply-adds than differentiating the inputs).
    Several steps' points go through in one pass (up to IG_PASS_ROWS rows): a one-row request then costs
    one forward and backward pass instead of INTEGRATION_STEPS of them."""
    first, rest = network.network_[0], network.network_[1:]
    x = torch.as_tensor(X, dtype=torch.float32)
    alphas = torch.as_tensor((np.arange(INTEGRATION_STEPS) + 0.5) / INTEGRATION_STEPS, dtype=torch.float32)
    with torch.no_grad():
        direction = x @ first.weight.T  # (rows, units): d pre-activation / d alpha
    summed = torch.zeros_like(direction)
    for chunk in alphas.split(max(1, IG_PASS_ROWS // max(len(x), 1))):  # midpoint rule
        points = (chunk[:, None, None] * direction[None] + first.bias).reshape(-1, direction.shape[1]).requires_grad_(True)
        # rows are independent: each point gets its own gradient; the parameters need none
        (gradient,) = torch.autograd.grad(rest(points).sum(), points)
        summed += gradient.reshape(len(chunk), *direction.shape).sum(dim=0)
    with torch.no_grad():
        base = float(network.network_(torch.zeros(1, x.shape[1])).squeeze())
        contributions = x * (summed @ first.weight) / INTEGRATION_STEPS
    return contributions.numpy().astype(np.float64), np.full(len(X), base)
