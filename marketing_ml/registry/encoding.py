"""Feature rows to model matrices: one encoder for every family, fast enough for one-row API requests.

sklearn's `ColumnTransformer(OneHotEncoder, ...)` costs about 3 ms per call on a one-row DataFrame (pandas
validation and per-transformer overhead); the real-time API has a 5 ms budget for three models. The
`FrameEncoder` below does the same job (one-hot categoricals with a fixed vocabulary, numeric columns as
floats, missing values imputed, optional log scaling) in plain numpy in ~0.2 ms, and is an sklearn
transformer, so each family is still an ordinary sklearn `Pipeline`. Which columns are numeric and which
categorical is the feature catalog's call (`marketing_ml.features.catalog.ModelInputs`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted


def require_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """Fail with the missing column names rather than a bare KeyError deep inside a model."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"input is missing {len(missing)} feature column(s): {', '.join(missing)}")


class FrameEncoder(TransformerMixin, BaseEstimator):
    """DataFrame -> float32 matrix: numeric columns (optionally log1p-scaled), then one-hot categoricals.

    `log_scale=True` applies log1p to numeric columns that are non-negative and not bounded by 1 in the
    training data (counts, days, dollar amounts): linear models and MLPs then see relative differences,
    and a count's effect saturates as it does in most behavioural responses. Shares and rates in [0, 1]
    and signed columns are left alone. Trees do not need it (they are invariant to monotone transforms).
    Categories unseen in training encode as all zeros; missing numerics take the training median.
    """

    def __init__(self, numeric: Sequence[str] = (), categorical: Sequence[str] = (), log_scale: bool = False):
        self.numeric = numeric
        self.categorical = categorical
        self.log_scale = log_scale

    def fit(self, X: pd.DataFrame, y=None) -> FrameEncoder:
        require_columns(X, [*self.numeric, *self.categorical])
        values = self._numeric_values(X)
        with np.errstate(all="ignore"):
            medians = np.nanmedian(values, axis=0) if len(values) else np.zeros(values.shape[1])
            low, high = np.nanmin(values, axis=0, initial=np.inf), np.nanmax(values, axis=0, initial=-np.inf)
        self.medians_ = np.nan_to_num(medians)
        self.log_columns_ = np.asarray(self.log_scale & (low >= 0) & (high > 1), dtype=bool)
        self.categories_ = [np.asarray(sorted(X[c].dropna().astype(str).unique()), dtype=object) for c in self.categorical]
        self.feature_names_out_ = np.asarray(
            list(self.numeric)
            + [f"{c}={v}" for c, cats in zip(self.categorical, self.categories_) for v in cats],
            dtype=object,
        )
        # which input feature each output column comes from: importances are reported in plain feature names
        self.source_features_ = np.asarray(
            list(self.numeric) + [c for c, cats in zip(self.categorical, self.categories_) for _ in cats], dtype=object
        )
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "medians_")
        require_columns(X, [*self.numeric, *self.categorical])
        values = self._numeric_values(X)
        values = np.where(np.isnan(values), self.medians_, values)
        if self.log_columns_.any():
            values[:, self.log_columns_] = np.log1p(np.maximum(values[:, self.log_columns_], 0.0))
        # one float32 matrix filled in place: stacking the float and one-hot blocks would promote and copy
        # them all, which was most of the encoding time (every model encodes every row it scores)
        width = len(self.feature_names_out_)
        out = np.zeros((len(X), width), dtype=np.float32)
        out[:, : values.shape[1]] = values
        start, row_starts = values.shape[1], np.arange(len(X)) * width
        for column, categories in zip(self.categorical, self.categories_):
            # a column holds a handful of distinct values: look those up as strings, not every row's value
            # (missing values factorize to -1 and, like unseen categories, stay all zeros)
            row_codes, values_seen = pd.factorize(X[column])
            codes = np.append(pd.Index(categories).get_indexer(values_seen.astype(str)), -1)[row_codes]
            known = codes >= 0
            out.reshape(-1)[row_starts[known] + start + codes[known]] = 1.0
            start += len(categories)
        return out

    def signature(self, with_medians: bool) -> tuple:
        """What the output depends on: two encoders with one signature give the same matrix (medians
        only matter for rows with a missing number)."""
        check_is_fitted(self, "medians_")
        return (tuple(self.numeric), tuple(self.categorical), self.log_columns_.tobytes(),
                tuple(tuple(c) for c in self.categories_), self.medians_.tobytes() if with_medians else None)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_

    def _numeric_values(self, X: pd.DataFrame) -> np.ndarray:
        if not self.numeric:
            return np.empty((len(X), 0))
        return X[list(self.numeric)].to_numpy(dtype=np.float64, na_value=np.nan)


class EncodedRows:
    """Feature rows with the matrices encoders have made of them, shared by every model they go through.

    A day's rows go through about fifteen models (conversion, churn, six next-best-action responses, the
    uplift learners' arms and effect regressions) and the explanations of two of them. Models fitted on
    different rows have encoders that differ only in the medians they impute missing numbers with, so for
    rows without missing numbers they give the same matrix: each distinct encoder (`FrameEncoder.signature`)
    runs once per rows. The matrices are shared, so nothing may write into them.
    """

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self._matrices: dict[tuple, np.ndarray] = {}
        self._missing: frozenset[str] | None = None

    @classmethod
    def of(cls, rows: pd.DataFrame | EncodedRows) -> EncodedRows:
        return rows if isinstance(rows, EncodedRows) else cls(rows)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def index(self) -> pd.Index:
        return self.frame.index

    @property
    def columns(self) -> pd.Index:
        return self.frame.columns

    def encoded_by(self, encoder: FrameEncoder) -> np.ndarray:
        if self._missing is None:
            self._missing = frozenset(self.frame.columns[self.frame.isna().to_numpy().any(axis=0)])
        key = encoder.signature(with_medians=not self._missing.isdisjoint(encoder.numeric))
        if key not in self._matrices:
            self._matrices[key] = encoder.transform(self.frame)
        return self._matrices[key]


def model_input(pipeline: Pipeline, rows: pd.DataFrame | EncodedRows) -> np.ndarray:
    """What a model pipeline's last step (the classifier or regressor) sees for `rows`: the `FrameEncoder`
    first (shared through `EncodedRows`), then any steps between it and the last (scaling)."""
    encoder, between = pipeline[0], pipeline[1:-1]
    X = rows.encoded_by(encoder) if isinstance(rows, EncodedRows) else encoder.transform(rows)
    return between.transform(X) if len(between) else X


def importance_by_feature(encoder: FrameEncoder, column_importance: np.ndarray) -> pd.Series:
    """Importance per input feature (one-hot columns summed back), normalised to sum to 1, largest first."""
    series = pd.Series(np.abs(np.asarray(column_importance, dtype=float)), index=encoder.source_features_)
    grouped = series.groupby(level=0, sort=False).sum()
    total = grouped.sum()
    return (grouped / total if total > 0 else grouped).sort_values(ascending=False)
