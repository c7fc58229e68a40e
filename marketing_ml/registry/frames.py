"""A task's training set as frames: the rows training fits on and the gate judges every model on.

The training sets are tables that training builds in the warehouse (`marketing_ml.training.datasets`);
this is how any reader (training, the champion gate, monitoring) loads one and which of its columns a
model may read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketing_ml.features.catalog import ModelInputs, catalog_version, model_input_features
from marketing_ml.registry.evaluation import oracle_horizon_probability
from marketing_ml.registry.tasks import (
    ACTION,
    LABEL,
    LABEL_END,
    NBA,
    NON_FEATURE_COLUMNS,
    ORACLE,
    ORACLE_HAZARD,
    POLICY_SET,
    SPLIT,
    SPLITS,
    TRAINING_SCHEMA,
    training_set_table,
)
from marketing_ml.resources.warehouse import WarehouseResource


@dataclass
class Split:
    """Rows of one slice (train, validation, test): feature frame and 0/1 labels."""

    X: pd.DataFrame
    y: np.ndarray

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int8)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TrainingFrames:
    """A task's training set table cut into its out-of-time slices (features + label + evaluation columns).

    `selection` holds the rows the champion is chosen on; `test`, later, the rows every reported figure
    comes from. For the next best action, `population` holds the policy evaluation rows: clients active on
    the selection and test dates with the true response probability of every action (evaluation only);
    `population_of(slice)` gives one slice's. `ground_truth` says whether the rows carry the simulator's
    truth (the oracle column, the population); a provider's files have none, and then `population` is None.
    """

    spec: ModelInputs
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    population: pd.DataFrame | None = None
    selection: pd.DataFrame | None = None
    ground_truth: bool = True

    @classmethod
    def from_table(cls, table: pd.DataFrame, spec: ModelInputs, population: pd.DataFrame | None = None,
                   ground_truth: bool = True) -> TrainingFrames:
        parts = {name: table[table[SPLIT] == name].reset_index(drop=True) for name in SPLITS}
        return cls(spec, parts["train"], parts["validation"], parts["test"], population, parts["selection"], ground_truth)

    def population_of(self, name: str) -> pd.DataFrame | None:
        if self.population is None:
            return None
        return self.population[self.population[SPLIT] == name].reset_index(drop=True)

    def split(self, name: str, action: str | None = None) -> Split:
        rows = getattr(self, name)
        if action is not None:
            rows = rows[rows[ACTION] == action]
        return Split(rows[list(self.spec.all)], rows[LABEL].to_numpy())

    @property
    def horizon_days(self) -> int:
        """The label window of an outcome task's rows, in days."""
        row = self.test.iloc[0]
        return int((pd.Timestamp(row[LABEL_END]) - pd.Timestamp(row["as_of_date"])).days)


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


def load_training_frames(warehouse: WarehouseResource, task: str, splits: tuple[str, ...] | None = None, *,
                         ground_truth: bool) -> tuple[TrainingFrames, dict[str, str]]:
    """The task's training set (optionally only some slices) as frames, and its lineage for MLflow tags; with
    `ground_truth`, the oracle probability of every row and (next best action) the policy evaluation rows."""
    where = f" where {SPLIT} in ({', '.join(repr(s) for s in splits)})" if splits else ""
    # a stable row order: bootstrap samples, subsampling and batch order follow it, so results repeat
    order = " order by as_of_date, client_id" + (", touch_id" if task == NBA else "")
    table = warehouse.query(f"select * from {training_set_table(task)}{where}{order}")
    population = (
        warehouse.query(f"select * from {TRAINING_SCHEMA}.{POLICY_SET} order by as_of_date, client_id")
        if task == NBA and ground_truth else None
    )
    if task != NBA and ground_truth:
        horizon = (pd.to_datetime(table[LABEL_END]) - pd.to_datetime(table["as_of_date"])).dt.days
        table[ORACLE] = oracle_horizon_probability(table[ORACLE_HAZARD], horizon.to_numpy())
    spec = model_feature_spec(table)
    dates = pd.to_datetime(table["as_of_date"])
    lineage = {
        "data.training_set": training_set_table(task),
        "data.partition_range": f"{dates.min().date()}..{dates.max().date()}",
        **{f"data.{s}_dates": f"{dates[table[SPLIT] == s].min().date()}..{dates[table[SPLIT] == s].max().date()}"
           for s in table[SPLIT].unique()},
        "features.catalog_version": catalog_version(),
    }
    return TrainingFrames.from_table(table, spec, population, ground_truth), lineage
