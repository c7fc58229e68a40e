"""MLflow as a Dagster resource: where runs, models and the registry live (a SQLite store by default)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import mlflow
from mlflow import MlflowClient
from pydantic import Field

TRACKING_ENV = "MLFLOW_TRACKING_URI"
REGISTRY_ENV = "MLFLOW_REGISTRY_URI"
SERVER_SCHEMES = ("http://", "https://", "databricks")


@contextmanager
def tracking(tracking_uri: str) -> Iterator[MlflowClient]:
    """Point MLflow's process-wide tracking and registry URIs at `tracking_uri` for the block.

    MLflow's fluent API (`log_model`, `pyfunc.load_model("models:/...")`) reads process-wide URIs; tests
    and the Dagster process may use several data directories, so the previous setting comes back after.
    MLflow mirrors an explicitly set URI in the environment variables (for subprocesses), so those are
    what is saved and restored: a process that had set nothing is left with nothing set.
    """
    previous = {name: os.environ.get(name) for name in (TRACKING_ENV, REGISTRY_ENV)}
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous[TRACKING_ENV])
        mlflow.set_registry_uri(previous[REGISTRY_ENV])
        if previous[REGISTRY_ENV] is None:
            os.environ.pop(REGISTRY_ENV, None)


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking + registry store and the root under which each experiment keeps its artifacts."""

    tracking_uri: str = Field(description="Tracking and registry store, e.g. sqlite:///<data dir>/mlflow.db.")
    artifact_root: str = Field(description="Directory for run and model artifacts (one folder per experiment), "
                               "unless the store is a tracking server, which keeps them itself.")
    experiment_prefix: str = Field(default="marketing_ml", description="Experiments are named <prefix>/<task>.")

    @contextmanager
    def client(self) -> Iterator[MlflowClient]:
        """A client on this store, with MLflow's process-wide URIs pointing at it for the block."""
        with tracking(self.tracking_uri) as client:
            yield client

    def experiment_id(self, client: MlflowClient, task: str) -> str:
        """The task's experiment, created on first use with its artifacts under `artifact_root`."""
        name = f"{self.experiment_prefix}/{task}"
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        if self.tracking_uri.startswith(SERVER_SCHEMES):
            # a tracking server stores the artifacts where it is configured to (its --artifacts-destination),
            # which the clients of a shared server reach through it, not on this machine's disk
            return client.create_experiment(name)
        location = Path(self.artifact_root) / task
        location.mkdir(parents=True, exist_ok=True)
        return client.create_experiment(name, artifact_location=location.resolve().as_uri())
