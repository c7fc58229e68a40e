"""The uplift step on a simulated world (`uplift_world`: 12,000 clients x 220 days), through Dagster,
DuckDB and MLflow."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import numpy as np

from marketing_ml.registry.store import CHAMPION, alias_version
from marketing_ml.resources.mlflow_tracking import tracking
from marketing_ml.settings import Settings
from marketing_ml.uplift.dataset import ARM, HORIZONS, LABELS, TRUTH_COLUMNS, UPLIFT_TABLE
from marketing_ml.uplift.store import PRIMARY_OUTCOME, registered_name, uplift_champions
from marketing_ml_tests.conftest import UPLIFT_END as END

def _markdown_rows(text: str) -> dict[str, dict[str, str]]:
    """A Markdown table's rows by their first cell."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:]]
    return {row[header[0]]: row for row in rows}


def _metadata(settings: Settings, key: str) -> dict:
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_the_uplift_set_is_the_contact_log_point_in_time_and_out_of_time(uplift_world):
    settings, _ = uplift_world
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        slices = conn.execute(f"select split, min(as_of_date), max(as_of_date) from {UPLIFT_TABLE} group by 1").fetchall()
        bounds = {s: (a, b) for s, a, b in slices}
        assert bounds["train"][1] < bounds["selection"][0] <= bounds["selection"][1] < bounds["test"][0]
        # every label window has matured inside the history
        assert bounds["test"][1] + dt.timedelta(days=max(HORIZONS.values()) - 1) <= END
        # one row per logged assignment in the range, each with the features as of its contact date
        logged = conn.execute(
            "select count(*) from raw.raw_interventions where intervention_date between ? and ?",
            [bounds["train"][0], bounds["test"][1]]).fetchone()[0]
        rows, mismatched = conn.execute(
            f"select count(*), count(*) filter (where intervention_id // 10000000 <> "
            f"date_diff('day', date '2000-01-01', as_of_date)) from {UPLIFT_TABLE}").fetchone()
        assert rows == logged and mismatched == 0
        # labels recomputed from the raw outcomes, independently of the set's SQL
        for outcome, days in HORIZONS.items():
            wrong = conn.execute(f"""
                select count(*) from {UPLIFT_TABLE} u
                where u.{LABELS[outcome]} <> exists (
                    select 1 from raw.raw_outcomes o where o.client_id = u.client_id and o.outcome_type = '{outcome}'
                    and o.outcome_date between u.as_of_date and u.as_of_date + {days - 1})""").fetchone()[0]
            assert wrong == 0
        arms = dict(conn.execute(f"select {ARM}, count(*) from {UPLIFT_TABLE} group by 1").fetchall())
        assert set(arms) == {"no_contact", "advisor_outreach", "retention_call"}


def test_no_uplift_model_reads_ground_truth_or_labels(uplift_world):
    settings, _ = uplift_world
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        frame = conn.execute(f"select * from {UPLIFT_TABLE} where split = 'test' order by intervention_id").fetchdf()
    forbidden = TRUTH_COLUMNS | set(LABELS.values()) | {ARM, "assignment_probability", "intervention_id", "split"}
    champions = uplift_champions(settings.mlflow_tracking_uri)
    assert champions, "no uplift champion on this world: nothing to check"
    for champion in champions.values():
        for model in champion.models.values():
            assert model.feature_columns and not set(model.feature_columns) & forbidden
            before = model.predict_effects(frame)
            shuffled = frame.copy()
            rng = np.random.default_rng(0)
            for column in forbidden & set(frame.columns):
                shuffled[column] = rng.permutation(shuffled[column].to_numpy())
            np.testing.assert_array_equal(before.to_numpy(), model.predict_effects(shuffled).to_numpy())


def test_each_learner_is_judged_on_selection_and_test_and_the_champions_follow_the_gate(uplift_world):
    settings, evaluations = uplift_world
    for learner in ("t_learner", "x_learner"):
        metadata = _metadata(settings, f"uplift_{learner}")
        assert "test_report" in metadata and metadata["mlflow_model_uri"].startswith("models:/")
        # each policy's contacts priced by the configured cost of the intervention: the same spend for every
        # policy at equal capacity, and the oracle's outcomes the cheapest
        advisor = _markdown_rows(metadata["test_policies"].split("**retention_call")[0])
        assert len({row["cost_usd"] for row in advisor.values()}) == 1
        assert float(advisor["oracle"]["cost_per_incremental_outcome_usd"]) <= float(advisor["model"]["cost_per_incremental_outcome_usd"])
        for slice_name in ("selection", "test"):
            metrics = metadata[f"{slice_name}_metrics"]
            assert np.isfinite(metrics[f"{slice_name}.conversion.advisor_outreach.qini"])
            # the oracle ranking captures everything by definition; a model at most that
            assert metrics[f"{slice_name}.conversion.advisor_outreach.captured_share_of_oracle"] <= 1 + 1e-9
    with tracking(settings.mlflow_tracking_uri) as client:
        for intervention in PRIMARY_OUTCOME:
            evaluation = evaluations[f"{intervention}_beats_propensity"]
            champion = alias_version(client, registered_name(intervention), CHAMPION)
            # an alias exists exactly when the gate passed (a fresh world has no earlier champion)
            assert (champion is not None) == evaluation.passed
            qini = evaluation.metadata["selection_qini"].value
            assert evaluation.passed == (qini > 0 and qini > evaluation.metadata["selection_qini_propensity"].value)
