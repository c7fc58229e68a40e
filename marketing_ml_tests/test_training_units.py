"""Training building blocks on hand-checkable inputs: oracle, metrics, out-of-time plans, point-in-time SQL,
the encoder. The whole pipeline on a simulated world is in test_training_pipeline.py."""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from marketing_ml.features.catalog import ModelInputs
from marketing_ml.registry.encoding import EncodedRows, FrameEncoder
from marketing_ml.registry.evaluation import (
    binary_metrics,
    expected_calibration_error,
    oracle_horizon_probability,
    policy_evaluation,
)
from marketing_ml.registry.frames import Split
from marketing_ml.registry.tasks import OUTCOME_TASKS
from marketing_ml.training import datasets
from marketing_ml.training.families import FAMILIES, permutation_importance

D = dt.date


def test_oracle_turns_a_daily_hazard_into_a_horizon_probability():
    p = oracle_horizon_probability(np.array([0.0, 0.01, 1.0]), 30)
    assert p == pytest.approx([0.0, 1 - 0.99**30, 1.0])
    # per-row horizons broadcast
    assert oracle_horizon_probability(np.array([0.1, 0.1]), np.array([1, 2])) == pytest.approx([0.1, 0.19])


def test_calibration_error_is_zero_when_calibrated_and_measures_a_shift():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, 200_000)
    y = rng.random(len(p)) < p
    assert expected_calibration_error(y, p) < 0.002
    assert expected_calibration_error(y, p + 0.05) == pytest.approx(0.05, abs=0.002)
    # scores with the right mean but reversed: calibrated in the large, badly calibrated per bin
    assert expected_calibration_error(y, 0.2 - p) > 0.05


def test_metrics_of_a_constant_prediction_are_those_of_a_trivial_baseline():
    y = np.array([0, 0, 0, 1])
    m = binary_metrics(y, np.full(4, 0.25))
    assert m["auc"] == 0.5 and m["accuracy"] == 0.75 and m["brier"] == pytest.approx(0.1875)
    assert np.isnan(binary_metrics(np.zeros(3), np.full(3, 0.1))["auc"])


def test_policy_value_against_random_and_oracle_on_a_hand_case():
    truth = np.array([[0.1, 0.3, 0.2], [0.4, 0.1, 0.1]])
    result = policy_evaluation(np.array([1, 1]), truth, ("a", "b", "c"), baseline_action=0)
    assert result["policy_value"] == pytest.approx((0.3 + 0.1) / 2)
    assert result["policy_value_random"] == pytest.approx(truth.mean())
    assert result["policy_value_oracle"] == pytest.approx((0.3 + 0.4) / 2)
    assert result["policy_value_baseline"] == pytest.approx((0.1 + 0.4) / 2)
    assert result["policy_accuracy"] == 0.5
    span = 0.35 - truth.mean()
    assert result["captured_lift"] == pytest.approx((0.2 - truth.mean()) / span)


def test_observation_plans_are_out_of_time():
    start = D(2025, 1, 1)
    planned = 0
    for days, horizon, every, warmup, tests, validations in itertools.product(
        [60, 120, 365], [7, 30, 90], [3, 7], [0, 30, 90], [1, 4], [1, 2]
    ):
        end = start + dt.timedelta(days=days - 1)
        try:
            plan = datasets.plan_observations(start, end, horizon_days=horizon, every_days=every, warmup_days=warmup,
                                              test_dates=tests, validation_dates=validations, selection_dates=2,
                                              fit_to_history=True)
        except datasets.PlanError:
            continue  # even a one-day horizon does not fit (a clear error, tested below)
        planned += 1
        h = plan.horizon_days
        first_held_out = min(plan.dates["selection"])
        for d in plan.dates["train"] + plan.dates["validation"]:
            assert d + dt.timedelta(days=h) <= first_held_out, "a training label window reaches into the held-out period"
        assert max(plan.dates["train"]) < min(plan.dates["validation"])
        # the champion is chosen on dates before every reported (test) date
        assert max(plan.dates["selection"]) < min(plan.dates["test"]) and len(plan.dates["selection"]) == 2
        assert plan.last_label_day <= end, "a label window ends after the built history"
        assert plan.first_date >= start + dt.timedelta(days=plan.warmup_days)
        assert len(plan.dates["test"]) == tests and len(plan.dates["validation"]) == validations
        assert (h == horizon) == (not plan.notes)
    assert planned > 150


