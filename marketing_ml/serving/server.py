"""`marketing-ml serve`: the real-time API under uvicorn, on the data directory's warehouse and MLflow store."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import mlflow
import torch
import uvicorn
from mlflow.types import DataType
from threadpoolctl import threadpool_limits

from marketing_ml.features.catalog import load_feature_catalog
from marketing_ml.resources import resolved_warehouse
from marketing_ml.resources.mlflow_tracking import tracking
from marketing_ml.serving.api import ApiKeys, FeatureField, create_app
from marketing_ml.serving.models import ChampionSet
from marketing_ml.serving.online_features import client_ids_are_integers
from marketing_ml.serving.runtime import ServingRuntime
from marketing_ml.settings import Settings, SettingsError

log = logging.getLogger("marketing_ml.serving")
NUMERIC_TYPES = {DataType.double, DataType.float, DataType.long, DataType.integer}


def payload_fields(champions: ChampionSet, tracking_uri: str) -> list[FeatureField]:
    """The inputs of `POST /v1/score`: every column the champions read, typed by their logged MLflow
    signatures (the models' own input contract) and described by the feature catalog."""
    kinds: dict[str, str] = {}
    with tracking(tracking_uri):
        for loaded in champions.loaded.values():
            for column in mlflow.models.get_model_info(loaded.model_uri).signature.inputs.inputs:
                kinds[column.name] = ("boolean" if column.type == DataType.boolean
                                      else "numeric" if column.type in NUMERIC_TYPES else "categorical")
    described = {f.name: f.description for f in load_feature_catalog()}
    return [FeatureField(name, kinds[name], described.get(name, "")) for name in champions.feature_columns]


def single_threaded_numerics() -> None:
    """One thread per numeric library call in the serving process. A request scores one row: starting an
    OpenMP or BLAS thread team costs more than it saves, and when the machine is busy a team waits on its
    slowest thread for a whole scheduler slice."""
    threadpool_limits(limits=1)
    torch.set_num_threads(1)


def build_service(settings: Settings, environ: Mapping[str, str] | None = None, *,
                  model_poll_seconds: float = 10.0, feature_poll_seconds: float = 2.0, freeze_heap: bool = False):
    """The app and its runtime, with the champions loaded (the payload schema is theirs)."""
    try:
        api_keys = ApiKeys.from_env(os.environ if environ is None else environ)
    except ValueError as error:
        raise SettingsError(str(error)) from error
    if settings.warehouse == "duckdb" and not settings.duckdb_path.exists():
        raise SettingsError(f"no warehouse at {settings.duckdb_path}: run `marketing-ml run` first")
    warehouse = resolved_warehouse(settings)
    runtime = ServingRuntime(warehouse, settings.mlflow_tracking_uri,
                             model_poll_seconds=model_poll_seconds, feature_poll_seconds=feature_poll_seconds,
                             freeze_heap=freeze_heap)
    try:
        runtime.refresh_models()
    except LookupError as error:
        if runtime.champions is None:  # nothing to serve at all
            raise SettingsError(str(error)) from error
        log.warning("starting without online features (not ready until they load): %s", error)
    return create_app(runtime, api_keys, payload_fields(runtime.champions, settings.mlflow_tracking_uri),
                      integer_client_ids=client_ids_are_integers(warehouse)), runtime


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **polling) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # a scoring service makes no outbound calls
    single_threaded_numerics()
    app, runtime = build_service(settings, freeze_heap=True, **polling)
    log.info("serving champions %s on http://%s:%d (OpenAPI at /docs)", runtime.champions.versions, host, port)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
