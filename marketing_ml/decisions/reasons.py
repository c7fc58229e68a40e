"""Why a client is in a list: the features that raise the *effect* of contacting them, not their propensity.

An uplift model's effect is a difference of two models (T-learner) or a blend of effect regressions
(X-learner), so no family's exact additive attribution applies to it. The reason is therefore measured
on the effect itself, one feature at a time: the predicted effect for the client minus the effect with
that feature set to the day's typical value (median; most frequent category). A positive difference means
the client's value of the feature makes a call more effective than usual. It is not additive (features
interact), which is why only the top three are named, and it costs one prediction of the listed clients
per feature, stacked into a single call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

REASONS = 3


def typical_values(frame: pd.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...]) -> dict[str, object]:
    """The reference each feature is replaced by: the day's median, or its most frequent category."""
    values = frame[list(numeric)].to_numpy(dtype=np.float64, na_value=np.nan)
    with warnings.catch_warnings():  # an all-missing column's median is NaN, as pandas has it, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.nanmedian(values, axis=0) if len(values) else np.full(len(numeric), np.nan)
    typical: dict[str, object] = dict(zip(numeric, medians.tolist()))
    typical |= {c: frame[c].mode(dropna=True).iloc[0] if frame[c].notna().any() else None for c in categorical}
    return typical


def effect_reasons(effect: Callable[[pd.DataFrame], np.ndarray], rows: pd.DataFrame, typical: dict[str, object],
                   top: int = REASONS) -> pd.DataFrame:
    """`reason_1..top` per row of `rows`: the features whose own value raises `effect` most over the
    typical value, "" where fewer raise it."""
    names = list(typical)
    if rows.empty:
        return pd.DataFrame({f"reason_{k + 1}": pd.Series(dtype=object) for k in range(top)})
    # one block of the rows per feature, that feature set to its typical value in its own block
    n = len(rows)
    tiled = np.tile(np.arange(n), len(names))
    block = {name: slice(k * n, (k + 1) * n) for k, name in enumerate(names)}
    stacked = pd.DataFrame({name: _tiled(rows[name], tiled, block.get(name), typical.get(name)) for name in rows.columns})
    actual = np.asarray(effect(rows), dtype=np.float64)
    replaced = np.asarray(effect(stacked), dtype=np.float64).reshape(len(names), len(rows))
    lift = actual[None, :] - replaced  # (features, rows)
    order = np.argsort(-lift, axis=0, kind="stable")[:top]
    labels = np.asarray(names, dtype=object)[order]
    labels[np.take_along_axis(lift, order, axis=0) <= 0] = ""
    return pd.DataFrame({f"reason_{k + 1}": labels[k] for k in range(min(top, len(names)))}, index=rows.index)


def _tiled(column: pd.Series, tiled: np.ndarray, block: slice | None, value: object) -> np.ndarray | pd.Series:
    """`column`'s values at `tiled`, with `value` in `block` (if any), in the column's own dtype (a median
    in an integer column truncates, as casting it would). Numpy columns are set in place on the copy the
    indexing makes; extension dtypes (categoricals) go through objects."""
    plain = isinstance(column.dtype, np.dtype)
    values = column.to_numpy(dtype=None if plain else object)[tiled]
    if block is not None:
        values[block] = value
    return values if plain else pd.Series(values).astype(column.dtype)
