"""Client segments of a day's scores: lifecycle x value tier x churn-risk band, sizes and average scores.

Plain pandas on one day's scored clients (tested on hand-made frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd

VALUE_TIERS = ((0, "mass"), (50_000, "emerging_affluent"), (250_000, "affluent"))
RISK_BANDS = ((0.0, "low"), (0.02, "medium"), (0.05, "high"))  # P(churn within the churn horizon)


def _band(values: np.ndarray, bands: tuple[tuple[float, str], ...]) -> np.ndarray:
    edges = np.asarray([edge for edge, _ in bands[1:]])
    return np.asarray([name for _, name in bands], dtype=object)[np.searchsorted(edges, values, side="right")]


def client_segments(scored: pd.DataFrame) -> pd.DataFrame:
    """Lifecycle x value tier x churn-risk band: sizes and average scores.

    `scored` needs lifecycle_segment, investable_assets, p_conversion, p_churn."""
    frame = scored.assign(
        value_tier=_band(scored["investable_assets"].to_numpy(dtype=float), VALUE_TIERS),
        risk_band=_band(scored["p_churn"].to_numpy(dtype=float), RISK_BANDS),
    )
    segments = (
        frame.groupby(["lifecycle_segment", "value_tier", "risk_band"], observed=True)
        .agg(
            clients=("client_id", "size"),
            avg_p_conversion=("p_conversion", "mean"),
            avg_p_churn=("p_churn", "mean"),
            avg_investable_assets=("investable_assets", "mean"),
        )
        .reset_index()
    )
    segments["share"] = segments["clients"] / segments["clients"].sum()
    return segments.sort_values("clients", ascending=False).reset_index(drop=True)
