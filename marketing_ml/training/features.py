"""Which columns of a training set are model inputs: the feature catalog's, split numeric / categorical."""

from __future__ import annotations

import pandas as pd

from marketing_ml.features.catalog import ModelInputs, catalog_version, model_input_features
from marketing_ml.training.datasets import NON_FEATURE_COLUMNS


def model_feature_spec(table: pd.DataFrame) -> ModelInputs:
    """The catalogued model inputs (never keys, labels or ground truth); every one must be in `table`."""
    inputs = model_input_features()
    missing = [c for c in inputs.all if c not in table.columns]
    if missing:
        raise KeyError(f"the training set lacks catalogued features {', '.join(missing)}: rebuild it after the "
                       "features step (marketing-ml run --step features --step models)")
    allowed = set(table.columns) - NON_FEATURE_COLUMNS
    return ModelInputs(
        tuple(c for c in inputs.numeric if c in allowed), tuple(c for c in inputs.categorical if c in allowed)
    )


def feature_catalog_version() -> str:
    return catalog_version()
