"""Bring your own data: the contract, the mapping and validation, on a small simulated world exported as a
provider's extract (UUID ids, other column names and vocabulary, CSV, Parquet, daily files)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from marketing_ml.simulation.config import SimulationConfig
from marketing_ml.simulation.engine import simulate_days
from marketing_ml.simulation.population import client_profiles, generate_population
from marketing_ml.sources import contract
from marketing_ml.sources.export import IGNORED_EVENT_TYPE, export_simulated_world
from marketing_ml.sources.mapping import MappingError, parse_mapping
from marketing_ml.sources.validation import Violation, format_report, load_source, validate_source
from marketing_ml_tests.conftest import PATH_WITHOUT_VENV, VENV_SCRIPT

CONFIG = SimulationConfig(start_date=dt.date(2024, 1, 1), n_clients=400)
FIRST, LAST = dt.date(2024, 1, 1), dt.date(2024, 1, 21)
TODAY = dt.date(2026, 6, 1)  # after every simulated enrolment (the last is a year after the start)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_simulated_world(CONFIG, FIRST, LAST, tmp_path_factory.mktemp("export") / "provider")


@pytest.fixture
def extract(exported, tmp_path) -> Path:
    """A copy of the export for one test to break."""
    return Path(shutil.copytree(exported.folder, tmp_path / "provider"))


def test_the_exported_world_validates_clean_and_reports_what_the_mapping_left_out(exported):
    report = validate_source(exported.folder, today=TODAY)
    assert report.ok, format_report(report)
    events = report.tables["marketing_events"]
    assert len(events.files) == (LAST - FIRST).days + 1  # a folder of daily files
    assert set(events.ignored) == {"event_type"} and events.ignored["event_type"][IGNORED_EVENT_TYPE] > 0
    assert f"'{IGNORED_EVENT_TYPE}'" in format_report(report)


def test_the_export_loads_back_to_the_simulators_tables(exported):
    """Renamed columns, UUID ids and another vocabulary come back as the simulator's rows and values."""
    tables = load_source(exported.folder, today=TODAY).tables
    days = simulate_days(CONFIG, FIRST, LAST)
    uuids = exported.client_uuids

    events = tables["marketing_events"].sort_values("event_id").reset_index(drop=True)
    expected = days.events.assign(event_id="A" + days.events["event_id"].astype(str),
                                  client_id=days.events["client_id"].map(uuids))
    expected = expected.sort_values("event_id").reset_index(drop=True)
    assert len(events) == len(expected)  # the ignored password resets are left out
    for column in ("event_id", "client_id", "channel", "event_type", "device"):
        assert events[column].astype(str).tolist() == expected[column].astype(str).tolist(), column
    assert events["event_date"].dt.date.tolist() == pd.to_datetime(expected["event_date"]).dt.date.tolist()

    clients = tables["clients"].set_index("client_id")
    truth = client_profiles(CONFIG, generate_population(CONFIG)).assign(client_id=lambda f: f["client_id"].map(uuids))
    truth = truth.set_index("client_id").loc[clients.index]
    assert clients["home_owner"].tolist() == truth["home_owner"].tolist()
    assert clients["annual_income"].tolist() == truth["annual_income"].tolist()
    assert clients["enrollment_date"].dt.date.tolist() == pd.to_datetime(truth["enrollment_date"]).dt.date.tolist()
    outcomes = tables["outcomes"]
    assert sorted(outcomes["outcome_type"]) == sorted(days.outcomes["outcome_type"])


def test_integer_ids_under_the_contracts_own_names_need_no_mapping(tmp_path):
    days = simulate_days(CONFIG, FIRST, FIRST + dt.timedelta(days=2))
    client_profiles(CONFIG, generate_population(CONFIG)).to_parquet(tmp_path / "clients.parquet")
    (tmp_path / "marketing_events").mkdir()
    for day, rows in days.events.groupby("event_date"):
        rows.to_csv(tmp_path / "marketing_events" / f"{day}.csv", index=False)
    days.outcomes.to_parquet(tmp_path / "outcomes.parquet")
    loaded = load_source(tmp_path, today=TODAY)
    assert loaded.report.ok, format_report(loaded.report)
    assert not loaded.report.tables["interventions"].provided  # optional
    assert pd.api.types.is_integer_dtype(loaded.tables["marketing_events"]["client_id"])
    assert "interventions: not provided (optional)" in format_report(loaded.report)


# ---- bad data: each case is the good export with one thing broken ---------------------------------------


