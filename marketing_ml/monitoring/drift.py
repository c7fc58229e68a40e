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


@dataclass(frozen=True)
class NumericReference:
    """What PSI and KS need of a numeric reference column, computed once: a monitoring run compares every
    day of its range to the same reference, so sorting and binning it per day would repeat the work."""

    values: np.ndarray  # sorted, no NaN
    edges: np.ndarray  # inner quantile-bin edges (ties collapsed, so discrete counts still work)
    shares: np.ndarray  # share of the reference in each bin
    mean: float

    @classmethod
    def of(cls, values: np.ndarray, bins: int = PSI_BINS) -> NumericReference:
        values = np.sort(values[~np.isnan(values)])
        if len(values) == 0:
            return cls(values, np.empty(0), np.empty(0), float("nan"))
        edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
        return cls(values, edges, counts / counts.sum(), float(values.mean()))

    def psi(self, current: np.ndarray) -> float:
        """PSI of `current` (sorted or not, NaN allowed) over the reference's quantile bins."""
        current = current[~np.isnan(current)]
        if len(self.values) == 0 or len(current) == 0:
            return float("nan")
        counts = np.bincount(np.searchsorted(self.edges, current, side="right"), minlength=len(self.edges) + 1)
        return _psi(self.shares, counts / counts.sum())

    def ks(self, current: np.ndarray) -> float:
        """Largest gap between the two empirical CDFs (vectorised; no scipy call per column)."""
        current = np.sort(current[~np.isnan(current)])
        if len(self.values) == 0 or len(current) == 0:
            return float("nan")
        grid = np.concatenate([self.values, current])
        ref_cdf = np.searchsorted(self.values, grid, side="right") / len(self.values)
        cur_cdf = np.searchsorted(current, grid, side="right") / len(current)
        return float(np.max(np.abs(ref_cdf - cur_cdf)))


def categorical_psi(reference_shares: pd.Series, current: pd.Series) -> float:
    """PSI of `current`'s category shares against the reference's (`value_counts(normalize=True)`)."""
    categories = sorted(set(reference_shares.index) | set(current.dropna().unique()))
    ref = reference_shares.reindex(categories, fill_value=0).to_numpy()
    cur = current.value_counts(normalize=True).reindex(categories, fill_value=0).to_numpy()
    return _psi(ref, cur)


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _as_float(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=float, na_value=np.nan)


class DriftReference:
    """The reference side of drift for a set of columns, computed once and compared to any number of days."""

    def __init__(self, reference: pd.DataFrame, columns: list[str]):
        self.columns = list(columns)
        self.numeric = {c: NumericReference.of(_as_float(reference[c])) for c in self.columns if _is_numeric(reference[c])}
        self.categorical = {c: reference[c].value_counts(normalize=True) for c in self.columns if c not in self.numeric}

    def compare(self, current: pd.DataFrame) -> list[ColumnDrift]:
        out = []
        for column in self.columns:
            if column in self.numeric:
                ref, values = self.numeric[column], _as_float(current[column])
                out.append(ColumnDrift(column, "numeric", ref.psi(values), ref.ks(values), ref.mean,
                                       float(np.nanmean(values))))
            else:
                out.append(ColumnDrift(column, "categorical", categorical_psi(self.categorical[column], current[column]),
                                       None, None, None))
        return out


def column_drift(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> list[ColumnDrift]:
    return DriftReference(reference, columns).compare(current)


def drift_frame(drifts: list[ColumnDrift]) -> pd.DataFrame:
    return pd.DataFrame([d.__dict__ for d in drifts]).sort_values("psi", ascending=False).reset_index(drop=True)


def reference_rows(warehouse: WarehouseResource) -> pd.DataFrame:
    """The conversion champion's training rows (a deterministic sample): the baseline drift compares to."""
    return warehouse.query(
        f"select * from {training_set_table('conversion')} where {SPLIT} = 'train' "
        f"order by hash(client_id, as_of_date) limit {REFERENCE_ROWS}"
    )


def drift_samples(warehouse: WarehouseResource, columns: list[str], first: dt.date, last: dt.date) -> pd.DataFrame:
    """`as_of_date` and `columns` of a deterministic sample of each day's feature rows, `first` to `last`:
    per day the `REFERENCE_ROWS` clients of smallest hash, in hash order, as a query of that day alone would
    pick them. One query for the range: the sample's keys first (two columns over the days' rows, bounded
    at any population), then only their rows' columns; a query per day scans the whole feature table each
    time (its row groups hold every date after a year-long backfill)."""
    selected = ", ".join(f"f.{c}" for c in columns)
    return warehouse.query(
        f"""with sample as (
                select client_id, as_of_date, hash(client_id) as sample_order from {FEATURE_TABLE}
                where as_of_date between ? and ?
                qualify row_number() over (partition by as_of_date order by hash(client_id)) <= {REFERENCE_ROWS})
            select f.as_of_date, {selected} from {FEATURE_TABLE} f join sample s using (client_id, as_of_date)
            order by f.as_of_date, s.sample_order""",
        [first, last],
    )


def feature_drift_of_day(reference: DriftReference, current: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Drift of every column of `reference` on `day`'s sample (`drift_samples`)."""
    return drift_frame(reference.compare(current)).assign(as_of_date=day)


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
