"""A small world for the API tests: real models from the training core, a real MLflow store, a real DuckDB.

The feature rows are synthetic (a known logistic truth over a handful of feature columns), so the serving
tests do not depend on the dbt features; the models are trained, logged and registered exactly as the
training assets do it (`train_*_model`, `log_trained_model`, `register`, aliases), and the online table is
built by the same function as the `online_client_features` asset.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.registry.frames import TrainingFrames
from marketing_ml.registry.store import CHAMPION, log_trained_model, register
from marketing_ml.registry.tasks import (
    ACTION,
    LABEL,
    ORACLE,
    ORACLE_ACTION_PREFIX,
    ORACLE_BEST_ACTION,
    OUTCOME_TASKS,
    SPLIT,
)
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.resources.warehouse import DuckDBWarehouse
from marketing_ml.serving.api import API_KEY_HEADER, FeatureField
from marketing_ml.serving.online_features import ONLINE_TABLE, SOURCE_TABLE, build_online_features
from marketing_ml.simulation.vocabulary import ACTION_NAMES
from marketing_ml.training.families import FAMILIES, FitOptions
from marketing_ml.training.fitting import train_action_model, train_outcome_model

SPEC = ModelInputs(
    numeric=("logins_30d", "calculator_use_30d", "balance_401k", "email_click_rate", "has_outside_assets"),
    categorical=("service_tier",),
)
FIELDS = [
    FeatureField("logins_30d", "numeric", "Logins in the 30 days before the as-of date."),
    FeatureField("calculator_use_30d", "numeric", "Retirement calculator uses in the 30 days before."),
    FeatureField("balance_401k", "numeric", "401(k) balance in USD."),
    FeatureField("email_click_rate", "numeric", "Share of e-mails clicked."),
    FeatureField("has_outside_assets", "boolean", "Holds assets outside the plan."),
    FeatureField("service_tier", "categorical", "basic, plus or premier."),
]
FIRST_AS_OF = dt.date(2025, 3, 1)
KEY = "k3y-for-tests"
AUTH = {API_KEY_HEADER: KEY}
FAST = FitOptions(seed=3, threads=1)


def feature_rows(n: int, rng: np.random.Generator, first_id: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": np.arange(first_id, first_id + n, dtype=np.int64),
            "logins_30d": rng.poisson(4, n).astype(np.int64),
            "calculator_use_30d": rng.poisson(0.8, n).astype(np.int64),
            "balance_401k": rng.lognormal(11, 1, n),
            "email_click_rate": rng.random(n),
            "has_outside_assets": rng.random(n) < 0.3,
            "service_tier": rng.choice(["basic", "plus", "premier"], n),
            # personal data in the same table: it must never reach a response
            "email": [f"client{i}@example.com" for i in range(first_id, first_id + n)],
        }
    )


def _logit(frame: pd.DataFrame, shift: float) -> np.ndarray:
    return (shift + 0.25 * frame["logins_30d"] + 0.9 * frame["calculator_use_30d"] + 0.6 * frame["has_outside_assets"]
            + 0.7 * (frame["service_tier"] == "premier") - 0.8 * frame["email_click_rate"]).to_numpy(float)


def labelled(frame: pd.DataFrame, shift: float, rng: np.random.Generator) -> pd.DataFrame:
    p = 1 / (1 + np.exp(-_logit(frame, shift)))
    return frame.assign(**{ORACLE: p, LABEL: rng.random(len(frame)) < p})


def outcome_frames(rng: np.random.Generator, shift: float) -> TrainingFrames:
    parts = [labelled(feature_rows(n, rng), shift, rng).assign(**{SPLIT: s})
             for n, s in ((4000, "train"), (1500, "validation"), (1500, "test"))]
    return TrainingFrames.from_table(pd.concat(parts, ignore_index=True), SPEC)


def action_frames(rng: np.random.Generator) -> TrainingFrames:
    """Random touches whose response depends on the action and the client (a different best action per client)."""
    effects = {a: (i - 2.5) * 0.3 for i, a in enumerate(ACTION_NAMES)}

    def touches(n: int, split: str) -> pd.DataFrame:
        frame = feature_rows(n, rng).assign(**{ACTION: rng.choice(ACTION_NAMES, n), SPLIT: split})
        frame["_shift"] = frame[ACTION].map(effects) * np.where(frame["service_tier"] == "premier", -1, 1)
        p = 1 / (1 + np.exp(-(_logit(frame, -3.0) * 0.5 + frame["_shift"])))
        return frame.drop(columns="_shift").assign(**{ORACLE: p, LABEL: rng.random(n) < p})

    table = pd.concat([touches(6000, "train"), touches(2000, "validation"), touches(2000, "test")], ignore_index=True)
    population = feature_rows(1000, rng)
    truth = {}
    for action, effect in effects.items():
        truth[ORACLE_ACTION_PREFIX + action] = 1 / (1 + np.exp(-(_logit(population, -3.0) * 0.5 + effect * np.where(
            population["service_tier"] == "premier", -1, 1))))
    population = population.assign(**truth, **{SPLIT: "test"})  # the test slice's policy population
    population[ORACLE_BEST_ACTION] = np.asarray(ACTION_NAMES)[
        population[[ORACLE_ACTION_PREFIX + a for a in ACTION_NAMES]].to_numpy().argmax(axis=1)]
    return TrainingFrames.from_table(table, SPEC, population)


@dataclass
class ServingWorld:
    data_dir: Path
    store: MLflowResource
    warehouse: DuckDBWarehouse
    versions: dict[str, list[str]]  # task -> registered versions, in registration order

    @property
    def tracking_uri(self) -> str:
        return self.store.tracking_uri

    def move_alias(self, task: str, version: str, alias: str = CHAMPION) -> None:
        MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri).set_registered_model_alias(task, alias, version)


def local_store(data_dir: Path) -> MLflowResource:
    return MLflowResource(tracking_uri=f"sqlite:///{data_dir / 'mlflow.db'}",
                          artifact_root=str(data_dir / "mlartifacts"))


def _log_and_register(store: MLflowResource, trained, family: str, example: pd.DataFrame) -> str:
    task = trained.predictor.task
    logged = log_trained_model(store, trained, library=FAMILIES[family].library, params=FAMILIES[family].params,
                               tags={"dagster.run_id": "serving-test"}, input_example=example)
    with store.client() as client:
        version = register(client, task, logged.model_uri, logged.run_id, {"family": family})
    return str(version.version)


def build_world(data_dir: Path, clients: int = 400, store: MLflowResource | None = None,
                client_key=None) -> ServingWorld:
    """Champions of conversion (xgboost; a logreg v2 to move the alias to), churn (logreg), nba (logreg),
    and the online feature table for `clients` clients, in `store` (default: a SQLite store in `data_dir`);
    `client_key` maps the integer client ids of the online table to the provider's ids (e.g. UUIDs)."""
    rng = np.random.default_rng(11)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = store or local_store(data_dir)
    versions: dict[str, list[str]] = {}
    plan = [("conversion", "xgboost", -4.0), ("conversion", "logreg", -4.0), ("churn", "logreg", -3.5)]
    for task, family, shift in plan:
        frames = outcome_frames(rng, shift)
        trained = train_outcome_model(OUTCOME_TASKS[task], FAMILIES[family], frames,
                                      OUTCOME_TASKS[task].default_horizon_days, FAST)
        versions.setdefault(task, []).append(_log_and_register(store, trained, family, frames.test))
    frames = action_frames(rng)
    trained = train_action_model(FAMILIES["logreg"], frames, FAST)
    versions["nba"] = [_log_and_register(store, trained, "logreg", frames.test)]
    world = ServingWorld(data_dir, store, DuckDBWarehouse(path=str(data_dir / "warehouse.duckdb")), versions)
    for task, registered in versions.items():
        world.move_alias(task, registered[0])

    # two feature partitions: the online table must take the latest one only
    older = feature_rows(clients + 50, rng).assign(as_of_date=FIRST_AS_OF)
    latest = feature_rows(clients, rng).assign(as_of_date=FIRST_AS_OF + dt.timedelta(days=1))
    rows = pd.concat([older, latest], ignore_index=True)
    if client_key is not None:
        rows["client_id"] = rows["client_id"].map(client_key)
    with world.warehouse.connect() as conn:
        conn.execute("create schema if not exists features")
        conn.register("rows", rows)
        conn.execute(f"create table {SOURCE_TABLE} as select * from rows")
    build_online_features(world.warehouse)
    return world


