"""Streaming ingestion: atomic micro-batch files, the landing-zone sensor, exactly-once loading and
quarantine of bad records beside the good ones."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import dagster as dg
import duckdb
import numpy as np

from marketing_ml.definitions import build_definitions
from marketing_ml.simulation.engine import simulate_days
from marketing_ml.streaming.ingest import parse_event_file
from marketing_ml.streaming.producer import stream
from marketing_ml.streaming.sensors import evaluate_landing_zone
from marketing_ml_tests.conftest import TEST_END, copy_of

STREAM_DAY = TEST_END + dt.timedelta(days=1)  # the day after the built history: "today"


def test_stream_writes_the_simulated_day_in_atomic_files(data_settings, tmp_path):
    landing = tmp_path / "landing"
    stats = stream(data_settings.simulation, landing, rate=500, duration=3, first_day=STREAM_DAY, sleep=lambda s: None)
    files = sorted(landing.glob("events-*.jsonl"))
    assert stats.files == len(files) == 3 and stats.events == 1500
    assert not any((landing / ".incoming").iterdir())  # nothing half-written left behind
    streamed = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    # the simulator's own events of that day (and the next ones once a day runs out), in time order
    expected = simulate_days(data_settings.simulation, STREAM_DAY, STREAM_DAY + dt.timedelta(days=4)).events
    expected = expected.sort_values(["event_ts", "event_id"]).head(1500)
    assert [r["event_id"] for r in streamed] == expected["event_id"].tolist()


def test_parser_keeps_good_records_and_quarantines_each_bad_one_with_a_reason(tmp_path):
    good = {"event_id": 1, "client_id": 7, "event_ts": "2025-03-02T10:00:00", "channel": "web",
            "event_type": "login", "device": "desktop", "campaign_id": None}
    lines = [
        json.dumps(good),
        json.dumps({**good, "event_id": 2, "channel": "fax"}),
        json.dumps({**good, "event_id": 3, "client_id": 999_999}),
        json.dumps({k: v for k, v in {**good, "event_id": 4}.items() if k != "client_id"}),
        json.dumps({**good, "event_id": 5, "event_ts": "yesterday-ish"}),
        json.dumps({**good, "event_id": 6, "event_type": "email_open"}),  # not an event type of the web channel
        '{"event_id": 7, "client_id": ',
        json.dumps({**good, "event_id": 8, "device": "mobile"}),
    ]
    path = tmp_path / "events-1.jsonl"
    path.write_text("\n".join(lines) + "\n")
    parsed = parse_event_file(path, known_clients=np.array([7]), now=dt.datetime(2025, 3, 2, 12))
    assert parsed.events["event_id"].tolist() == [1, 8]
    reasons = dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))
    assert reasons[2].startswith("unknown channel: fax")
    assert reasons[3] == "unknown client_id 999999"
    assert reasons[4] == "missing or non-integer client_id"
    assert reasons[5] == "missing or unparseable event_ts"
    assert reasons[6].startswith("unknown event_type for channel web")
    assert reasons[7] == "malformed JSON"
    assert (parsed.quarantine["file_name"] == "events-1.jsonl").all()


def test_an_unreadable_file_is_one_quarantine_row_not_an_error(tmp_path):
    path = tmp_path / "events-2.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    parsed = parse_event_file(path, known_clients=np.array([1]))
    assert parsed.events.empty
    assert len(parsed.quarantine) == 1 and parsed.quarantine["reason"].iloc[0].startswith("unreadable file")


def test_sensor_requests_new_files_once_and_advances_its_cursor(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    assert isinstance(evaluate_landing_zone(landing, None, "ingest"), dg.SkipReason)
    for name in ("events-a.jsonl", "events-b.jsonl"):
        (landing / name).write_text("{}\n")
    (landing / "events-c.jsonl").write_bytes(b"\xff\x00 corrupt")  # content never matters to the sensor
    first = evaluate_landing_zone(landing, None, "ingest")
    assert len(first.run_requests) == 1
    assert first.run_requests[0].run_config["ops"]["ingest"]["config"]["files"] == ["events-a.jsonl", "events-b.jsonl", "events-c.jsonl"]
    assert isinstance(evaluate_landing_zone(landing, first.cursor, "ingest"), dg.SkipReason)  # seen files ignored
    (landing / "events-a.jsonl").unlink()  # ingested and archived
    (landing / "events-d.jsonl").write_text("{}\n")
    second = evaluate_landing_zone(landing, first.cursor, "ingest")
    assert second.run_requests[0].run_config["ops"]["ingest"]["config"]["files"] == ["events-d.jsonl"]
    assert sorted(json.loads(second.cursor)) == ["events-b.jsonl", "events-c.jsonl", "events-d.jsonl"]


def test_sensor_definition_evaluates_through_dagster(data_settings, tmp_path):
    settings = copy_of(data_settings, tmp_path / "sensor")
    stream(settings.simulation, settings.landing_dir, rate=50, duration=1, first_day=STREAM_DAY, sleep=lambda s: None)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_zone_sensor")
    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), definitions=defs) as context:
        result = sensor(context)
    assert len(result.run_requests) == 1


def test_ingestion_loads_each_event_exactly_once_and_quarantines_bad_records(data_settings, tmp_path):
    settings = copy_of(data_settings, tmp_path / "ingest")
    stream(settings.simulation, settings.landing_dir, rate=400, duration=2, malformed_rate=0.05,
           first_day=STREAM_DAY, sleep=lambda s: None)
    files = sorted(p.name for p in settings.landing_dir.glob("events-*.jsonl"))
    job = build_definitions(settings).resolve_job_def("step_streaming")
    instance = dg.DagsterInstance.ephemeral()

    def ingest(names):
        result = job.execute_in_process(instance=instance, run_config={"ops": {"ingest_landed_events": {"config": {"files": names}}}})
        assert result.success
        return result

    ingest(files)
    archive = settings.landing_dir / "archive"
    assert sorted(p.name for p in archive.iterdir()) == files and not list(settings.landing_dir.glob("events-*"))

    def counts():
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
            return conn.execute(
                "select (select count(*) from streaming.streamed_events), (select count(distinct event_id) from streaming.streamed_events),"
                " (select count(*) from streaming.events_quarantine)"
            ).fetchone()

    loaded, distinct, quarantined = counts()
    assert loaded == distinct and 0 < quarantined < 80 and loaded + quarantined == 800

    # the same file landing again is skipped; a new file repeating already-loaded events adds nothing
    shutil.copy(archive / files[0], settings.landing_dir / files[0])
    shutil.copy(archive / files[0], settings.landing_dir / "events-zz-replayed.jsonl")
    result = ingest([files[0], "events-zz-replayed.jsonl"])
    materialization = result.asset_materializations_for_node("ingest_landed_events")[0]
    assert materialization.metadata["duplicates_skipped"].value > 0
    after_loaded, after_distinct, _ = counts()
    assert after_loaded == after_distinct == loaded
