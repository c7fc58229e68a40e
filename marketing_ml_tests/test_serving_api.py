"""The real-time API's contract, endpoint by endpoint, on real registered models and a real DuckDB store.

The app runs in-process through FastAPI's TestClient (the real ASGI app, no server); the runtime is
refreshed by calling its refresh methods, so each test controls exactly when models and features load.
Live-server behaviour (background refresh, alias moves under load, fuzzing, the CLI) is in
test_serving_live.py.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from marketing_ml.registry.attribution import attribute, top_reasons
from marketing_ml.registry.predictor import load_champion
from marketing_ml.serving.advisor_queue import QUEUE_TABLE
from marketing_ml.serving.api import API_KEY_HEADER, ApiKeys, create_app
from marketing_ml.serving.online_features import ONLINE_TABLE, build_online_features, utc_now
from marketing_ml.serving.runtime import ServingRuntime
from marketing_ml_tests.serving_world import (
    AUTH,
    FIELDS,
    KEY,
    ServingWorld,
    feature_rows,
    online_rows,
    upsert,
)

PAYLOAD = {"logins_30d": 6, "calculator_use_30d": 2, "balance_401k": 150_000.0, "email_click_rate": 0.25,
           "has_outside_assets": True, "service_tier": "premier"}


def _app(world: ServingWorld, load: bool = True) -> tuple[ServingRuntime, TestClient]:
    runtime = ServingRuntime(world.warehouse, world.tracking_uri)
    if load:
        runtime.refresh_models()
    return runtime, TestClient(create_app(runtime, ApiKeys([KEY, "another-key"]), FIELDS))


@pytest.fixture(scope="module")
def api(serving_world):
    return _app(serving_world)


def expected_scores(world: ServingWorld, rows: pd.DataFrame, versions: dict[str, str] | None = None) -> dict:
    """What the predictors themselves say for these rows (the pyfunc contract), per task."""
    out = {}
    for task in ("conversion", "churn", "nba"):
        predictor = load_champion(task, world.tracking_uri).predictor if versions is None else \
            _version_predictor(world, task, versions[task])
        out[task] = predictor.predict_frame(rows)
        if task != "nba":
            out[f"{task}_reasons"] = top_reasons(attribute(predictor.model, rows))
    return out


def _version_predictor(world, task, version):
    from marketing_ml.registry.predictor import load_predictor

    return load_predictor(f"models:/{task}/{version}", world.tracking_uri)


# ---- GET /v1/clients/{id}/scores ---------------------------------------------------------------------


def test_client_scores_are_the_champions_own_predictions_with_reasons_versions_and_as_of(serving_world, api):
    _, client = api
    rows = online_rows(serving_world)
    sample = rows.iloc[[0, 7, 123, len(rows) - 1]].reset_index(drop=True)
    expected = expected_scores(serving_world, sample)
    latest = rows["as_of_date"].max()
    for i, client_id in enumerate(sample["client_id"]):
        response = client.get(f"/v1/clients/{client_id}/scores", headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["client_id"] == client_id
        for task in ("conversion", "churn"):
            assert body[task]["probability"] == pytest.approx(expected[task]["probability"][i], abs=1e-6)
            reasons = expected[f"{task}_reasons"].iloc[i]
            names = [reasons[f"reason_{k}"] for k in (1, 2, 3) if reasons[f"reason_{k}"]]
            assert [r["feature"] for r in body[task]["reasons"]] == names
            described = {f.name: f.description for f in FIELDS}
            assert all(r["description"] == described[r["feature"]] for r in body[task]["reasons"])
            assert [r["contribution"] for r in body[task]["reasons"]] == pytest.approx(
                [reasons[f"reason_{k}_contribution"] for k in range(1, len(names) + 1)])
            assert body[task]["model"]["version"] == serving_world.versions[task][0]
        nba = body["next_best_action"]
        scores = expected["nba"].iloc[i]
        assert nba["scores"] == pytest.approx({c.removeprefix("score_"): scores[c] for c in scores.index
                                              if c.startswith("score_")}, abs=1e-6)
        assert nba["recommended_action"] == scores["recommended_action"]
        assert body["conversion"]["model"]["family"] == "xgboost" and body["churn"]["contribution_unit"] == "log-odds"
        assert body["features_as_of"] == pd.Timestamp(latest).date().isoformat()
        assert body["features_updated_at"]


def test_responses_and_logs_carry_no_personal_data(serving_world, api, caplog):
    _, client = api
    caplog.set_level("DEBUG")
    # the online table holds e-mail addresses (the stand-in feature table has them on purpose)
    assert online_rows(serving_world)["email"].str.contains("@example.com").all()
    texts = [client.get(f"/v1/clients/{i}/scores", headers=AUTH).text for i in range(5)]
    texts.append(client.post("/v1/score", headers=AUTH, json={"features": PAYLOAD}).text)
    for text in texts + [caplog.text]:
        assert "@example.com" not in text and '"email"' not in text


def test_unknown_client_is_404_and_a_malformed_id_is_422(api):
    _, client = api
    missing = client.get("/v1/clients/987654321/scores", headers=AUTH)
    assert missing.status_code == 404 and "not in the online feature store" in missing.json()["detail"]
    assert client.get(f"/v1/clients/{10**19 - 1}/scores", headers=AUTH).status_code == 404
    for malformed_id in ("abc", "01", "+1", "-1", "1e3", "1.0", " 1", str(2**70), "9" * 5000):
        malformed = client.get(f"/v1/clients/{malformed_id}/scores", headers=AUTH)
        assert malformed.status_code == 422, malformed_id
        assert malformed.json()["detail"][0]["loc"] == ["path", "client_id"]
    # a client id that looks like SQL is just a bad integer: nothing is built from it
    assert client.get("/v1/clients/1;drop table x/scores", headers=AUTH).status_code in (404, 422)


# ---- POST /v1/score --------------------------------------------------------------------------------


def test_score_a_payload_like_the_predictor_does(serving_world, api):
    _, client = api
    response = client.post("/v1/score", headers=AUTH, json={"client_id": 42, "features": PAYLOAD})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = expected_scores(serving_world, pd.DataFrame([PAYLOAD]))
    assert body["conversion"]["probability"] == pytest.approx(expected["conversion"]["probability"][0], abs=1e-6)
    assert body["churn"]["probability"] == pytest.approx(expected["churn"]["probability"][0], abs=1e-6)
    assert body["next_best_action"]["recommended_action"] == expected["nba"]["recommended_action"][0]
    assert body["client_id"] == 42 and body["features_as_of"] is None


@pytest.mark.parametrize(
    ("features", "location", "error_type"),
    [
        ({k: v for k, v in PAYLOAD.items() if k != "balance_401k"}, ["body", "features", "balance_401k"], "missing"),
        ({**PAYLOAD, "logins_30d": "many"}, ["body", "features", "logins_30d"], "float_type"),
        ({**PAYLOAD, "logins_30d": "6"}, ["body", "features", "logins_30d"], "float_type"),
        ({**PAYLOAD, "balance_401k": False}, ["body", "features", "balance_401k"], "float_type"),
        ({**PAYLOAD, "logins_30d": 1e300}, ["body", "features", "logins_30d"], "less_than_equal"),
        ({**PAYLOAD, "service_tier": ""}, ["body", "features", "service_tier"], "string_too_short"),
        ({**PAYLOAD, "has_outside_assets": "perhaps"}, ["body", "features", "has_outside_assets"], "bool_type"),
        ({**PAYLOAD, "has_outside_assets": 1}, ["body", "features", "has_outside_assets"], "bool_type"),
        ({**PAYLOAD, "first_name": "Ann"}, ["body", "features", "first_name"], "extra_forbidden"),
    ],
)
def test_an_invalid_payload_is_422_with_field_errors(api, features, location, error_type):
    _, client = api
    response = client.post("/v1/score", headers=AUTH, json={"features": features})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(e["loc"] == location and e["type"] == error_type for e in errors), errors


@pytest.mark.parametrize("client_id", [True, 4.2, [1]])
def test_the_echoed_client_id_must_be_an_integer_or_a_string(api, client_id):
    _, client = api
    response = client.post("/v1/score", headers=AUTH, json={"client_id": client_id, "features": PAYLOAD})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][:2] == ["body", "client_id"]


@pytest.mark.parametrize("client_id", [42, "42", "5f0c2a4e-8d1b-5c3e-9a7f-0b1c2d3e4f50"])
def test_the_echoed_client_id_comes_back_as_sent(api, client_id):
    _, client = api
    response = client.post("/v1/score", headers=AUTH, json={"client_id": client_id, "features": PAYLOAD})
    assert response.status_code == 200 and response.json()["client_id"] == client_id


def test_the_published_schema_says_what_the_routes_accept(api):
    _, client = api
    schema = client.get("/openapi.json").json()
    [parameter] = schema["paths"]["/v1/clients/{client_id}/scores"]["get"]["parameters"]
    assert parameter["schema"]["type"] == "string"
    assert re.fullmatch(parameter["schema"]["pattern"].strip("^$"), "12345")
    assert not re.fullmatch(parameter["schema"]["pattern"].strip("^$"), "012")


def test_where_the_provider_keys_clients_by_strings_the_path_takes_their_ids(serving_world):
    runtime = ServingRuntime(serving_world.warehouse, serving_world.tracking_uri)
    app = create_app(runtime, ApiKeys([KEY]), FIELDS, integer_client_ids=False)
    schema = TestClient(app).get("/openapi.json").json()
    [parameter] = schema["paths"]["/v1/clients/{client_id}/scores"]["get"]["parameters"]
    pattern = parameter["schema"]["pattern"].strip("^$")
    for client_id in ("12345", "5f0c2a4e-8d1b-5c3e-9a7f-0b1c2d3e4f50", "P-00042"):
        assert re.fullmatch(pattern, client_id)
    for client_id in ("1;drop table x", " 1", "-1", "a/b", "x" * 129):
        assert not re.fullmatch(pattern, client_id)


def test_non_finite_numbers_and_non_json_bodies_are_422(api):
    _, client = api
    text = '{"features": {"logins_30d": NaN, "calculator_use_30d": 1, "balance_401k": 1, "email_click_rate": 0.1, ' \
           '"has_outside_assets": false, "service_tier": "basic"}}'
    for body in (text, "not json", ""):
        response = client.post("/v1/score", headers={**AUTH, "content-type": "application/json"}, content=body)
        assert response.status_code == 422, (body, response.text)
        assert all(set(e) >= {"loc", "msg", "type"} for e in response.json()["detail"])


# ---- API keys ----------------------------------------------------------------------------------------

V1_CALLS = [("get", "/v1/clients/1/scores", None), ("post", "/v1/score", {"features": PAYLOAD}),
            ("get", "/v1/advisor-queue?advisor_id=1", None)]


@pytest.mark.parametrize(("method", "path", "body"), V1_CALLS)
def test_every_v1_route_needs_a_key_401_without_403_wrong(api, method, path, body):
    _, client = api
    call = getattr(client, method)
    kwargs = {"json": body} if body else {}
    missing = call(path, **kwargs)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "ApiKey"
    assert call(path, headers={API_KEY_HEADER: ""}, **kwargs).status_code == 401
    for wrong in ("nope", KEY + "x", KEY[:-1], "ключ"):
        assert call(path, headers={API_KEY_HEADER: wrong.encode()}, **kwargs).status_code == 403
    assert call(path, headers={API_KEY_HEADER: "another-key"}, **kwargs).status_code in (200, 503)


def test_authentication_comes_before_validation(api):
    _, client = api
    assert client.post("/v1/score", json={"features": {"junk": 1}}).status_code == 401
    assert client.get("/v1/clients/abc/scores").status_code == 401


def test_probes_and_metrics_are_open_and_keys_come_from_the_environment(api):
    _, client = api
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200
    assert ApiKeys.from_env({"MARKETING_ML_API_KEYS": " a , b ,"}).accepts("b")
    with pytest.raises(ValueError, match="MARKETING_ML_API_KEYS"):
        ApiKeys.from_env({"MARKETING_ML_API_KEYS": " , "})


# ---- readiness, health, metrics ---------------------------------------------------------------------


def test_not_ready_until_models_and_features_load(private_world):
    with private_world.warehouse.connect() as conn:
        conn.execute(f"drop table {ONLINE_TABLE}")
    runtime, client = _app(private_world, load=False)
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 503
    assert client.get("/v1/clients/1/scores", headers=AUTH).status_code == 503

    with pytest.raises(LookupError, match="online_client_features does not exist"):
        runtime.refresh_models()  # champions load; features are missing
    assert runtime.champions is not None and runtime.state is None
    body = client.get("/readyz")
    assert body.status_code == 503 and body.json()["status"] == "not ready"

    build_online_features(private_world.warehouse)
    assert runtime.refresh_features()
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["online_clients"] == len(online_rows(private_world))
    assert set(ready["models"]) == {"conversion", "churn", "nba"}
    assert client.get("/v1/clients/1/scores", headers=AUTH).status_code == 200


def _samples(text: str, name: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf"^{name}(\{{.*\}})? (\S+)$", text, flags=re.M)}


def test_metrics_count_requests_by_route_and_status_with_a_latency_histogram(serving_world):
    _, client = _app(serving_world)
    for client_id in (1, 2, 3):
        client.get(f"/v1/clients/{client_id}/scores", headers=AUTH)
    client.get("/v1/clients/987654321/scores", headers=AUTH)
    client.get("/v1/clients/1/scores")
    client.get("/no/such/route")
    text = client.get("/metrics").text
    requests = _samples(text, "marketing_ml_http_requests_total")
    route = 'route="/v1/clients/{client_id}/scores",method="GET"'
    assert requests[f'{{{route},status="200"}}'] == 3
    assert requests[f'{{{route},status="404"}}'] == 1
    assert requests[f'{{{route},status="401"}}'] == 1
    assert requests['{route="<unmatched>",method="GET",status="404"}'] == 1
    buckets = _samples(text, "marketing_ml_http_request_duration_seconds_bucket")
    series = [v for k, v in buckets.items() if "/v1/clients/{client_id}/scores" in k]
    assert series == sorted(series) and series[-1] == 5  # cumulative, +Inf = all requests of the route
    count = _samples(text, "marketing_ml_http_request_duration_seconds_count")
    assert count['{route="/v1/clients/{client_id}/scores"}'] == 5
    info = _samples(text, "marketing_ml_model_info")
    version = serving_world.versions["conversion"][0]
    assert f'{{task="conversion",alias="champion",version="{version}",family="xgboost"}}' in info
    assert _samples(text, "marketing_ml_ready") == {None: 1.0}
    # every line is a comment or a sample: name, optional labels, a number
    for line in text.strip().splitlines():
        assert line.startswith("# ") or re.fullmatch(r'[a-z_]+(\{([a-z_]+="[^"]*",?)*\})? [-+0-9.eInf]+', line), line


# ---- advisor queue ---------------------------------------------------------------------------------


def test_advisor_queue_is_503_until_its_table_exists_then_served_ranked_without_personal_data(private_world):
    runtime, client = _app(private_world)
    runtime.refresh_advisor_queue()
    missing = client.get("/v1/advisor-queue?advisor_id=1", headers=AUTH)
    assert missing.status_code == 503 and "marketing-ml run --step inference" in missing.json()["detail"]

    # a stand-in for issue #5's asset (its columns): two days, the older one must not be served
    queue = pd.DataFrame({
        "as_of_date": [dt.date(2025, 3, 1)] * 2 + [dt.date(2025, 3, 2)] * 5,
        "advisor_id": [1, 1, 1, 1, 1, 2, 2],
        "rank": [1, 2, 3, 1, 2, 1, 2],
        "client_id": [90, 91, 12, 10, 11, 20, 21],
        "expected_value": [9.0, 8.0, 50.0, 70.0, 60.0, 30.0, 20.0],
        "p_conversion": [0.1, 0.1, 0.5, 0.7, 0.6, 0.3, 0.2],
        "investable_assets": [1e6] * 7,
        "reason_1": ["a", "b", "calculator_use_30d", "balance_401k", "logins_30d", "", "x"],
        "reason_2": ["", "", "logins_30d", "", "", "", None],
        "reason_3": [""] * 7,
    })
    with private_world.warehouse.connect() as conn:
        conn.execute("create schema if not exists scoring")
        conn.register("queue", queue)
        conn.execute(f"create table {QUEUE_TABLE} as select * from queue")
    assert runtime.refresh_advisor_queue()
    body = client.get("/v1/advisor-queue?advisor_id=1&limit=2", headers=AUTH).json()
    assert body["as_of_date"] == "2025-03-02"
    assert [(e["rank"], e["client_id"]) for e in body["entries"]] == [(1, 10), (2, 11)]
    assert body["entries"][0]["reasons"] == ["balance_401k"]
    assert "investable_assets" not in str(body) and "1000000" not in str(body)
    assert client.get("/v1/advisor-queue?advisor_id=3", headers=AUTH).json()["entries"] == []
    for bad in ("advisor_id=x", "advisor_id=1&limit=0", "advisor_id=1&limit=100000", ""):
        assert client.get(f"/v1/advisor-queue?{bad}", headers=AUTH).status_code == 422
    assert not runtime.refresh_advisor_queue(), "an unchanged table is not read again"


# ---- refresh mechanics -----------------------------------------------------------------------------


def test_online_feature_refresh_loads_only_newer_rows_and_in_flight_requests_keep_their_snapshot(private_world):
    runtime, client = _app(private_world)
    before = runtime.state
    old = client.get("/v1/clients/5/scores", headers=AUTH).json()

    rows = online_rows(private_world)
    changed = rows[rows["client_id"] == 5].copy()
    changed["calculator_use_30d"] += 6
    changed["updated_at"] = utc_now()
    new_client = feature_rows(1, np.random.default_rng(0), first_id=100_000).assign(
        as_of_date=changed["as_of_date"].iloc[0], updated_at=utc_now())
    upsert(private_world, pd.concat([changed, new_client], ignore_index=True))
    assert not client.get("/v1/clients/100000/scores", headers=AUTH).status_code == 200

    assert runtime.refresh_features()
    assert runtime.state.features.rows is before.features.rows, "merged in place of a full reload"
    new = client.get("/v1/clients/5/scores", headers=AUTH).json()
    assert new["features_updated_at"] > old["features_updated_at"]
    expected = expected_scores(private_world, changed.reset_index(drop=True))
    assert new["conversion"]["probability"] == pytest.approx(expected["conversion"]["probability"][0], abs=1e-6)
    assert new["conversion"]["probability"] != old["conversion"]["probability"]
    assert client.get("/v1/clients/100000/scores", headers=AUTH).status_code == 200
    # a request that started before the refresh still reads the rows it started with
    row = before.features.row(5)
    assert before.features.rows.updated_at[row] < runtime.state.features.rows.updated_at[runtime.state.features.row(5)]
    old_again = before.champions.score(before.features.rows.encoded, slice(row, row + 1))
    assert old_again.outcomes["conversion"].probability[0] == pytest.approx(old["conversion"]["probability"], abs=1e-6)

    assert not runtime.refresh_features(), "nothing newer: nothing read"
    # a rebuild (new feature partition) is read in full and drops clients no longer active
    build_online_features(private_world.warehouse)
    assert runtime.refresh_features()
    assert runtime.state.features.rows is not before.features.rows
    assert client.get("/v1/clients/100000/scores", headers=AUTH).status_code == 404


def test_an_alias_move_swaps_the_model_and_requests_in_flight_keep_the_old_one(private_world):
    runtime, client = _app(private_world)
    before = runtime.state
    assert not runtime.refresh_models(), "aliases unchanged: nothing reloaded"
    first, second = private_world.versions["conversion"]
    private_world.move_alias("conversion", second)
    assert runtime.refresh_models()
    body = client.get("/v1/clients/5/scores", headers=AUTH).json()
    assert body["conversion"]["model"] == {**body["conversion"]["model"], "version": second, "family": "logreg"}
    # unchanged tasks keep their loaded model objects
    assert runtime.state.champions.loaded["churn"] is before.champions.loaded["churn"]
    expected = expected_scores(private_world, online_rows(private_world).query("client_id == 5").reset_index(drop=True),
                               {"conversion": second, "churn": private_world.versions["churn"][0],
                                "nba": private_world.versions["nba"][0]})
    assert body["conversion"]["probability"] == pytest.approx(expected["conversion"]["probability"][0], abs=1e-6)
    # the state a request took before the move is untouched
    assert before.champions.loaded["conversion"].version == first


def test_shared_encoders_give_each_models_own_matrix_with_and_without_missing_numbers(serving_world, api):
    runtime, _ = api
    champions = runtime.state.champions
    rows = online_rows(serving_world).head(50)
    with_gaps = rows.assign(logins_30d=rows["logins_30d"].astype(float).where(rows.index % 3 > 0))
    for frame in (rows, with_gaps):
        encoded = champions.encode(frame)
        for key, model in champions.models.items():
            np.testing.assert_array_equal(encoded[key], model.encode(frame), err_msg=key)