def _set(path: Path, column: str, value, rows: int = 1) -> None:
    """Overwrite `column` in the first `rows` rows of a CSV or Parquet file."""
    csv = path.suffix == ".csv"
    frame = pd.read_csv(path, dtype=str) if csv else pd.read_parquet(path)
    frame[column] = frame[column].astype(object).where(frame.index >= rows, value)
    frame.to_csv(path, index=False) if csv else frame.to_parquet(path, index=False)


def _first_events_file(folder: Path) -> Path:
    return sorted((folder / "activity").iterdir())[0]


def _missing_column(folder: Path) -> str:
    pd.read_parquet(folder / "outcomes.parquet").drop(columns="outcome").to_parquet(folder / "outcomes.parquet")
    return "outcome"


def _wrong_type(folder: Path) -> str:
    _set(folder / "participants.csv", "salary_usd", "a lot")
    return "a lot"


def _duplicate_key(folder: Path) -> str:
    path = _first_events_file(folder)
    frame = pd.read_parquet(path)
    pd.concat([frame, frame.iloc[[0]]]).to_parquet(path, index=False)
    return str(frame["activity_id"].iloc[0])


def _unknown_client(folder: Path) -> str:
    _set(_first_events_file(folder), "participant_uuid", "no-such-client")
    return "no-such-client"


def _outcome_before_enrolment(folder: Path) -> str:
    _set(folder / "outcomes.parquet", "happened_on", dt.date(1980, 1, 1))
    return "1980-01-01"


def _future_date(folder: Path) -> str:
    _set(folder / "contact_log.csv", "contact_day", "2031-05-01")
    return "2031-05-01"


def _unmapped_event_type(folder: Path) -> str:
    _set(_first_events_file(folder), "activity", "CHATBOT_SESSION", rows=3)
    return "CHATBOT_SESSION"


@pytest.mark.parametrize(
    ("break_it", "table", "column", "source_column", "rule"),
    [
        (_missing_column, "outcomes", "outcome_type", "outcome", contract.RULE_REQUIRED_COLUMN),
        (_wrong_type, "clients", "annual_income", "salary_usd", contract.RULE_TYPE),
        (_duplicate_key, "marketing_events", "event_id", "activity_id", contract.RULE_UNIQUE_KEY),
        (_unknown_client, "marketing_events", "client_id", "participant_uuid", contract.RULE_KNOWN_CLIENT),
        (_outcome_before_enrolment, "outcomes", "outcome_date", "happened_on", contract.RULE_NOT_BEFORE_ENROLMENT),
        (_future_date, "interventions", "intervention_date", "contact_day", contract.RULE_NOT_IN_FUTURE),
        (_unmapped_event_type, "marketing_events", "event_type", "activity", contract.RULE_UNMAPPED_VALUE),
    ],
)
def test_bad_data_is_reported_by_table_column_rule_and_example_rows(extract, break_it, table, column, source_column, rule):
    bad_value = break_it(extract)
    report = validate_source(extract, today=TODAY)
    found = [v for v in report.violations if (v.table, v.column, v.rule) == (table, column, rule)]
    assert len(found) == 1, format_report(report)
    violation: Violation = found[0]
    assert violation.source_column == source_column
    text = format_report(report)
    assert f"{column} (your column {source_column!r}): {rule}" in text and text.endswith("table(s)")
    if rule == contract.RULE_REQUIRED_COLUMN:
        assert violation.rows == report.tables[table].rows
        return
    assert bad_value in violation.values, violation.values  # the failing value as it is in the file
    assert not violation.examples.empty and len(violation.examples) <= 5
    assert bad_value in violation.examples[source_column].astype(str).tolist()
    assert "file" in violation.examples  # which file the row is in
    if rule == contract.RULE_UNMAPPED_VALUE:
        assert violation.values[bad_value] == violation.rows == 3  # counted, not dropped or kept


def test_a_value_that_does_not_parse_is_one_type_violation_not_also_a_null(extract):
    _set(extract / "participants.csv", "enrolled_on", "last spring")
    report = validate_source(extract, today=TODAY)
    rules = [(v.column, v.rule) for v in report.tables["clients"].violations]
    assert rules == [("enrollment_date", contract.RULE_TYPE)]