def online_rows(world: ServingWorld) -> pd.DataFrame:
    return world.warehouse.read(f"select * from {ONLINE_TABLE} order by client_id")


def upsert(world: ServingWorld, rows: pd.DataFrame) -> None:
    """What streaming rescoring does: replace the clients' rows with newer ones, in one transaction.

    Retried while a live server's refresh thread in this same process holds a read-only connection (DuckDB
    refuses a second configuration of an open file in one process; across processes its file lock does)."""
    for _ in range(100):
        try:
            with world.warehouse.connect() as conn:
                conn.register("new_rows", rows)
                conn.execute("begin")
                conn.execute(f"delete from {ONLINE_TABLE} where client_id in (select client_id from new_rows)")
                conn.execute(f"insert into {ONLINE_TABLE} by name select * from new_rows")
                conn.execute("commit")
            return
        except duckdb.ConnectionException:
            time.sleep(0.05)
    raise AssertionError("the warehouse stayed busy")


def copy_world(world: ServingWorld, data_dir: Path) -> ServingWorld:
    """A copy a test may change (aliases, online rows); the model artifacts stay shared and read-only."""
    shutil.copytree(world.data_dir, data_dir)
    store = local_store(data_dir)
    return ServingWorld(data_dir, store, DuckDBWarehouse(path=str(data_dir / "warehouse.duckdb")), world.versions)
