"""MLFLOW_TRACKING_URI names the store everywhere: models trained, logged and registered, champions loaded
and the API serving (a provider's UUID clients), against a real `mlflow server` the test starts on
127.0.0.1 with its own database and artifact store. Nothing lands in the data directory's own store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marketing_ml.features.project import feature_dbt_project
from marketing_ml.registry.predictor import load_champion
from marketing_ml.resources import build_resources
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.serving.server import build_service
from marketing_ml.settings import load_settings
from marketing_ml.sources.export import client_uuid
from marketing_ml_tests.conftest import TEST_START, free_port, wait_until_answering
from marketing_ml_tests.serving_world import AUTH, KEY, build_world


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """(its URL, the folder holding its database and artifacts)."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    log = open(root / "server.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, f"{url}/health", root / "server.log")
        yield url, root
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def test_the_tracking_server_holds_the_runs_models_and_registry_and_the_api_serves_from_it(mlflow_server, tmp_path):
    url, server_root = mlflow_server
    home = tmp_path / "home"
    settings = load_settings(environ={"MARKETING_ML_HOME": str(home), "MARKETING_ML_START_DATE": TEST_START.isoformat(),
                                      "MARKETING_ML_CLIENTS": "400", "MLFLOW_TRACKING_URI": url})
    assert settings.mlflow_tracking_uri == url
    resource = build_resources(settings, feature_dbt_project("duckdb"))["mlflow"]
    assert isinstance(resource, MLflowResource) and resource.tracking_uri == url  # what every asset uses

    # train, log and register as the training and registry assets do, through the resource the settings give
    world = build_world(home, store=resource, client_key=client_uuid)
    assert sorted(p.name for p in (server_root / "artifacts").rglob("MLmodel")), "the model files went to the server"
    assert not (home / "mlflow.db").exists() and not (home / "mlartifacts").exists()

    champion = load_champion("conversion", url)  # how scoring loads champions
    assert champion.version == world.versions["conversion"][0]

    app, runtime = build_service(settings, environ={"MARKETING_ML_API_KEYS": KEY})
    assert runtime.champions.versions["conversion"] == champion.version
    client_id = client_uuid(7)
    with TestClient(app) as client:
        response = client.get(f"/v1/clients/{client_id}/scores", headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["client_id"] == client_id and body["conversion"]["model"]["version"] == champion.version
        assert client.get(f"/v1/clients/{client_uuid(10_000)}/scores", headers=AUTH).status_code == 404
        assert client.get("/v1/clients/7/scores", headers=AUTH).status_code == 404  # an integer is just another id