def test_a_history_too_short_is_refused_with_advice_unless_fitted():
    start, end = D(2025, 1, 1), D(2025, 3, 1)
    with pytest.raises(datasets.PlanError, match="Build more history"):
        datasets.plan_observations(start, end, horizon_days=90, every_days=7, warmup_days=90, test_dates=2,
                                   validation_dates=2, selection_dates=2, fit_to_history=False)
    plan = datasets.plan_observations(start, end, horizon_days=90, every_days=7, warmup_days=90, test_dates=2,
                                      validation_dates=2, selection_dates=2, fit_to_history=True)
    assert plan.horizon_days < 90 and "shortened" in plan.notes[0]


def test_touch_plan_slices_follow_each_other():
    plan = datasets.plan_touches(D(2025, 1, 1), D(2025, 12, 31), warmup_days=90, validation_days=28, test_days=56,
                                 selection_days=21, fit_to_history=False)
    (a, b), (c, d), (s, t), (e, f) = (plan.ranges[k] for k in ("train", "validation", "selection", "test"))
    assert a == D(2025, 4, 1) and b + dt.timedelta(days=1) == c and d + dt.timedelta(days=1) == s
    assert t + dt.timedelta(days=1) == e and (t - s).days + 1 == 21
    assert f == D(2025, 12, 31) and (f - e).days + 1 == 56 and (d - c).days + 1 == 28
    assert "selection" not in datasets.plan_touches(D(2025, 1, 1), D(2025, 12, 31), warmup_days=90, validation_days=28,
                                                    test_days=56, fit_to_history=False).ranges
    population = datasets.population_dates(e, f, 7)
    assert population[0] == e and population[-1] <= f and len(population) == 8


@pytest.fixture
def tiny_warehouse(tmp_path):
    """Three clients, a feature whose value encodes its as-of date, outcomes around the label windows."""
    path = tmp_path / "tiny.duckdb"
    conn = duckdb.connect(str(path))
    conn.execute("create schema features; create schema raw; create schema ground_truth")
    days = pd.date_range("2025-01-01", "2025-03-31").date
    features = pd.DataFrame(
        [(c, d, (d - D(2025, 1, 1)).days * 10 + c, c == 3 and d > D(2025, 2, 1), "basic") for c in (1, 2, 3) for d in days],
        columns=["client_id", "as_of_date", "day_code", "is_converted", "service_tier"],
    )
    conn.execute("create table features.client_features_daily as select * from features")
    hazards = features[["client_id", "as_of_date"]].assign(
        p_conversion_daily=features["day_code"] / 1e5, p_churn_daily=features["day_code"] / 2e5
    )
    conn.execute("create table ground_truth.true_daily_hazards as select * from hazards")
    outcomes = pd.DataFrame(
        [
            (1, D(2025, 3, 1), "conversion"),  # inside [Mar 1, Mar 8) for D = Mar 1
            (2, D(2025, 3, 8), "conversion"),  # exactly at the window end: not a label of D = Mar 1
            (2, D(2025, 2, 28), "churn"),  # before D = Mar 1
            (3, D(2025, 3, 3), "conversion"),  # client 3 converted in February: no conversion rows
        ],
        columns=["client_id", "outcome_date", "outcome_type"],
    )
    conn.execute("create table raw.raw_outcomes as select * from outcomes")
    conn.close()
    return path


def _build(path, task: str, plan) -> pd.DataFrame:
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema if not exists training")
        conn.execute(datasets.outcome_training_set_sql(OUTCOME_TASKS[task], plan, "training.t",
                                                       {"train": 10**6, "validation": 10**6, "test": 10**6}, 0.0,
                                                       ground_truth=True))
        rows = conn.execute("select * from training.t").fetchdf()
    for column in ("as_of_date", "label_end"):
        rows[column] = pd.to_datetime(rows[column]).dt.date
    return rows


def _plan(dates: dict[str, list[dt.date]], horizon: int) -> datasets.ObservationPlan:
    return datasets.ObservationPlan(horizon, 0, 7, {k: tuple(v) for k, v in dates.items()})


