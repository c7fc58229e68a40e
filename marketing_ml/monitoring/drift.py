"""Distribution drift between a reference sample (the champion's training data) and today's data.

PSI (population stability index) on quantile bins of the reference is the industry's drift measure
for scorecards: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a shift worth acting on. For continuous columns
the two-sample Kolmogorov-Smirnov statistic is reported beside it, because PSI depends on the binning
and KS does not. Categorical columns are compared on their category shares.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketing_ml.features.catalog import FEATURE_TABLE
from marketing_ml.metadata import figure_markdown
from marketing_ml.monitoring.alerts import FEATURE_PSI
from marketing_ml.registry.tasks import SPLIT, training_set_table
from marketing_ml.resources.warehouse import WarehouseResource

PSI_BINS = 10
# A share of zero makes PSI infinite; the floor keeps one empty bin from dominating the index.
SHARE_FLOOR = 1e-4
# rows compared per side: a deterministic sample, enough for PSI and KS on every feature
REFERENCE_ROWS = 20_000


@dataclass(frozen=True)
class ColumnDrift:
    feature: str
    kind: str  # "numeric" or "categorical"
    psi: float
    ks: float | None  # numeric columns only
    reference_mean: float | None
    current_mean: float | None


def _psi(reference_share: np.ndarray, current_share: np.ndarray) -> float:
    ref = np.maximum(reference_share, SHARE_FLOOR)
    cur = np.maximum(current_share, SHARE_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI over the reference's quantile bins (ties collapse bins, so discrete counts still work)."""
    reference = reference[~np.isnan(reference)]
    current = current[~np.isnan(current)]
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    return _psi(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())


def categorical_psi(reference: pd.Series, current: pd.Series) -> float:
    categories = sorted(set(reference.dropna().unique()) | set(current.dropna().unique()))
    ref = reference.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy()
    cur = current.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy()
    return _psi(ref, cur)


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest gap between the two empirical CDFs (vectorised; no scipy call per column)."""
    reference = np.sort(reference[~np.isnan(reference)])
    current = np.sort(current[~np.isnan(current)])
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    grid = np.concatenate([reference, current])
    ref_cdf = np.searchsorted(reference, grid, side="right") / len(reference)
    cur_cdf = np.searchsorted(current, grid, side="right") / len(current)
    return float(np.max(np.abs(ref_cdf - cur_cdf)))


def column_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> list[ColumnDrift]:
    out = []
    for column in columns:
        ref, cur = reference[column], current[column]
        if pd.api.types.is_numeric_dtype(ref) or pd.api.types.is_bool_dtype(ref):
            ref_values = ref.to_numpy(dtype=float, na_value=np.nan)
            cur_values = cur.to_numpy(dtype=float, na_value=np.nan)
            out.append(
                ColumnDrift(
                    column, "numeric", numeric_psi(ref_values, cur_values), ks_statistic(ref_values, cur_values),
                    float(np.nanmean(ref_values)), float(np.nanmean(cur_values)),
                )
            )
        else:
            out.append(ColumnDrift(column, "categorical", categorical_psi(ref, cur), None, None, None))
    return out


def drift_frame(drifts: list[ColumnDrift]) -> pd.DataFrame:
    return pd.DataFrame([d.__dict__ for d in drifts]).sort_values("psi", ascending=False).reset_index(drop=True)


def reference_rows(warehouse: WarehouseResource) -> pd.DataFrame:
    """The conversion champion's training rows (a deterministic sample): the baseline drift compares to."""
    return warehouse.query(
        f"select * from {training_set_table('conversion')} where {SPLIT} = 'train' "
        f"order by hash(client_id, as_of_date) limit {REFERENCE_ROWS}"
    )


def feature_drift_of_day(warehouse: WarehouseResource, reference: pd.DataFrame, day: dt.date, columns: list[str]) -> pd.DataFrame:
    """Drift of every model input on one day's feature rows (a deterministic sample) against `reference`."""
    current = warehouse.query(
        f"select {', '.join(columns)} from {FEATURE_TABLE} where as_of_date = ? "
        f"order by hash(client_id) limit {REFERENCE_ROWS}", [day]
    )
    return drift_frame(column_drift(reference, current, columns)).assign(as_of_date=day)


def psi_plot(worst: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(worst), 3) + 1))
    ax.barh(worst["feature"][::-1], worst["psi"][::-1], color="#4C72B0")
    for limit, colour in ((FEATURE_PSI.warning, "#DD8452"), (FEATURE_PSI.critical, "#C44E52")):
        ax.axvline(limit, color=colour, linestyle="--", linewidth=1)
    ax.set_xlabel("PSI vs training")
    fig.tight_layout()
    return figure_markdown(fig, "feature drift")
