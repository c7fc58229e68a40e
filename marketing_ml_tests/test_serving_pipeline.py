"""The API on what the pipeline itself built: dbt features, the online table asset and the champions the
registry step promoted (the `trained` world of the models tests: 10,000 clients x 120 days)."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from marketing_ml.features.catalog import load_feature_catalog
from marketing_ml.registry.predictor import load_champion
from marketing_ml.resources.warehouse import DuckDBWarehouse
from marketing_ml.serving.api import ApiKeys, create_app
from marketing_ml.serving.online_features import ONLINE_TABLE, SOURCE_TABLE
from marketing_ml.serving.runtime import ServingRuntime
from marketing_ml.serving.server import payload_fields
from marketing_ml_tests.serving_world import AUTH, KEY

KINDS = {"boolean": "boolean", "category": "categorical", "integer": "numeric", "float": "numeric"}


def test_the_api_serves_the_promoted_champions_on_the_online_feature_table(trained):
    settings = trained[0]
    warehouse = DuckDBWarehouse(path=str(settings.duckdb_path))
    online = warehouse.read(f"select * from {ONLINE_TABLE} order by client_id")
    latest = warehouse.read(f"select * from {SOURCE_TABLE} where as_of_date = "
                            f"(select max(as_of_date) from {SOURCE_TABLE}) order by client_id")
    # the features step built the online table: the latest day's rows, one per client, plus updated_at
    assert len(online) == online["client_id"].nunique() == len(latest) > 1000
    pd.testing.assert_frame_equal(online.drop(columns="updated_at"), latest)

    runtime = ServingRuntime(warehouse, settings.mlflow_tracking_uri)
    runtime.refresh_models()
    fields = payload_fields(runtime.champions, settings.mlflow_tracking_uri)
    catalog = {f.name: f for f in load_feature_catalog()}
    assert {f.name for f in fields} <= set(catalog)
    for field in fields:  # typed by the models' signatures, described by the catalog, and the two agree
        assert field.kind == KINDS[catalog[field.name].dtype] and field.description == catalog[field.name].description
    client = TestClient(create_app(runtime, ApiKeys([KEY]), fields))

    sample = online.iloc[[0, len(online) // 2, len(online) - 1]].reset_index(drop=True)
    expected = {task: load_champion(task, settings.mlflow_tracking_uri).predictor.predict_frame(sample)
                for task in ("conversion", "churn", "nba")}
    for i, row in sample.iterrows():
        body = client.get(f"/v1/clients/{row['client_id']}/scores", headers=AUTH).json()
        for task in ("conversion", "churn"):
            assert body[task]["probability"] == pytest.approx(expected[task]["probability"][i], abs=1e-6)
            assert body[task]["reasons"] and {r["feature"] for r in body[task]["reasons"]} <= set(catalog)
        assert body["next_best_action"]["recommended_action"] == expected["nba"]["recommended_action"][i]
        assert body["features_as_of"] == str(row["as_of_date"].date())

        features = {f.name: (v.item() if hasattr(v := row[f.name], "item") else v) for f in fields}
        scored = client.post("/v1/score", headers=AUTH, json={"features": features})
        assert scored.status_code == 200, scored.text
        for task in ("conversion", "churn"):
            assert scored.json()[task]["probability"] == pytest.approx(body[task]["probability"], abs=1e-6)
