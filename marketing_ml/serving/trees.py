"""Several XGBoost boosters evaluated together in numpy, for one-row requests.

A one-row XGBoost prediction costs ~0.1-0.2 ms, almost all of it Python-side set-up (input validation,
array interfaces, a DMatrix) around a few microseconds of tree walking; the next best action asks six
boosters per request. `CompiledTrees` lays all their trees out as flat node arrays (the booster's own
JSON model: split feature, float32 threshold, children, default direction for missing values, leaf
values, base score) and walks every tree of every booster at once, one vectorised step per tree level.

It is only used after `matches` has compared its probabilities with the boosters' own on real rows (the
service checks the stored feature rows when it loads a champion); a difference beyond float32 rounding
keeps the boosters' own path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xgboost as xgb
from scipy.special import expit, logit

TOLERANCE = 1e-6


class UnsupportedBooster(ValueError):
    """A booster this evaluator does not reproduce (not a binary:logistic gbtree, categorical splits)."""


class CompiledTrees:
    def __init__(self, boosters: Sequence[tuple[xgb.Booster, int, int]]):
        """`boosters`: (booster, trees to use (the early-stopped round count), input width) per model."""
        features, thresholds, left, right, missing, leaf, values, roots, tree_model = ([] for _ in range(9))
        base, offset, nodes = [], 0, 0
        for model, (booster, rounds, width) in enumerate(boosters):
            learner = json.loads(booster.save_raw("json"))["learner"]
            gbtree = learner["gradient_booster"]
            if learner["objective"]["name"] != "binary:logistic" or gbtree["name"] != "gbtree" \
                    or int(gbtree["model"]["gbtree_model_param"]["num_parallel_tree"]) != 1:
                raise UnsupportedBooster("only single-tree-per-round binary:logistic gbtree boosters are compiled")
            base.append(float(logit(float(learner["learner_model_param"]["base_score"].strip("[]")))))
            for tree in gbtree["model"]["trees"][:rounds]:
                if any(tree["split_type"]):
                    raise UnsupportedBooster("categorical splits are not compiled")
                children = np.asarray(tree["left_children"])
                is_leaf = children < 0
                features.append(np.where(is_leaf, 0, np.asarray(tree["split_indices"]) + offset))
                thresholds.append(np.asarray(tree["split_conditions"], dtype=np.float32))
                left.append(np.where(is_leaf, 0, children) + nodes)
                right.append(np.where(is_leaf, 0, np.asarray(tree["right_children"])) + nodes)
                missing.append(np.where(np.asarray(tree["default_left"], dtype=bool), left[-1], right[-1]))
                leaf.append(is_leaf)
                values.append(np.where(is_leaf, np.asarray(tree["split_conditions"], dtype=np.float32), 0.0))
                roots.append(nodes)
                tree_model.append(model)
                nodes += len(children)
            offset += width
        self.feature = np.concatenate(features)
        self.threshold = np.concatenate(thresholds)
        self.left, self.right, self.missing = np.concatenate(left), np.concatenate(right), np.concatenate(missing)
        self.leaf = np.concatenate(leaf)
        self.value = np.concatenate(values).astype(np.float64)
        self.roots = np.asarray(roots)
        self.base = np.asarray(base)
        self.per_model = np.zeros((len(roots), len(boosters)))  # tree -> its model, for summing leaves
        self.per_model[np.arange(len(roots)), tree_model] = 1.0
        self.depth = _max_depth(self.left, self.right, self.leaf, self.roots)

    def probabilities(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """(rows, models) P(label = 1), from each model's encoded input rows (float32, as the boosters see them)."""
        x = np.concatenate([np.asarray(v, dtype=np.float32) for v in inputs], axis=1)
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots)))
        for _ in range(self.depth):
            value = x[rows, self.feature[node]]
            step = np.where(np.isnan(value), self.missing[node],
                            np.where(value < self.threshold[node], self.left[node], self.right[node]))
            node = np.where(self.leaf[node], node, step)
        return expit(self.value[node] @ self.per_model + self.base)

    def matches(self, boosters: Sequence[tuple[xgb.Booster, int, int]], inputs: Sequence[np.ndarray]) -> bool:
        """Whether these probabilities equal the boosters' own on the given rows (to float32 rounding)."""
        own = np.column_stack([b.inplace_predict(np.asarray(x, dtype=np.float32), iteration_range=(0, n))
                               for (b, n, _), x in zip(boosters, inputs)])
        return bool(np.abs(self.probabilities(inputs) - own).max() <= TOLERANCE)


def _max_depth(left: np.ndarray, right: np.ndarray, leaf: np.ndarray, roots: np.ndarray) -> int:
    depth, frontier = 0, roots
    while not leaf[frontier].all():
        inner = frontier[~leaf[frontier]]
        frontier = np.concatenate([left[inner], right[inner]])
        depth += 1
    return depth
