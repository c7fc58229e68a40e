"""The landing-zone sensor: new files become one run; a file whose run failed is requested again with
backoff, and after `max_attempts` failed runs it moves to the dead-letter folder with the run's error."""

from __future__ import annotations

import dataclasses
import json

import dagster as dg

from marketing_ml.definitions import build_definitions
from marketing_ml.settings import IngestionPolicy
from marketing_ml.streaming.sensors import REQUEST_TAG, EndedRun, evaluate_landing_zone, plan_landing_zone
from marketing_ml_tests.conftest import copy_of

POLICY = IngestionPolicy(max_attempts=3, retry_backoff_seconds=10)


def test_new_files_are_requested_once_and_failed_ones_again_with_doubling_backoff():
    failed: dict[str, EndedRun] = {}
    first = plan_landing_zone(["a", "b"], {}, failed.get, POLICY, now=100)
    assert first.request == ["a", "b"] and first.state["a"]["attempts"] == 1
    # the run is queued or running: nothing to do
    assert plan_landing_zone(["a", "b"], first.state, failed.get, POLICY, now=105).request == []
    # "a" was ingested and archived, "b" is still there after its run failed at t=110: retried at 110 + 10
    failed[first.request_key] = EndedRun("boom", ended_at=110)
    waiting = plan_landing_zone(["b", "c"], first.state, failed.get, POLICY, now=115)
    assert waiting.request == ["c"] and set(waiting.state) == {"b", "c"} and waiting.state["b"]["retry_at"] == 120
    second = plan_landing_zone(["b", "c"], waiting.state, failed.get, POLICY, now=120)
    assert second.request == ["b"] and second.state["b"]["attempts"] == 2
    failed[second.request_key] = EndedRun("boom again", ended_at=130)
    assert plan_landing_zone(["b"], second.state, failed.get, POLICY, now=149).request == []  # 130 + 2 x 10
    third = plan_landing_zone(["b"], second.state, failed.get, POLICY, now=150)
    assert third.request == ["b"] and third.state["b"]["attempts"] == 3
    failed[third.request_key] = EndedRun("still broken", ended_at=160)
    last = plan_landing_zone(["b"], third.state, failed.get, POLICY, now=161)
    assert last.request == [] and last.state == {}
    assert [(d.file_name, d.attempts, d.error) for d in last.dead_letters] == [("b", 3, "still broken")]


def test_a_file_landing_again_under_the_name_of_an_ingested_one_is_requested_again():
    ended: dict[str, EndedRun] = {}
    first = plan_landing_zone(["a"], {}, ended.get, POLICY, now=100)
    ended[first.request_key] = EndedRun(error=None, ended_at=101)  # ingested and archived; "a" lands again
    again = plan_landing_zone(["a"], first.state, ended.get, POLICY, now=102)
    assert again.request == ["a"] and again.state["a"]["attempts"] == 1


def test_a_damaged_cursor_costs_a_re_request_not_an_error(tmp_path):
    (tmp_path / "events-a.jsonl").write_text("{}\n")
    result = evaluate_landing_zone(tmp_path, tmp_path / "dead", POLICY, "{not json", "ingest", outcome=lambda k: None,
                                   now=0)
    assert result.run_requests[0].run_config["ops"]["ingest"]["config"]["files"] == ["events-a.jsonl"]


def test_failed_runs_are_retried_then_dead_lettered_with_their_error_through_dagster(data_settings, tmp_path):
    """The sensor as Dagster evaluates it, on a real instance whose ingestion runs really fail."""
    settings = dataclasses.replace(copy_of(data_settings, tmp_path / "world"),
                                   ingestion=IngestionPolicy(max_attempts=2, retry_backoff_seconds=0))
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    (settings.landing_dir / "events-a.jsonl").write_text("{}\n")
    (settings.landing_dir / "archive").write_text("not a folder")  # every ingestion run fails to archive
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_zone_sensor")
    job = defs.resolve_job_def("step_streaming")
    cursor = None
    with dg.instance_for_test() as instance:
        for attempt in (1, 2):
            with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
                result = sensor(context)
            [request] = result.run_requests
            assert request.run_config["ops"]["ingest_landed_events"]["config"]["files"] == ["events-a.jsonl"]
            assert json.loads(result.cursor)["events-a.jsonl"]["attempts"] == attempt
            cursor = result.cursor
            run = job.execute_in_process(instance=instance, run_config=request.run_config, tags=request.tags,
                                         raise_on_error=False)
            assert not run.success
        with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
            result = sensor(context)
        assert not result.run_requests and json.loads(result.cursor) == {}
        dead = settings.dead_letter_dir
        assert sorted(p.name for p in dead.iterdir()) == ["events-a.jsonl", "events-a.jsonl.error.txt"]
        error = (dead / "events-a.jsonl.error.txt").read_text()
        assert error.startswith("2 ingestion runs failed") and "FileExistsError" in error
        assert not list(settings.landing_dir.glob("events-*"))
        [observation] = result.asset_events
        assert observation.asset_key == dg.AssetKey("events_quarantine")
        assert observation.metadata["failed_runs"].value == 2 and "FileExistsError" in observation.metadata["error"].value
        assert REQUEST_TAG in request.tags


def test_sensor_definition_evaluates_through_dagster_without_files(data_settings, tmp_path):
    settings = copy_of(data_settings, tmp_path / "empty")
    defs = build_definitions(settings)
    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), definitions=defs) as context:
        result = defs.resolve_sensor_def("landing_zone_sensor")(context)
    assert not result.run_requests and "no new files" in result.skip_reason.skip_message