def test_a_missing_required_table_is_a_violation_and_a_missing_optional_one_is_not(extract):
    (extract / "contact_log.csv").unlink()
    assert validate_source(extract, today=TODAY).ok
    (extract / "outcomes.parquet").unlink()
    report = validate_source(extract, today=TODAY)
    assert [(v.table, v.rule) for v in report.violations] == [("outcomes", contract.RULE_REQUIRED_TABLE)]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"tables": {"events": {}}}, "unknown key(s) events"),
        ({"tables": {"marketing_events": {"columns": {"evnt_type": "x"}}}}, "unknown key(s) evnt_type"),
        ({"tables": {"marketing_events": {"values": {"event_type": {"logon": "LOGIN"}}}}}, "'logon' is not a platform value"),
        ({"tables": {"marketing_events": {"values": {"event_type": {"login": "X", "page_view": "X"}}}}}, "'X' is mapped twice"),
        ({"tables": {"clients": {"values": {"annual_income": {"a": "b"}}}}}, "'annual_income' has no vocabulary"),
    ],
)
def test_a_wrong_mapping_file_names_the_key_to_fix(document, message):
    with pytest.raises(MappingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_mapping(document)


# ---- the CLI, as the README calls it --------------------------------------------------------------------


def _validate_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**{k: v for k, v in os.environ.items() if k != "MARKETING_ML_SOURCE"}, "PATH": PATH_WITHOUT_VENV, **env}
    return subprocess.run([str(VENV_SCRIPT), "validate", *args], env=environ, capture_output=True, text=True, timeout=300)


def test_validate_command_exits_0_on_good_data_and_1_on_a_violation(extract):
    good = _validate_cli(str(extract), "--today", TODAY.isoformat())
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok: no violations" in good.stdout
    _unmapped_event_type(extract)
    bad = _validate_cli(str(extract), "--mapping", str(extract / "mapping.yaml"), "--today", TODAY.isoformat())
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "marketing_events:" in bad.stdout and "event_type (your column 'activity'): unmapped value: 3 row(s)" in bad.stdout
    assert "'CHATBOT_SESSION' (3)" in bad.stdout


def test_validate_command_exits_2_on_a_broken_mapping_file(extract):
    mapping = yaml.safe_load((extract / "mapping.yaml").read_text())
    mapping["tables"]["outcomes"]["values"]["outcome_type"]["upsell"] = "UPSELL"
    (extract / "mapping.yaml").write_text(yaml.safe_dump(mapping))
    result = _validate_cli(str(extract))
    assert result.returncode == 2 and "'upsell' is not a platform value" in result.stderr


def test_the_readme_block_follows_a_changed_contract():
    stale = "before\n<!-- contract -->\nold table\n<!-- /contract -->\nafter\n"
    rendered = contract.readme_with_contract(stale)
    assert rendered.startswith("before\n<!-- contract -->\n**`clients`**") and rendered.endswith("<!-- /contract -->\nafter\n")
    assert "| `event_type` | text | yes | not null; one of `login`" in rendered
    with pytest.raises(ValueError, match="no <!-- contract -->"):
        contract.readme_with_contract("no block here")


# ---- the file source: the raw assets loaded from the provider's files --------------------------------


def test_the_source_setting_is_the_simulator_an_existing_folder_or_the_warehouse(tmp_path):
    from marketing_ml.settings import SettingsError, load_settings

    base = {"MARKETING_ML_HOME": str(tmp_path / "home"), "MARKETING_ML_START_DATE": "2025-01-01"}
    assert load_settings(environ=base).source is None
    assert load_settings(environ={**base, "MARKETING_ML_SOURCE": "simulator"}).source is None
    assert load_settings(environ={**base, "MARKETING_ML_SOURCE": str(tmp_path)}).source == tmp_path.resolve()
    assert load_settings(source=str(tmp_path), environ=base).source == tmp_path.resolve()
    with pytest.raises(SettingsError, match="neither 'simulator', 'warehouse' nor a folder"):
        load_settings(environ={**base, "MARKETING_ML_SOURCE": str(tmp_path / "nowhere")})
    with pytest.raises(SettingsError, match="set MARKETING_ML_SOURCE_MAPPING"):
        load_settings(environ={**base, "MARKETING_ML_SOURCE": "warehouse"})
    (tmp_path / "mapping.yaml").write_text("tables: {}")
    warehouse = load_settings(environ={**base, "MARKETING_ML_SOURCE": "warehouse",
                                       "MARKETING_ML_SOURCE_MAPPING": str(tmp_path / "mapping.yaml")}).source
    assert warehouse.mapping == (tmp_path / "mapping.yaml").resolve() and not load_settings(environ=base).source


