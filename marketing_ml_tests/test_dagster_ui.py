"""The Dagster UI, for real: `dagster dev` on loopback against a small built project, opened in headless
Chromium; then a materialization launched through the UI's GraphQL API runs to success."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from marketing_ml.definitions import build_definitions
from marketing_ml_tests.conftest import copy_of, marketing_ml_ui

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium tries to reach Google, which this network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("MARKETING_ML_TEST_ARTIFACTS", ".marketing_ml/test-artifacts"))


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


@pytest.fixture
def dagster_ui(data_settings, tmp_path):
    """The UI as the README starts it: `.venv/bin/marketing-ml ui`, the venv not on PATH."""
    settings = copy_of(data_settings, tmp_path / "ui")
    with marketing_ml_ui(settings, tmp_path / "dagster_dev.log") as url:
        yield url, settings


def _dismiss_newsletter(page) -> None:
    """Close Dagster's first-visit newsletter dialog if it is open."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.click()


def test_asset_graph_renders_in_chromium_and_a_materialization_launched_from_the_ui_succeeds(dagster_ui):
    from playwright.sync_api import sync_playwright

    url, settings = dagster_ui
    specs = build_definitions(settings).resolve_all_asset_specs()
    groups = sorted({spec.group_name for spec in specs})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{url}/asset-groups", wait_until="networkidle")
        _dismiss_newsletter(page)
        page.get_by_text("Global asset lineage").wait_for()
        for group in groups:
            page.get_by_text(group, exact=True).first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "dagster_ui_asset_graph.png"))
        page.goto(f"{url}/assets?view=flat", wait_until="networkidle")
        _dismiss_newsletter(page)
        page.screenshot(path=str(ARTIFACTS / "dagster_ui_catalog.png"))
        # the catalog renders only the rows in view: scroll through it, bounded, collecting what is shown
        names = {spec.key.to_user_string() for spec in specs}
        # wheel events only scroll once the table is there (a loaded machine renders it late)
        page.get_by_text(min(names)).first.wait_for()
        seen: set[str] = set()
        page.mouse.move(800, 600)
        deadline = time.monotonic() + 120
        while seen != names and time.monotonic() < deadline:
            _dismiss_newsletter(page)  # a modal blocks the wheel, and it can open late
            text = page.inner_text("body")
            seen |= {name for name in names if name in text}
            page.mouse.wheel(0, 400)
            page.wait_for_timeout(250)
        browser.close()
    assert seen == names, f"assets not shown in the catalog: {sorted(names - seen)}"

    location = _graphql(url, "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }")
    location_name = location["workspaceOrError"]["locationEntries"][0]["name"]
    launched = _graphql(
        url,
        """mutation Launch($params: ExecutionParams!) {
             launchRun(executionParams: $params) {
               __typename
               ... on LaunchRunSuccess { run { runId } }
               ... on PythonError { message }
             }
           }""",
        {
            "params": {
                "selector": {
                    "repositoryLocationName": location_name,
                    "repositoryName": "__repository__",
                    "jobName": "__ASSET_JOB",
                    "assetSelection": [{"path": ["true_client_traits"]}],
                },
                "mode": "default",
                "executionMetadata": {"tags": [{"key": "launched_by", "value": "test_dagster_ui"}]},
            }
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    status = None
    for _ in range(180):  # bounded: queued -> started -> success
        status = _graphql(url, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}')["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    assert status == "SUCCESS"
