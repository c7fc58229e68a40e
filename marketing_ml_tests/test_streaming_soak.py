"""The streaming soak, small: hostile files land continuously while the landing-zone sensor ticks and its
runs ingest them; every valid event is loaded exactly once, every bad record is quarantined with a reason,
and the landing zone ends empty. (The API's half of the soak is in test_serving_live.py.)"""

from __future__ import annotations

from marketing_ml.streaming.soak import FILE_KINDS, run_soak
from marketing_ml_tests.conftest import copy_of


def test_hostile_files_landing_continuously_lose_and_duplicate_nothing(data_settings, tmp_path):
    settings = copy_of(data_settings, tmp_path / "soak")
    # seed 7 draws every kind of file three times or more among the 28 after the first two valid ones
    result = run_soak(settings, files=30, events_per_file=40, bad_share=0.05, interval=0.05, seed=7,
                      give_up_seconds=300)
    landed = result.landed
    assert all(landed.files[kind] > 0 for kind in FILE_KINDS), landed.files
    assert len(landed.valid_event_ids) == 40 * landed.files["valid"]
    assert landed.duplicate_events > 0 and landed.bad_records > 0
    assert result.events_lost == 0 and result.events_unexpected == 0
    assert result.events_loaded == result.distinct_events_loaded == len(landed.valid_event_ids)
    assert result.quarantined == landed.bad_records and result.quarantined_without_reason == 0
    assert result.left_in_landing_zone == 0 and result.dead_letters == 0
    assert result.failed_runs == 0 and result.runs >= 2
