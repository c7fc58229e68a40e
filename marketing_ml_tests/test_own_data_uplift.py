"""The uplift step on a provider's own data (4,000 clients x 220 days from files, UUID client ids,
randomised contacts exported with their assignment probability), where no ground truth exists.

`own_data_world` logs about 11 no-contact assignments a day: its train slice holds two 30-day conversions
in the hold-out arm and its selection slice none, too few to fit the arm models (the learners say so and
train nothing). The models are trained on the same extract with three times the contacts (`own_uplift`:
a randomised share of 9% of the eligible clients a day, each again after 30 days, about as many contacts as
the simulated uplift world's 12,000 clients); the tests without randomisation, or with too few contacts,
use `own_data_world`. The decisions test (`own_decided`) runs the models and registry steps too.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pandas as pd
import pytest

from marketing_ml.decisions.day import EFFECT_COLUMNS
from marketing_ml.decisions.impact import MODEL_ESTIMATE
from marketing_ml.definitions import build_definitions
from marketing_ml.registry.store import CHAMPION, alias_version
from marketing_ml.resources.mlflow_tracking import tracking
from marketing_ml.settings import NO_GROUND_TRUTH, Settings
from marketing_ml.simulation.config import SimulationConfig
from marketing_ml.uplift.dataset import TRUTH_COLUMNS, UPLIFT_SET, UPLIFT_TABLE
from marketing_ml.uplift.learners import LEARNERS
from marketing_ml.uplift.store import EXPERIMENT, PRIMARY_OUTCOME, registered_name
from marketing_ml_tests.conftest import (
    OWN_DATA_CLIENTS,
    OWN_DATA_END,
    TEST_START,
    build_own_data_world,
    copy_of,
    query,
    run_step,
)
from marketing_ml_tests.test_decisions_pipeline import decide

TRUTH_KEYS = ("oracle_qini", "rank_correlation", "pehe", "captured_share_of_oracle", "ratio_to_propensity")


def _metadata(instance: dg.DagsterInstance, key: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _uplift_step(settings: Settings):
    instance = dg.DagsterInstance.ephemeral()
    result = run_step(settings, "step_uplift", TEST_START, OWN_DATA_END, instance=instance)
    return instance, {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def own_uplift(tmp_path_factory):
    """(settings, instance, check evaluations by name) of the uplift step on `own_contact_world`."""
    config = SimulationConfig(start_date=TEST_START, n_clients=OWN_DATA_CLIENTS, intervention_rate=0.09,
                              contact_cooldown_days=30)
    settings = build_own_data_world(tmp_path_factory.mktemp("own_contact_world"), config)
    return settings, *_uplift_step(settings)


def test_the_uplift_graph_has_no_ground_truth_inputs(own_data_world):
    assert not own_data_world.ground_truth
    graph = build_definitions(own_data_world).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        if graph.get(key).group_name in ("uplift", "scoring"):
            assert not {p.to_user_string() for p in graph.get(key).parent_keys} & {"true_daily_hazards",
                                                                                     "true_client_traits"}


def test_uplift_on_own_data_trains_on_the_randomised_contacts_without_truth(own_uplift):
    settings, instance, evaluations = own_uplift
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        schemas = {r[0] for r in conn.execute("select schema_name from information_schema.schemata").fetchall()}
        assert "ground_truth" not in schemas
        columns = {r[0] for r in conn.execute(f"describe {UPLIFT_TABLE}").fetchall()}
        assert not columns & TRUTH_COLUMNS
        ids, rows, randomised = conn.execute(
            f"select typeof(any_value(client_id)), count(*), count(assignment_probability) from {UPLIFT_TABLE}"
        ).fetchone()
        assert ids == "VARCHAR" and rows > 0 and rows == randomised  # UUID ids, every row randomised
    uplift_set = _metadata(instance, UPLIFT_SET)
    assert uplift_set["truth_columns"] == NO_GROUND_TRUTH and "no_uplift_model" not in uplift_set
    assert uplift_set["contacts_randomised"] == uplift_set["contacts_logged"] > 0
    for learner in LEARNERS:
        metadata = _metadata(instance, f"uplift_{learner}")
        assert metadata["mlflow_model_uri"].startswith("models:/")
        assert metadata["truth_figures"] == NO_GROUND_TRUTH and metadata["test_policies"] == NO_GROUND_TRUTH
        assert NO_GROUND_TRUTH in metadata["test_report"]
        header = next(line for line in metadata["test_report"].splitlines() if line.startswith("|"))
        assert {"qini", "auuc", "qini_propensity"} <= {c.strip() for c in header.strip("|").split("|")}
        assert not any(k in header for k in TRUTH_KEYS)
        for slice_name in ("selection", "test"):
            metrics = metadata[f"{slice_name}_metrics"]
            for outcome, intervention in (("conversion", "advisor_outreach"), ("churn", "retention_call")):
                assert f"{slice_name}.{outcome}.{intervention}.qini" in metrics
                assert f"{slice_name}.{outcome}.{intervention}.auuc" in metrics
            # a truth figure is left out, not shown as 0 or NaN
            assert not any(k.endswith(TRUTH_KEYS) for k in metrics)
    # the gate judged the candidates on the observed selection Qini, as with the simulator's data
    with tracking(settings.mlflow_tracking_uri) as client:
        for intervention in PRIMARY_OUTCOME:
            evaluation = evaluations[f"{intervention}_beats_propensity"]
            champion = alias_version(client, registered_name(intervention), CHAMPION)
            assert (champion is not None) == evaluation.passed


@pytest.mark.parametrize("change, reason", [
    ("update raw.raw_interventions set assignment_probability = null",
     "none of the {logged:,} logged contacts has an assignment_probability"),
    ("delete from raw.raw_interventions", "the interventions table is empty or not provided"),
], ids=["targeted contacts", "no contacts"])
def test_a_contact_log_without_randomised_contacts_trains_nothing(own_data_world, tmp_path, change, reason):
    settings = copy_of(own_data_world, tmp_path / "home")
    with duckdb.connect(str(settings.duckdb_path)) as conn:
        logged = conn.execute("select count(*) from raw.raw_interventions").fetchone()[0]
        conn.execute(change)
    reason = reason.format(logged=logged)
    instance, evaluations = _uplift_step(settings)
    uplift_set = _metadata(instance, UPLIFT_SET)
    assert reason in uplift_set["no_uplift_model"]
    assert uplift_set["contacts_randomised"] == uplift_set["dagster/row_count"] == 0
    for learner in LEARNERS:
        metadata = _metadata(instance, f"uplift_{learner}")
        assert reason in metadata["not_trained"] and "mlflow_model_uri" not in metadata
    assert reason in _metadata(instance, "uplift_champions")["decisions"]
    assert all(not e.passed and reason in e.metadata["no_candidate"].value for e in evaluations.values())
    with tracking(settings.mlflow_tracking_uri) as client:
        assert all(alias_version(client, registered_name(i), CHAMPION) is None for i in PRIMARY_OUTCOME)
        uplift = [e.experiment_id for e in client.search_experiments() if e.name.endswith(f"/{EXPERIMENT}")]
        assert not uplift or not client.search_runs(uplift)


def test_a_contact_log_too_small_to_fit_trains_nothing_and_says_what_it_holds(own_data_world, tmp_path):
    """`own_data_world` is randomised, but its train slice holds two no-contact conversions and its selection
    slice none: each learner says so, nothing is promoted, and the step (and the run) goes on."""
    settings = copy_of(own_data_world, tmp_path / "home")
    instance, evaluations = _uplift_step(settings)
    assert _metadata(instance, UPLIFT_SET)["contacts_randomised"] > 0
    for learner in LEARNERS:
        metadata = _metadata(instance, f"uplift_{learner}")
        assert "both slices need both classes" in metadata["not_trained"] and "mlflow_model_uri" not in metadata
    decisions = _metadata(instance, "uplift_champions")["decisions"]
    assert "no learner was trained" in decisions and "stays unset" in decisions
    assert all(not e.passed and "no learner was trained" in e.metadata["no_candidate"].value for e in evaluations.values())
    with tracking(settings.mlflow_tracking_uri) as client:
        assert all(alias_version(client, registered_name(i), CHAMPION) is None for i in PRIMARY_OUTCOME)


# ---- the day's decisions on the provider's data: business impact is the models' estimate ----

FIRST = OWN_DATA_END - dt.timedelta(days=1)
LISTED_INTERVENTION = {"advisor_queue": "advisor_outreach", "retention_list": "retention_call"}


@pytest.fixture(scope="module")
def own_decided(own_uplift, tmp_path_factory):
    """The models and registry steps (the outcome and next-best-action champions) on a copy of the uplift
    run's directory, then the inference step's `scoring` group for the last two days in one run:
    (settings, instance, the interventions whose uplift champion the gate promoted)."""
    source, _, evaluations = own_uplift
    settings = copy_of(source, tmp_path_factory.mktemp("own_decided") / "home")
    instance = dg.DagsterInstance.ephemeral()
    for step in ("step_models", "step_registry"):
        run_step(settings, step, TEST_START, OWN_DATA_END, instance=instance)
    decide(settings, FIRST, OWN_DATA_END, instance)
    passed = {name.removesuffix("_beats_propensity") for name, e in evaluations.items() if e.passed}
    return settings, instance, passed


def test_own_data_business_impact_is_the_models_estimate_without_an_oracle(own_decided):
    settings, instance, passed = own_decided
    assert "ground_truth" not in {r["schema_name"] for _, r in
                                  query(settings, "select schema_name from information_schema.schemata").iterrows()}
    table = query(settings, "select * from scoring.business_impact")
    assert set(table["counted_from"]) == {MODEL_ESTIMATE}
    assert "oracle" not in set(table["policy"]) and "share_of_oracle_outcomes" not in table
    assert table[["incremental_outcomes", "baseline_outcomes", "incremental_revenue_usd"]].notna().all().all()
    # the first day: the advisors' clients worth a call are called then, and in the cool-down the next day
    by = table[table["as_of_date"] == pd.Timestamp(FIRST)].set_index(["use_case", "policy"])
    scores = query(settings, "select * from scoring.uplift_scores where as_of_date = ?", [FIRST])
    for use_case, intervention in LISTED_INTERVENTION.items():
        rows = query(settings, f"select * from scoring.{use_case} where as_of_date = ?", [FIRST])
        assert rows["client_id"].map(type).eq(str).all()  # the provider's UUIDs, kept as text
        if intervention not in passed:
            # no uplift champion: the list ranks by propensity, and nothing estimates what its calls cause
            assert set(rows["ranked_by"]) <= {"propensity"} and use_case not in set(table["use_case"])
            continue
        assert len(rows) and set(rows["ranked_by"]) == {"uplift"}
        # the uplift list is credited with the effects its champion predicted for the listed clients,
        # recomputed here from the uplift scores
        effect = rows[["client_id"]].merge(scores, on="client_id")[EFFECT_COLUMNS[use_case]]
        caused = effect.sum() if use_case == "advisor_queue" else -effect.sum()
        assert by.loc[(use_case, "uplift"), "contacts"] == len(rows)
        assert by.loc[(use_case, "uplift"), "incremental_outcomes"] == pytest.approx(caused, rel=1e-6)
    assert ("campaign_targets", "uplift") in by.index  # the next-best-action champion's response uplift
    metadata = {k: v.value for k, v in instance.get_latest_materialization_event(
        dg.AssetKey("business_impact")).asset_materialization.metadata.items()}
    assert metadata["counted_from"] == MODEL_ESTIMATE and metadata["oracle"] == NO_GROUND_TRUTH
    assert "the models' estimate" in metadata["impact (2 days, distinct contacts summed, the models' estimate)"]
    assert "kpis (all days, the models' estimate)" in metadata and "kpis (all days)" not in metadata
    for use_case, intervention in LISTED_INTERVENTION.items():
        assert (intervention in passed) != (f"{use_case}: not judged" in metadata.get("not judged", ""))