def warehouse_copy(world_folder: Path, duckdb_path: Path, schema: str = "provider") -> Path:
    """What a provider's ELT does: the extract's tables loaded into the warehouse (typed by DuckDB's readers)
    under the provider's names; returns a mapping file naming each table instead of its file."""
    document = yaml.safe_load((world_folder / "mapping.yaml").read_text())
    with duckdb.connect(str(duckdb_path)) as conn:
        conn.execute(f"create schema {schema}")
        for spec in document["tables"].values():
            path = world_folder / spec.pop("path")
            files = f"{path}/*" + next(p.suffix for p in path.iterdir()) if path.is_dir() else str(path)
            reader = "read_parquet" if files.endswith(".parquet") else "read_csv"
            spec["table"] = f"{schema}.{path.stem}"
            conn.execute(f"create table {spec['table']} as select * from {reader}('{files}')")
    mapping = duckdb_path.parent / "warehouse_mapping.yaml"
    mapping.write_text(yaml.safe_dump(document, sort_keys=False))
    return mapping


@pytest.mark.parametrize("origin", ["files", "warehouse"])
def test_features_from_the_providers_data_equal_the_simulators(tmp_path, origin):
    """The round trip: a simulated world exported with UUID ids, renamed columns, another vocabulary and a
    mapping, loaded as the raw assets from the files or from warehouse tables a provider's ELT loaded,
    gives the simulator path's feature rows."""
    from marketing_ml.settings import Settings, WarehouseSource
    from marketing_ml.sources.export import client_uuid
    from marketing_ml_tests.conftest import run_step

    start, last = dt.date(2025, 1, 1), dt.date(2025, 1, 30)
    config = SimulationConfig(start_date=start, n_clients=300)
    world = export_simulated_world(config, start, last, tmp_path / "provider")
    simulated = Settings(tmp_path / "simulated", "duckdb", config)
    own = Settings(tmp_path / "own", "duckdb", config, source=world.folder)
    own.data_dir.mkdir()
    if origin == "warehouse":
        own = Settings(own.data_dir, "duckdb", config, source=WarehouseSource(warehouse_copy(world.folder, own.duckdb_path)))
    simulated.data_dir.mkdir()
    features = {}
    for settings in (simulated, own):
        run_step(settings, "step_data", start, last)
        run_step(settings, "step_features", start, last)
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
            features[settings.data_dir.name] = conn.execute("select * from features.client_features_daily").df()

    expected = features["simulated"]
    actual = features["own"].assign(client_id=lambda f: f["client_id"].map({client_uuid(i): i for i in expected["client_id"]}))
    key = ["client_id", "as_of_date"]
    expected, actual = (f.sort_values(key).reset_index(drop=True) for f in (expected, actual[expected.columns]))
    assert len(actual) == len(expected) > 0 and actual["client_id"].notna().all()
    assert [c for c in expected.columns if not expected[c].equals(actual[c])] == []
    assert expected["touches_180d"].sum() > 0  # the campaign touches came through too


def test_a_warehouse_table_that_breaks_the_contract_is_not_loaded_and_validate_says_so(exported, tmp_path):
    from marketing_ml.settings import Settings, WarehouseSource

    settings = Settings(tmp_path / "own", "duckdb", CONFIG)
    settings.data_dir.mkdir()
    mapping = warehouse_copy(exported.folder, settings.duckdb_path)
    with duckdb.connect(str(settings.duckdb_path)) as conn:
        conn.execute("update provider.outcomes set participant_uuid = 'no-such-client' "
                     "where outcome_ref = (select min(outcome_ref) from provider.outcomes)")
    settings = Settings(settings.data_dir, "duckdb", CONFIG, source=WarehouseSource(mapping))
    evaluations, raw = _failed_data_step(settings)
    assert evaluations["raw_clients"].passed and not evaluations["raw_outcomes"].passed
    assert "no-such-client" in evaluations["raw_outcomes"].metadata["report"].value
    assert "raw_outcomes" not in raw

    env = {"MARKETING_ML_SOURCE": "warehouse", "MARKETING_ML_SOURCE_MAPPING": str(mapping),
           "MARKETING_ML_HOME": str(settings.data_dir)}
    report = _validate_cli("--today", TODAY.isoformat(), **env)
    assert report.returncode == 1 and "source warehouse" in report.stdout and "provider.outcomes" in report.stdout
    assert "no-such-client" in report.stdout, report.stdout + report.stderr


def test_a_warehouse_mapping_names_tables_not_files():
    assert parse_mapping({"tables": {"clients": {"table": "provider.participants"}}}).table("clients").table == \
        "provider.participants"
    for spec, message in (({"table": "participants; drop table x"}, "is not a warehouse table name"),
                          ({"table": "a.b", "path": "c.csv"}, "not both")):
        with pytest.raises(MappingError, match=message):
            parse_mapping({"tables": {"clients": spec}})


