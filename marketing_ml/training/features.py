"""Which columns of a training set are model inputs: the catalogued features, split numeric / categorical."""

from __future__ import annotations

import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from marketing_ml.training.datasets import NON_FEATURE_COLUMNS
from marketing_ml.training.preprocessing import FeatureSpec


def model_feature_spec(table: pd.DataFrame) -> FeatureSpec:
    """Model inputs of a training set: every feature column, never keys, labels or ground truth."""
    columns = [c for c in table.columns if c not in NON_FEATURE_COLUMNS]
    numeric = tuple(c for c in columns if is_numeric_dtype(table[c]) or is_bool_dtype(table[c]))
    categorical = tuple(c for c in columns if c not in numeric)
    return FeatureSpec(numeric, categorical)


def feature_catalog_version() -> str:
    return "unversioned"
