"""The whole platform on a provider's own files, as a user runs it: `marketing-ml run` with
MARKETING_ML_SOURCE set, every step after the data and features (models, registry, uplift, inference) from
a UUID-keyed extract that has no ground truth, then the API serving one of its clients by UUID."""

from __future__ import annotations

import subprocess
import uuid

import duckdb
import pytest
from fastapi.testclient import TestClient

from marketing_ml.serving.server import build_service
from marketing_ml_tests.conftest import OWN_DATA_END, VENV_SCRIPT, cli_environment, copy_of
from marketing_ml_tests.serving_world import AUTH, KEY


@pytest.fixture(scope="module")
def own_data_run(own_data_world, tmp_path_factory):
    """(settings, the CLI's stdout) after every step but streaming ran on a copy of the own-data world."""
    settings = copy_of(own_data_world, tmp_path_factory.mktemp("mm_own_run") / "home")
    env = {**cli_environment(settings), "MARKETING_ML_SOURCE": str(settings.source)}
    steps = [arg for name in ("models", "registry", "uplift", "inference") for arg in ("--step", name)]
    result = subprocess.run([str(VENV_SCRIPT), "run", *steps, "--end-date", OWN_DATA_END.isoformat()],
                            env=env, capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return settings, result.stdout


def _query(settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_every_step_ran_on_the_providers_ids_without_ground_truth(own_data_run):
    settings, _ = own_data_run
    schemas = {s for (s,) in _query(settings, "select distinct table_schema from information_schema.tables")}
    assert "ground_truth" not in schemas and {"training", "scoring"} <= schemas
    tables_with_clients = _query(settings, "select table_schema || '.' || table_name, data_type "
                                 "from information_schema.columns where column_name = 'client_id' "
                                 "and table_schema in ('raw', 'features', 'training', 'scoring')")
    assert tables_with_clients and {t for t, kind in tables_with_clients if kind != "VARCHAR"} == set()
    for (client_id,) in _query(settings, "select client_id from scoring.advisor_queue limit 5"):
        assert uuid.UUID(client_id).version == 5  # the provider's ids, end to end


def test_the_api_serves_a_provider_client_by_its_uuid(own_data_run):
    settings, _ = own_data_run
    [(client_id,)] = _query(settings, "select client_id from features.online_client_features order by client_id limit 1")
    app, runtime = build_service(settings, environ={"MARKETING_ML_API_KEYS": KEY})
    with TestClient(app) as client:
        response = client.get(f"/v1/clients/{client_id}/scores", headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["client_id"] == client_id and 0 <= body["conversion"]["probability"] <= 1
        assert body["conversion"]["model"]["version"] == runtime.champions.versions["conversion"]
        assert client.get("/v1/clients/1/scores", headers=AUTH).status_code == 404