def test_training_rows_take_features_at_d_and_labels_only_from_the_window(tiny_warehouse):
    plan = _plan({"train": [D(2025, 2, 1)], "validation": [D(2025, 2, 15)], "test": [D(2025, 3, 1)]}, horizon=7)
    rows = _build(tiny_warehouse, "conversion", plan).set_index(["client_id", "as_of_date"])
    # features of a row are the feature table's row at as_of_date = D (day_code encodes the date)
    for (client, d), row in rows.iterrows():
        assert row["day_code"] == (d - D(2025, 1, 1)).days * 10 + client
        assert row["oracle_daily_hazard"] == pytest.approx(row["day_code"] / 1e5)
        assert row["label_end"] == d + dt.timedelta(days=7)
    # labels: [D, D + 7) only; client 3 converted before Mar 1, so it has no conversion row then
    assert bool(rows.loc[(1, D(2025, 3, 1)), "label"]) is True
    assert bool(rows.loc[(2, D(2025, 3, 1)), "label"]) is False
    assert (3, D(2025, 3, 1)) not in rows.index and (3, D(2025, 2, 1)) in rows.index
    assert rows["label"].sum() == 1
    churn = _build(tiny_warehouse, "churn", plan).set_index(["client_id", "as_of_date"])
    assert (3, D(2025, 3, 1)) in churn.index and churn["label"].sum() == 0  # the Feb 28 churn is before D


def test_changing_outcomes_outside_the_window_changes_nothing_and_inside_only_the_label(tiny_warehouse):
    plan = _plan({"train": [D(2025, 2, 1)], "validation": [D(2025, 2, 15)], "test": [D(2025, 3, 1)]}, horizon=7)
    before = _build(tiny_warehouse, "conversion", plan)
    with duckdb.connect(str(tiny_warehouse)) as conn:
        conn.execute("insert into raw.raw_outcomes values (2, date '2025-03-20', 'conversion'), "
                     "(1, date '2025-01-20', 'conversion'), (2, date '2025-03-02', 'conversion')")
    after = _build(tiny_warehouse, "conversion", plan)
    inputs = [c for c in before.columns if c != "label"]
    pd.testing.assert_frame_equal(before[inputs], after[inputs])
    changed = after.loc[after["label"] != before["label"], ["client_id", "as_of_date"]]
    assert changed.values.tolist() == [[2, D(2025, 3, 1)]]


def test_model_inputs_exclude_labels_and_ground_truth():
    columns = ["client_id", "as_of_date", "day_code", "label", "split", "label_end", "oracle_daily_hazard",
               "oracle_probability", "oracle_p_webinar_invite", "oracle_best_action", "action", "touch_id"]
    assert datasets.model_input_columns(columns, set(columns)) == ["day_code"]


def test_encoder_one_hots_with_a_fixed_vocabulary_imputes_and_log_scales():
    train = pd.DataFrame({"count": [0, 3, 10, np.nan], "share": [0.1, 0.5, 0.9, 0.2], "signed": [-2, 0, 5, 1],
                          "tier": ["basic", "plus", "basic", "premier"]})
    encoder = FrameEncoder(("count", "share", "signed"), ("tier",), log_scale=True).fit(train)
    assert list(encoder.get_feature_names_out()) == ["count", "share", "signed", "tier=basic", "tier=plus", "tier=premier"]
    row = pd.DataFrame({"count": [np.nan], "share": [0.3], "signed": [-1], "tier": ["gold"], "extra": ["ignored"]})
    out = encoder.transform(row)
    assert out.dtype == np.float32
    # missing count -> training median (3) -> log1p; shares and signed columns untouched; unseen tier -> zeros
    assert out[0].tolist() == pytest.approx([np.log1p(3.0), 0.3, -1.0, 0.0, 0.0, 0.0])
    # a missing category encodes as zeros too; known ones (as strings, whatever their type) as their level
    rows = pd.DataFrame({"count": [1, 1, 1], "share": [0.3] * 3, "signed": [0] * 3, "tier": [None, "premier", "plus"]})
    assert encoder.transform(rows)[:, 3:].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0]]
    with pytest.raises(KeyError, match="share"):
        encoder.transform(row.drop(columns="share"))