def test_files_that_break_the_contract_are_not_loaded(extract, tmp_path):
    from marketing_ml.settings import Settings

    _unknown_client(extract)
    settings = Settings(tmp_path / "own", "duckdb", CONFIG, source=extract)
    settings.data_dir.mkdir()
    evaluations, raw = _failed_data_step(settings)
    assert evaluations["raw_clients"].passed and not evaluations["raw_marketing_events"].passed
    assert "no-such-client" in evaluations["raw_marketing_events"].metadata["report"].value
    assert "raw_marketing_events" not in raw and "raw_outcomes" not in raw


def _failed_data_step(settings) -> tuple[dict, set[str]]:
    """The data step over FIRST..LAST, which must fail: its contract checks by asset, and the raw tables left."""
    import dagster as dg

    from marketing_ml.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def("step_data")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, tags={
        "dagster/asset_partition_range_start": FIRST.isoformat(), "dagster/asset_partition_range_end": LAST.isoformat()})
    assert not result.success
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        raw = {t for (t,) in conn.execute("select table_name from information_schema.tables where table_schema = 'raw'").fetchall()}
    return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}, raw


def test_validate_command_checks_the_configured_source_without_a_path(extract):
    result = _validate_cli("--today", TODAY.isoformat(), MARKETING_ML_SOURCE=str(extract))
    assert result.returncode == 0 and f"source {extract}" in result.stdout, result.stdout + result.stderr
    unset = _validate_cli()
    assert unset.returncode == 2 and "set MARKETING_ML_SOURCE" in unset.stderr


def test_loading_a_partition_again_replaces_its_rows_with_what_the_files_hold_now(extract, tmp_path):
    """A provider re-exports: a table that now has no rows for the days loaded loses the rows an earlier
    load wrote for them (the IO manager writes no empty frame, so the source deletes them itself)."""
    from marketing_ml.settings import Settings
    from marketing_ml.sources.export import PATHS
    from marketing_ml_tests.conftest import run_step

    settings = Settings(tmp_path / "own", "duckdb", CONFIG, source=extract)
    settings.data_dir.mkdir()

    def touches() -> int:
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
            return conn.execute("select count(*) from raw.raw_campaign_touches").fetchone()[0]

    run_step(settings, "step_data", FIRST, LAST)
    assert touches() > 0
    log = extract / PATHS["campaign_touches"]
    pd.read_csv(log, dtype=str).head(0).to_csv(log, index=False)  # the re-export holds no touches
    run_step(settings, "step_data", FIRST, LAST)
    assert touches() == 0


def test_a_new_daily_file_is_loaded_by_the_next_daily_partition(exported, tmp_path):
    """A provider drops the next day's events file into the folder: the daily schedule's next tick asks for
    that day's partition, and loading it brings that day's rows, leaving the days loaded before as they were."""
    import dagster as dg

    from marketing_ml.definitions import build_definitions
    from marketing_ml.settings import Settings
    from marketing_ml_tests.conftest import run_step

    folder = Path(shutil.copytree(exported.folder, tmp_path / "provider"))
    new_file = _first_events_file(folder).with_name(f"activity_{LAST}.parquet")
    held_back = new_file.rename(tmp_path / new_file.name)
    settings = Settings(tmp_path / "own", "duckdb", CONFIG, source=folder)
    settings.data_dir.mkdir()

    def events_by_day() -> dict:
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
            return dict(conn.execute("select event_date, count(*) from raw.raw_marketing_events group by 1").fetchall())

    run_step(settings, "step_data", FIRST, LAST - dt.timedelta(days=1))
    before = events_by_day()
    assert pd.Timestamp(LAST).date() not in {pd.Timestamp(d).date() for d in before}
    held_back.rename(new_file)  # the new day's file lands

    schedule = build_definitions(settings).resolve_schedule_def("daily_schedule")
    tick = schedule.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(2), tzinfo=dt.UTC)))
    [request] = tick.run_requests
    assert request.partition_key == LAST.isoformat()
    run_step(settings, "step_data", LAST, LAST)
    after = events_by_day()
    expected = pd.read_parquet(new_file)
    expected = expected[expected["activity"] != IGNORED_EVENT_TYPE]
    assert {d: n for d, n in after.items() if d in before} == before
    assert after[max(after)] == len(expected) > 0 and pd.Timestamp(max(after)).date() == LAST
