"""Batch scoring: a day's feature rows in, one vectorised predict call per model per chunk out.

The champions are loaded once per run (`load_champion`), so every row of a run is scored by the same
model versions, and each output row records them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from marketing_ml.features.catalog import FEATURE_TABLE
from marketing_ml.registry.attribution import attribute, top_reasons
from marketing_ml.registry.predictor import LoadedModel, load_champion
from marketing_ml.registry.tasks import NBA, OUTCOME_TASKS, TASK_NAMES
from marketing_ml.resources.warehouse import WarehouseResource

CHUNK_ROWS = 100_000  # bounded memory on any population; one predict call per model per chunk


def chunks(frame: pd.DataFrame, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), rows):
        yield frame.iloc[start : start + rows]


def load_champions(tracking_uri: str) -> dict[str, LoadedModel]:
    """Every task's @champion, loaded once so a whole run is scored by the same versions."""
    return {task: load_champion(task, tracking_uri) for task in TASK_NAMES}


def features_of_day(warehouse: WarehouseResource, day: dt.date) -> pd.DataFrame:
    """The feature rows of every client active at the start of `day`; none is an error that says what to build."""
    features = warehouse.query(f"select * from {FEATURE_TABLE} where as_of_date = ?", [day])
    if features.empty:
        raise LookupError(f"no feature rows for {day}: build the features step for that day first")
    return features


def score_days(warehouse: WarehouseResource, days: list[dt.date],
               scorers: Mapping[str, Callable[[pd.DataFrame], pd.DataFrame]],
               log: Callable[[str], None]) -> dict[str, pd.DataFrame]:
    """Each of `scorers` applied to each day's feature rows, the rows read once per day for all of them
    (memory bounded by one day), with a line of progress per day: a 35-day backfill is minutes of work."""
    scored: dict[str, list[pd.DataFrame]] = {name: [] for name in scorers}
    with warehouse.session():
        for k, day in enumerate(days, start=1):
            features = features_of_day(warehouse, day)
            for name, score in scorers.items():
                scored[name].append(score(features))
            log(f"{day} ({k}/{len(days)}): {len(features):,} clients: {', '.join(scorers)}")
    return {name: pd.concat(frames, ignore_index=True) for name, frames in scored.items()}


def score_clients(features: pd.DataFrame, champions: Mapping[str, LoadedModel]) -> pd.DataFrame:
    """Predictions for every row of `features` (client_id, as_of_date, is_converted + feature columns).

    Converted clients keep their churn score but get no conversion probability (NaN): they cannot
    convert again, and a zero would read as a prediction.
    """
    parts = []
    for chunk in chunks(features):
        out = chunk[["client_id", "as_of_date"]].reset_index(drop=True)
        for task in OUTCOME_TASKS:
            out[f"p_{task}"] = champions[task].predictor.predict_proba(chunk)
        out.loc[chunk["is_converted"].to_numpy(dtype=bool), "p_conversion"] = np.nan
        nba = champions[NBA].predictor.predict_frame(chunk).reset_index(drop=True)
        out = pd.concat([out, nba], axis=1)
        parts.append(out)
    predictions = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for task in TASK_NAMES:
        predictions[f"{task}_model_version"] = champions[task].version if len(predictions) else pd.Series(dtype=str)
    return predictions


def explain_clients(features: pd.DataFrame, champions: Mapping[str, LoadedModel], k: int = 3) -> pd.DataFrame:
    """Top `k` reasons per client for the conversion and churn scores, in feature names.

    A converted client has no conversion score (`score_clients`), so it gets no conversion reasons either
    (empty names, zero contributions, no method) and costs no attribution."""
    parts = []
    for chunk in chunks(features):
        out = chunk[["client_id", "as_of_date"]].reset_index(drop=True)
        converted = chunk["is_converted"].to_numpy(dtype=bool)
        for task in OUTCOME_TASKS:
            scored = ~converted if task == "conversion" else np.ones(len(chunk), dtype=bool)
            attribution = attribute(champions[task].predictor.model, chunk[scored])
            reasons = top_reasons(attribution, k).set_index(np.flatnonzero(scored)).reindex(range(len(chunk)))
            for column in reasons.columns:
                reasons[column] = reasons[column].fillna(0.0 if column.endswith("_contribution") else "")
            out = pd.concat([out, reasons.add_prefix(f"{task}_")], axis=1)
            out[f"{task}_explanation_method"] = np.where(scored, attribution.method, "")
        parts.append(out)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