def test_encoded_rows_share_a_matrix_only_between_encoders_that_give_the_same_one(monkeypatch):
    train = pd.DataFrame({"count": [0, 3, 10, 4], "share": [0.1, 0.5, 0.9, 0.2], "tier": ["basic", "plus", "basic", "plus"]})
    same_but_medians = FrameEncoder(("count", "share"), ("tier",)).fit(train.iloc[:3])
    encoders = {
        "a": FrameEncoder(("count", "share"), ("tier",)).fit(train),
        "medians differ": same_but_medians,
        "log scaled": FrameEncoder(("count", "share"), ("tier",), log_scale=True).fit(train),
        "other vocabulary": FrameEncoder(("count", "share"), ("tier",)).fit(train.iloc[[0, 2]]),
    }
    assert encoders["a"].medians_.tolist() != same_but_medians.medians_.tolist()
    calls = []
    transform = FrameEncoder.transform
    monkeypatch.setattr(FrameEncoder, "transform", lambda self, X: calls.append(self) or transform(self, X))
    complete = pd.DataFrame({"count": [1, 7], "share": [0.3, 0.6], "tier": ["plus", "basic"]})
    gaps = complete.assign(count=[np.nan, 7.0])
    for frame, runs in ((complete, 3), (gaps, 4)):  # a missing number: the medians make the matrices differ
        rows, calls[:] = EncodedRows(frame), []
        for name, encoder in encoders.items():
            np.testing.assert_array_equal(rows.encoded_by(encoder), transform(encoder, frame), err_msg=name)
        assert len(calls) == runs
    assert EncodedRows.of(rows) is rows


def test_validation_clients_never_train(tmp_path):
    path = tmp_path / "clients.duckdb"
    dates = [D(2025, 2, 1), D(2025, 2, 8), D(2025, 2, 15), D(2025, 3, 15)]
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema features; create schema raw; create schema ground_truth")
        conn.execute("create table raw.raw_outcomes (client_id bigint, outcome_date date, outcome_type varchar)")
        conn.execute("create table ground_truth.true_daily_hazards (client_id bigint, as_of_date date, "
                     "p_conversion_daily float, p_churn_daily float)")
        features = pd.DataFrame([(c, d, False) for c in range(1, 401) for d in dates],  # noqa: F841 - read by DuckDB
                                columns=["client_id", "as_of_date", "is_converted"])
        conn.execute("create table features.client_features_daily as select * from features")
    plan = _plan({"train": dates[:2], "validation": [dates[2]], "test": [dates[3]]}, horizon=7)
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema training")
        conn.execute(datasets.outcome_training_set_sql(OUTCOME_TASKS["conversion"], plan, "training.t",
                                                       {"train": 10**6, "validation": 10**6, "test": 10**6}, 0.25,
                                                       ground_truth=True))
        rows = conn.execute("select client_id, as_of_date, split from training.t").fetchdf()
    rows["as_of_date"] = pd.to_datetime(rows["as_of_date"]).dt.date
    by_split = {s: set(g["client_id"]) for s, g in rows.groupby("split")}
    assert not by_split["train"] & by_split["validation"]
    assert 0.15 < len(by_split["validation"]) / 400 < 0.35
    assert set(rows.loc[rows["split"] == "validation", "as_of_date"]) == {dates[2]}
    assert len(by_split["test"]) == 400  # every client is scored out of time
    # non-validation clients train on every earlier date, the validation date included
    assert len(rows[rows["split"] == "train"]) == 3 * (400 - len(by_split["validation"]))


def test_permutation_importance_on_the_encoded_rows_equals_shuffling_the_frame():
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame({"count": rng.poisson(2.0, n).astype(float), "noise": rng.normal(size=n),
                          "tier": rng.choice(["basic", "plus", "premier"], n)})
    frame.loc[rng.random(n) < 0.1, "count"] = np.nan  # imputed with the training median
    logit = -2 + 0.8 * np.log1p(frame["count"].fillna(0)) + 1.0 * (frame["tier"] == "premier")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    spec = ModelInputs(numeric=("count", "noise"), categorical=("tier",))
    train, validation = Split(frame.iloc[:2000], y[:2000]), Split(frame.iloc[2000:].reset_index(drop=True), y[2000:])
    model = FAMILIES["logreg"].fit(spec, train, validation)

    # what the importance means: the drop in AUC when one input column of the frame is shuffled and re-encoded
    expected_rng = np.random.default_rng(11)
    take = expected_rng.permutation(len(validation))[:800]
    X, labels = validation.X.iloc[take].reset_index(drop=True), validation.y[take]
    reference = roc_auc_score(labels, model.predict_proba(X))
    drops = {}
    for column in spec.all:
        shuffled = X.copy()
        shuffled[column] = X[column].to_numpy()[expected_rng.permutation(len(X))]
        drops[column] = max(reference - roc_auc_score(labels, model.predict_proba(shuffled)), 0.0)
    expected = pd.Series(drops) / sum(drops.values())

    importance = permutation_importance(model, spec, validation, seed=11, max_rows=800)
    assert importance.index[0] in ("count", "tier") and importance["noise"] < importance[importance.index[0]]
    pd.testing.assert_series_equal(importance.sort_index(), expected.sort_index(), check_exact=False, rtol=1e-9)
