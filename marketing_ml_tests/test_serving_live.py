"""The API as a live server on 127.0.0.1: background refresh under load, fuzzing with schemathesis against
its own OpenAPI schema, and `marketing-ml serve` as a user starts it.

Every server binds 127.0.0.1 on a free port, every request loop is bounded, and every server is shut
down in a `finally`.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pandas as pd
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection

from marketing_ml.registry.predictor import load_predictor
from marketing_ml.serving.advisor_queue import QUEUE_TABLE
from marketing_ml.serving.api import ApiKeys, create_app
from marketing_ml.serving.online_features import utc_now
from marketing_ml.serving.runtime import ServingRuntime
from marketing_ml_tests.conftest import free_port
from marketing_ml_tests.serving_world import AUTH, FIELDS, KEY, copy_world, online_rows, upsert

CLIENT = 5


@contextmanager
def live_server(runtime: ServingRuntime) -> Iterator[str]:
    """uvicorn in a thread on 127.0.0.1 (its lifespan starts and stops the runtime's refresh thread)."""
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, ApiKeys([KEY]), FIELDS), host="127.0.0.1",
                                           port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def wait_for(condition, timeout: float = 30.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"not true within {timeout}s")


def test_alias_move_is_picked_up_without_restart_while_requests_keep_succeeding(private_world):
    first, second = private_world.versions["conversion"]
    row = online_rows(private_world).query("client_id == @CLIENT")
    expected = {v: load_predictor(f"models:/conversion/{v}", private_world.tracking_uri).predict_proba(row)[0]
                for v in (first, second)}
    runtime = ServingRuntime(private_world.warehouse, private_world.tracking_uri, model_poll_seconds=0.2,
                             feature_poll_seconds=0.2)
    answers: list[tuple[int, str, float]] = []
    stop = threading.Event()

    def load(url: str) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
            for _ in range(5000):  # bounded; stops as soon as the main thread has seen enough
                if stop.is_set():
                    return
                body = http.get(f"/v1/clients/{CLIENT}/scores")
                conversion = body.json()["conversion"] if body.status_code == 200 else {}
                version = conversion.get("model", {}).get("version")
                answers.append((body.status_code, version, conversion.get("probability")))

    with live_server(runtime) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)
        loader = threading.Thread(target=load, args=(url,))
        loader.start()
        try:
            wait_for(lambda: len(answers) >= 20)
            private_world.move_alias("conversion", second)
            wait_for(lambda: any(v == second for _, v, _ in answers[-5:]))
            seen = len(answers)
            wait_for(lambda: len(answers) >= seen + 20)
        finally:
            stop.set()
            loader.join(30)
    assert all(status == 200 for status, _, _ in answers), {s for s, _, _ in answers}
    versions = [v for _, v, _ in answers]
    switch = versions.index(second)
    assert set(versions[:switch]) == {first} and set(versions[switch:]) == {second}, "no flip-flop after the swap"
    for _, version, probability in answers:  # every answer is entirely one version's
        assert probability == pytest.approx(expected[version], abs=1e-6)


PAYLOAD = {"logins_30d": 6, "calculator_use_30d": 2, "balance_401k": 150_000.0, "email_click_rate": 0.25,
           "has_outside_assets": True, "service_tier": "premier"}


def test_under_load_while_the_champion_moves_and_rows_are_rescored_no_5xx_and_consistent_models(private_world):
    """Soak: four clients hammer GET and POST while the conversion alias moves back and forth and online rows
    are rescored (swapped in one transaction): no 5xx, and every payload score is exactly the score of the
    model version the response names (never a mix of two model sets)."""
    versions = private_world.versions["conversion"]
    payload = pd.DataFrame([PAYLOAD])
    expected = {v: load_predictor(f"models:/conversion/{v}", private_world.tracking_uri).predict_proba(payload)[0]
                for v in versions}
    runtime = ServingRuntime(private_world.warehouse, private_world.tracking_uri, model_poll_seconds=0.2,
                             feature_poll_seconds=0.2)
    answers: list[tuple[int, str | None, float | None]] = []
    served_updates: list[str] = []
    stop = threading.Event()

    def load(url: str, worker: int) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
            while not stop.is_set():
                scored = http.post("/v1/score", json={"features": PAYLOAD})
                conversion = scored.json()["conversion"] if scored.status_code == 200 else {}
                answers.append((scored.status_code, conversion.get("model", {}).get("version"),
                                conversion.get("probability")))
                looked_up = http.get(f"/v1/clients/{CLIENT + worker}/scores")
                answers.append((looked_up.status_code, None, None))
                if looked_up.status_code == 200:
                    served_updates.append(looked_up.json()["features_updated_at"])

    with live_server(runtime) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)
        loaders = [threading.Thread(target=load, args=(url, worker)) for worker in range(4)]
        for loader in loaders:
            loader.start()
        try:
            for move in range(4):
                version = versions[(move + 1) % 2]
                private_world.move_alias("conversion", version)
                rows = online_rows(private_world).query("client_id >= @CLIENT and client_id < @CLIENT + 4")
                upsert(private_world, rows.assign(logins_30d=rows["logins_30d"] + move + 1, updated_at=utc_now()))
                seen = len(answers)
                wait_for(lambda: any(v == version for _, v, _ in answers[seen:]))
        finally:
            stop.set()
            for loader in loaders:
                loader.join(30)
    statuses = {status for status, _, _ in answers}
    assert statuses == {200}, statuses
    assert len(answers) > 100
    for _, version, probability in answers:
        if version is not None:
            assert probability == pytest.approx(expected[version], abs=1e-6)
    assert len(set(served_updates)) >= 4  # the rescored rows were served as they landed


