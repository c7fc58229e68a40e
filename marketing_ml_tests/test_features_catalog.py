"""The feature catalog, its versions guarded by SQL hashes, and `marketing-ml features`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from marketing_ml.cli import main
from marketing_ml.features import DBT_PROJECT_DIR
from marketing_ml.features.catalog import (
    GROUPS,
    catalog_version,
    get_feature,
    load_feature_catalog,
    model_input_features,
    read_lock,
)
from marketing_ml.features.versions import compile_feature_sql, feature_sql_hashes, lock_problems, write_lock
from marketing_ml.simulation import vocabulary


def test_dbt_vocabularies_are_the_simulators():
    dbt_vars = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    assert dbt_vars["channels"] == list(vocabulary.CHANNELS)
    assert dbt_vars["event_types"] == list(vocabulary.EVENT_TYPES)
    assert dbt_vars["devices"] == list(vocabulary.DEVICES)
    assert dbt_vars["actions"] == list(vocabulary.ACTION_NAMES)
    assert dbt_vars["outcome_types"] == list(vocabulary.OUTCOME_TYPES)


def test_every_feature_is_documented_and_model_inputs_split_by_encoding():
    catalog = load_feature_catalog()
    names = [f.name for f in catalog]
    assert len(names) == len(set(names)) > 80
    assert {f.group for f in catalog} == set(GROUPS)
    for f in catalog:
        assert f.description and f.owner.startswith("team:") and f.entity == "client" and f.version >= 1
        assert f.sql_hash, f"{f.name} is not in the lock"
    inputs = model_input_features()
    assert sorted(inputs.all) == sorted(names)
    assert set(inputs.categorical) == {"dominant_channel_90d", "service_tier", "risk_tolerance", "marital_status",
                                       "lifecycle_segment"}
    with pytest.raises(KeyError, match="email_open_rate_90d"):
        get_feature("email_open_rate")


def test_the_lock_matches_the_compiled_sql():
    assert lock_problems() == []


@pytest.fixture
def project_copy(tmp_path) -> Path:
    copy = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_changing_a_features_sql_without_a_version_bump_is_caught(project_copy):
    locked = {name: entry["sql_hash"] for name, entry in read_lock().items()}
    # one feature's own formula, and the event filter every engagement window reads
    _edit(project_copy / "macros/feature_vectors.sql", "power(1.04, years_to_retirement)",
          "power(1.05, years_to_retirement)")
    _edit(project_copy / "models/intermediate/int_client_activity_daily.sql",
          "and event_date < {{ date_literal(w.max_date) }}", "and event_date <= {{ date_literal(w.max_date) }}")
    hashes = feature_sql_hashes(compile_feature_sql(project_copy))
    changed = {name for name, h in hashes.items() if name in locked and h != locked[name]}
    assert {"retirement_readiness", "events_7d", "email_open_rate_90d", "lifecycle_segment"} <= changed
    assert not changed & {"age", "annual_income", "wealth_potential", "touches_180d", "is_converted"}

    problems = lock_problems(project_copy, hashes)
    assert any(str(p).startswith("retirement_readiness: its SQL changed but its version is still 1") for p in problems)
    assert write_lock(project_copy, hashes)  # refused while versions are not bumped

    features_yaml = project_copy / "models/features/client_features_daily.yml"
    document = yaml.safe_load(features_yaml.read_text())
    for column in document["models"][0]["columns"]:
        if column["name"] in changed:
            column["config"]["meta"]["feature"]["version"] += 1
    features_yaml.write_text(yaml.safe_dump(document, sort_keys=False))
    before = catalog_version(project_copy)
    assert write_lock(project_copy, hashes) == []
    assert lock_problems(project_copy, hashes) == []
    assert catalog_version(project_copy) != before


def test_features_list_and_describe(capsys):
    assert main(["features", "list", "--group", "financial"]) == 0
    listing = capsys.readouterr().out
    assert "retirement_readiness" in listing and "events_7d" not in listing
    assert main(["features", "describe", "activity_trend_30d"]) == 0
    described = capsys.readouterr().out
    assert "engagement" in described and get_feature("activity_trend_30d").sql_hash in described
    assert main(["features", "describe", "no_such_feature"]) == 2
    assert "features list" in capsys.readouterr().err
