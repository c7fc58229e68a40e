"""Streaming ingestion: atomic micro-batch files, the landing-zone sensor, exactly-once loading and
quarantine of bad records beside the good ones."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import dagster as dg
import duckdb

import pandas as pd
import pytest

from marketing_ml.definitions import build_definitions
from marketing_ml.simulation.engine import simulate_days
from marketing_ml.streaming.ingest import EventWindow, parse_event_file
from marketing_ml.streaming.producer import stream
from marketing_ml_tests.conftest import TEST_END, copy_of, query

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


GOOD = {"event_id": 1, "client_id": 7, "event_ts": "2025-03-02T10:00:00", "channel": "web",
        "event_type": "login", "device": "desktop", "campaign_id": None}
CLIENT_7 = pd.DataFrame({"client_id": [7], "enrollment_date": [dt.date(2024, 6, 1)]})
WINDOW = EventWindow(earliest=dt.datetime(2025, 2, 20), latest=dt.datetime(2025, 3, 4))


def parse(path, clients=CLIENT_7, window=WINDOW, max_file_bytes=2**20):
    return parse_event_file(path, clients, window, max_file_bytes, now=dt.datetime(2025, 3, 2, 12))


def reasons_by_line(parsed) -> dict[int, str]:
    return dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))


def test_parser_keeps_good_records_and_quarantines_each_bad_one_with_a_reason(tmp_path):
    lines = [
        json.dumps(GOOD),
        json.dumps({**GOOD, "event_id": 2, "channel": "fax"}),
        json.dumps({**GOOD, "event_id": 3, "client_id": 999_999}),
        json.dumps({k: v for k, v in {**GOOD, "event_id": 4}.items() if k != "client_id"}),
        json.dumps({**GOOD, "event_id": 5, "event_ts": "yesterday-ish"}),
        json.dumps({**GOOD, "event_id": 6, "event_type": "email_open"}),  # not an event type of the web channel
        '{"event_id": 7, "client_id": ',
        json.dumps({**GOOD, "event_id": 8, "device": "mobile"}),
    ]
    path = tmp_path / "events-1.jsonl"
    path.write_text("\n".join(lines) + "\n")
    parsed = parse(path)
    assert parsed.events["event_id"].tolist() == [1, 8]
    reasons = reasons_by_line(parsed)
    assert reasons[2].startswith("unknown channel: fax")
    assert reasons[3] == "unknown client_id 999999"
    assert reasons[4] == "missing client_id"
    assert reasons[5] == "missing or unparseable event_ts"
    assert reasons[6].startswith("unknown event_type for channel web")
    assert reasons[7] == "malformed JSON"
    assert (parsed.quarantine["file_name"] == "events-1.jsonl").all()


def test_a_line_that_is_not_utf8_costs_that_line_only_and_keeps_its_raw_text(tmp_path):
    path = tmp_path / "events-2.jsonl"
    good = [json.dumps({**GOOD, "event_id": i}).encode() for i in (1, 2, 3)]
    path.write_bytes(b"\n".join([good[0], b'{"event_id": 4, "client_id": 7, "device": "\xff\xfe"}', *good[1:]]) + b"\n")
    parsed = parse(path)
    assert parsed.events["event_id"].tolist() == [1, 2, 3]
    [bad] = parsed.quarantine.itertuples()
    assert bad.line_number == 2 and bad.reason.startswith("not UTF-8 text")
    assert bad.raw_record == '{"event_id": 4, "client_id": 7, "device": "\ufffd\ufffd"}'


def test_a_binary_or_oversized_file_is_quarantined_not_an_error(tmp_path):
    binary = tmp_path / "events-3.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\x80\x81\n\x00\x01\x02")
    parsed = parse(binary)
    assert parsed.events.empty and parsed.quarantine["reason"].tolist() == ["not UTF-8 text: invalid start byte at byte 0",
                                                                           "malformed JSON"]
    oversized = tmp_path / "events-4.jsonl"
    oversized.write_text((json.dumps(GOOD) + "\n") * 100)
    parsed = parse(oversized, max_file_bytes=1000)
    assert parsed.events.empty and parsed.quarantine["reason"].iloc[0].startswith("oversized file")


@pytest.mark.parametrize("value", [1.7, "1.7", "7", True, 7.0, 1e3, 2**64, None])
def test_an_id_that_is_not_an_exact_json_integer_is_quarantined_never_rounded(tmp_path, value):
    path = tmp_path / "events-5.jsonl"
    path.write_text(json.dumps({**GOOD, "client_id": value}) + "\n" + json.dumps({**GOOD, "event_id": value}) + "\n")
    parsed = parse(path, clients=pd.DataFrame({"client_id": [1, 2, 7, 1000], "enrollment_date": [dt.date(2024, 1, 1)] * 4}))
    assert parsed.events.empty
    expected = "missing" if value is None else "non-integer"
    assert reasons_by_line(parsed) == {1: f"{expected} client_id" + ("" if value is None else f": {json.dumps(value)}"),
                                       2: f"{expected} event_id" + ("" if value is None else f": {json.dumps(value)}")}


def test_events_outside_the_lateness_window_or_before_enrolment_are_quarantined(tmp_path):
    stamps = ["1900-01-01T00:00:00", "2025-02-19T23:59:59", "2025-02-20T00:00:00", "2025-03-04T00:00:01"]
    path = tmp_path / "events-6.jsonl"
    path.write_text("".join(json.dumps({**GOOD, "event_id": i, "event_ts": ts}) + "\n" for i, ts in enumerate(stamps)))
    reasons = reasons_by_line(parse(path))
    assert reasons[1].startswith("event_ts too late") and reasons[2].startswith("event_ts too late")
    assert 3 not in reasons and reasons[4].startswith("event_ts too far in the future")
    enrolled_later = CLIENT_7.assign(enrollment_date=dt.date(2025, 3, 1))
    parsed = parse(path, clients=enrolled_later, window=EventWindow(earliest=None, latest=WINDOW.latest))
    assert reasons_by_line(parsed)[3] == "event_ts before the client enrolled (2025-03-01): 2025-02-20 00:00:00"
    assert reasons_by_line(parsed)[1].startswith("event_ts before the client enrolled")


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


def test_a_clean_first_file_creates_the_tables_with_their_declared_types(data_settings, tmp_path):
    """An all-clean first file gives an empty quarantine frame; the table must not take its (untyped)
    columns, or every later quarantined record fails to insert and ingestion wedges."""
    settings = copy_of(data_settings, tmp_path / "typed")
    job = build_definitions(settings).resolve_job_def("step_streaming")
    instance = dg.DagsterInstance.ephemeral()
    event = {**GOOD, "client_id": 1, "event_ts": f"{STREAM_DAY}T10:00:00"}
    for number, lines in enumerate([[json.dumps(event)], [json.dumps({**event, "event_id": 2}), '{"event_id": 3,']]):
        settings.landing_dir.mkdir(parents=True, exist_ok=True)
        (settings.landing_dir / f"events-{number}.jsonl").write_text("\n".join(lines) + "\n")
        assert job.execute_in_process(instance=instance).success
    types = query(settings, "select table_name, column_name, data_type from information_schema.columns "
                            "where table_schema = 'streaming'")
    assert "NULL" not in set(types["data_type"])
    assert query(settings, "select count(*) as n from streaming.streamed_events")["n"].iloc[0] == 2
    assert query(settings, "select reason from streaming.events_quarantine")["reason"].tolist() == ["malformed JSON"]