def test_an_upserted_online_row_is_served_within_seconds(private_world):
    runtime = ServingRuntime(private_world.warehouse, private_world.tracking_uri, feature_poll_seconds=0.2)
    with live_server(runtime) as url, httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        wait_for(lambda: http.get("/readyz").status_code == 200)
        before = http.get(f"/v1/clients/{CLIENT}/scores").json()
        row = online_rows(private_world).query("client_id == @CLIENT")
        row = row.assign(calculator_use_30d=9, updated_at=utc_now())
        upsert(private_world, row)
        after = wait_for(lambda: (body := http.get(f"/v1/clients/{CLIENT}/scores").json())["features_updated_at"]
                         != before["features_updated_at"] and body)
    assert after["conversion"]["probability"] != before["conversion"]["probability"]
    assert runtime.stats.model_swaps == 1, "a feature refresh reloads no model"


# ---- schemathesis against the service's own OpenAPI schema ------------------------------------------


@pytest.fixture(scope="module")
def fuzzed_url(serving_world, tmp_path_factory) -> Iterator[str]:
    world = copy_world(serving_world, tmp_path_factory.mktemp("fuzz") / "world")
    queue = pd.DataFrame({"as_of_date": [dt.date(2025, 3, 2)] * 3, "advisor_id": [1, 1, 2], "rank": [1, 2, 1],
                          "client_id": [3, 4, 5], "expected_value": [10.0, 5.0, 7.0], "p_conversion": [0.2, 0.1, 0.3],
                          "reason_1": ["logins_30d", "", "calculator_use_30d"],
                          "reason_2": ["balance_401k", "", ""], "reason_3": ["", "", ""]})
    with world.warehouse.connect() as conn:
        conn.execute("create schema if not exists scoring")
        conn.register("queue", queue)
        conn.execute(f"create table {QUEUE_TABLE} as select * from queue")
    runtime = ServingRuntime(world.warehouse, world.tracking_uri, feature_poll_seconds=0.5)
    with live_server(runtime) as url:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200
                 and httpx.get(f"{url}/v1/advisor-queue?advisor_id=1", headers=AUTH).status_code == 200)
        yield url


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzzing_the_openapi_schema_finds_no_server_error(fuzzed_url, mode):
    """Requests generated from the service's own schema, valid (positive) and invalid (negative), to every
    route, with the key: never a 5xx, every status documented, every body matching its documented schema.
    Bounded: a fixed number of derandomized examples.

    Not checked: "invalid data must be rejected", because the key is forced onto every request (so a request
    generated without it is not one) and unknown query parameters are ignored, as HTTP APIs do; missing keys
    and invalid payloads have their own tests."""
    schema = schemathesis.openapi.from_url(f"{fuzzed_url}/openapi.json")
    statuses: list[int] = []

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call_and_validate(base_url=fuzzed_url, headers=AUTH, excluded_checks=[negative_data_rejection])
        statuses.append(response.status_code)

    check()
    assert len(statuses) >= 100 and max(statuses) < 500
    if mode == GenerationMode.POSITIVE:
        assert statuses.count(200) > 0


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_scoring_routes_accept_exactly_what_their_schema_says(fuzzed_url, mode):
    """All checks, negative data rejection included, on the two routes that take client input in a path
    or a body: whatever the schema admits is served (200, or 404 for an id not in the store), whatever it
    does not is refused (`false` for a number, "01" for an id)."""
    schema = schemathesis.openapi.from_url(f"{fuzzed_url}/openapi.json").include(path_regex="^/v1/(score|clients/)")
    statuses: list[int] = []

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(max_examples=100, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call_and_validate(base_url=fuzzed_url, headers=AUTH)
        statuses.append(response.status_code)

    check()
    assert len(statuses) >= 50 and max(statuses) < 500
    assert (statuses.count(422) > 0) == (mode == GenerationMode.NEGATIVE)


def test_fuzzing_without_a_key_is_always_refused(serving_world, fuzzed_url):
    with httpx.Client(base_url=fuzzed_url, timeout=10) as http:
        for path in ("/v1/clients/1/scores", "/v1/advisor-queue?advisor_id=1"):
            assert http.get(path).status_code == 401
        assert http.post("/v1/score", json={"features": {}}).status_code == 401


# ---- marketing-ml serve ----------------------------------------------------------------------------


def test_marketing_ml_serve_starts_on_loopback_serves_and_stops(serving_world, tmp_path):
    env = {**os.environ, "MARKETING_ML_HOME": str(serving_world.data_dir), "MARKETING_ML_API_KEYS": f"other,{KEY}"}
    refused = subprocess.run([sys.executable, "-m", "marketing_ml.cli", "serve"], capture_output=True, text=True,
                             timeout=300, env={**env, "MARKETING_ML_API_KEYS": ""})
    assert refused.returncode == 2 and "MARKETING_ML_API_KEYS" in refused.stderr

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "marketing_ml.cli", "serve", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=120, every=0.5)
        body = httpx.get(f"{url}/v1/clients/{CLIENT}/scores", headers=AUTH).json()
        assert body["conversion"]["model"]["alias"] == "champion"
        payload = httpx.get(f"{url}/openapi.json").json()["components"]["schemas"]["FeaturePayload"]["properties"]
        assert set(payload) == {f.name for f in FIELDS}
        assert payload["has_outside_assets"]["type"] == "boolean" and payload["service_tier"]["type"] == "string"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()
    served = (tmp_path / "serve.log").read_text()
    assert f"127.0.0.1:{port}" in served and "@example.com" not in served
