"""Drift detects an injected regime change and stays quiet without one; a critical alert triggers retraining."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest

from marketing_ml.definitions import build_definitions
from marketing_ml.monitoring.alerts import FEATURE_PSI, Severity, alert_table
from marketing_ml.monitoring.drift import column_drift, drift_frame
from marketing_ml.monitoring.sensors import RETRAIN_JOB, retraining_reason
from marketing_ml.resources.mlflow_tracking import MLflowResource
from marketing_ml.simulation.config import RegimeShift
from marketing_ml_tests.conftest import TEST_END, TEST_START, run_step, small_settings

SHIFT = TEST_START + dt.timedelta(days=45)
REFERENCE = (TEST_START + dt.timedelta(days=35), TEST_START + dt.timedelta(days=41))
CURRENT = TEST_END
WATCHED = ["mobile_share_90d", "mobile_app_events_7d", "email_open_7d", "web_events_7d", "calculator_use_30d", "balance_401k"]


def _drift(settings) -> dict[str, float]:
    frame = drift_frame(column_drift(*_frames(settings), WATCHED))
    return dict(zip(frame["feature"], frame["psi"]))


@pytest.fixture(scope="module")
def shifted_settings(tmp_path_factory):
    settings = small_settings(tmp_path_factory.mktemp("mm_shift"), regime_shift=RegimeShift(start=SHIFT))
    run_step(settings, "step_data")
    run_step(settings, "step_features")
    return settings


def test_drift_is_quiet_without_a_shift_and_critical_with_one(features_settings, shifted_settings):
    calm, shifted = _drift(features_settings), _drift(shifted_settings)
    assert max(calm.values()) < FEATURE_PSI.warning, calm
    assert shifted["mobile_app_events_7d"] >= FEATURE_PSI.critical, shifted
    assert shifted["balance_401k"] < FEATURE_PSI.warning  # static attributes do not move


def test_a_critical_alert_requests_retraining_through_the_gate(shifted_settings, tmp_path):
    drift = drift_frame(column_drift(*_frames(shifted_settings), WATCHED)).assign(as_of_date=CURRENT)
    empty = drift.iloc[:0]
    table = alert_table(drift, empty.rename(columns={"feature": "score"}), _no_performance())
    assert table["severity"].max() == Severity.CRITICAL and (table["severity_name"] == "CRITICAL").any()

    defs = build_definitions(shifted_settings)
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(
        dg.AssetMaterialization("alerts", partition=CURRENT.isoformat(), metadata={"max_severity": Severity(int(table["severity"].max())).name})
    )
    sensor = defs.resolve_sensor_def("retraining_sensor")
    mlflow = MLflowResource(tracking_uri=shifted_settings.mlflow_tracking_uri, artifact_root=str(shifted_settings.mlflow_artifact_root))
    with dg.build_sensor_context(instance=instance, definitions=defs, resources={"mlflow": mlflow}) as context:
        request = sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key == f"critical-alert-{CURRENT.isoformat()}"
    # the retraining run rebuilds training and registry: a new champion only through the gate's checks
    selected = defs.resolve_job_def(RETRAIN_JOB).asset_layer.selected_asset_keys
    assert dg.AssetKey("conversion_champion") in selected and dg.AssetKey("training_set_conversion") in selected
    champion_checks = [c for c in defs.resolve_asset_graph().asset_check_keys if c.asset_key == dg.AssetKey("conversion_champion")]
    assert {c.name for c in champion_checks} >= {"auc_vs_oracle", "calibration", "not_worse_than_champion"}


def test_retraining_reason_covers_alerts_and_champion_age():
    now = dt.datetime(2025, 6, 1, 12)
    assert retraining_reason({"max_severity": "WARNING", "partition": "2025-05-31"}, now - dt.timedelta(days=3), now, 30) is None
    assert retraining_reason({"max_severity": "CRITICAL", "partition": "2025-05-31"}, None, now, 30)[0] == "critical-alert-2025-05-31"
    assert retraining_reason(None, now - dt.timedelta(days=31), now, 30)[0] == "champion-age-2025-06-01"


def _frames(settings):
    """Feature rows of a reference week before the shift and of the last day after it."""
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        reference = conn.execute("select * from features.client_features_daily where as_of_date between ? and ?", list(REFERENCE)).fetchdf()
        current = conn.execute("select * from features.client_features_daily where as_of_date = ?", [CURRENT]).fetchdf()
    return reference, current


def _no_performance():
    import pandas as pd

    return pd.DataFrame(columns=["as_of_date", "task", "auc_ratio", "calibration_error"])


def test_drift_samples_pick_what_a_query_of_each_day_picks(tmp_path, monkeypatch):
    """The range's sample in one query: per day the same clients, in the same order, as that day's own
    `order by hash(client_id) limit REFERENCE_ROWS` (so drift, means included, is what it was per day)."""
    import pandas as pd

    from marketing_ml.features.catalog import FEATURE_TABLE
    from marketing_ml.monitoring import drift
    from marketing_ml.partitions import by_day
    from marketing_ml.resources.warehouse import DuckDBWarehouse

    monkeypatch.setattr(drift, "REFERENCE_ROWS", 30)  # fewer than a day's 80 clients: the limit matters
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=k) for k in range(4)]
    # interleaved as a year-long build writes them; day 2 has no rows, day 3 only some clients
    rows = pd.DataFrame([(client, day, client * 0.1 + k, f"level_{client % 3}") for client in range(80)
                         for k, day in enumerate(days) if k != 2 and (k != 3 or client % 4 == 0)],
                        columns=["client_id", "as_of_date", "value", "level"])
    warehouse.execute("create schema features")
    with warehouse.connect() as conn:
        conn.execute(f"create table {FEATURE_TABLE} as select * from rows")
    sample_of = by_day(drift.drift_samples(warehouse, ["value", "level"], days[0], days[-1]))
    for day in days:
        alone = warehouse.query(f"select value, level from {FEATURE_TABLE} where as_of_date = ? "
                                "order by hash(client_id) limit 30", [day])
        picked = sample_of(day)[["value", "level"]].reset_index(drop=True)
        assert len(picked) == {0: 30, 1: 30, 2: 0, 3: 20}[days.index(day)]
        pd.testing.assert_frame_equal(picked, alone)
