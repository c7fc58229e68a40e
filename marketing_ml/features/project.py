"""The dbt project of the features and its manifest, prepared automatically.

`dagster dev`, the CLI and the tests load the dbt assets from `dbt_project/target/manifest.json`. Nobody
has to run `dbt parse` by hand: `prepared_manifest` parses the project whenever the manifest is missing,
older than a file of the project, or was parsed for another warehouse (the manifest records the adapter).
Several processes may load the definitions at once (`dagster dev` starts a few), so parsing is done under
a file lock, once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource, DbtProject
from filelock import FileLock

from marketing_ml.features import DBT_PROJECT_DIR
from marketing_ml.resources.dbt import dbt_executable

# Files whose changes change the manifest.
_PROJECT_SOURCES = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")


def feature_dbt_project(target: str) -> DbtProject:
    """The dbt project, run against the profile target named like the warehouse backend."""
    return DbtProject(project_dir=DBT_PROJECT_DIR, target=target)


def prepared_manifest(project: DbtProject) -> dict[str, Any]:
    """An up-to-date manifest, parsing the project first if needed.

    Returned as a dict, not a path: dagster-dbt caches manifests by path for the life of the process, and
    one process may see the manifest re-parsed (another warehouse target, an edited model).
    """
    if not _manifest_is_current(project):
        project.manifest_path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(project.manifest_path) + ".lock", timeout=300):
            if not _manifest_is_current(project):  # another process may have parsed while we waited
                parser = DbtCliResource(project_dir=project, dbt_executable=dbt_executable())
                parser.cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return json.loads(project.manifest_path.read_text())


def _manifest_is_current(project: DbtProject) -> bool:
    manifest = project.manifest_path
    if not manifest.exists():
        return False
    newest_source = max(
        path.stat().st_mtime
        for name in _PROJECT_SOURCES
        for path in _files(project.project_dir / name)
    )
    if manifest.stat().st_mtime < newest_source:
        return False
    adapter = json.loads(manifest.read_text()).get("metadata", {}).get("adapter_type")
    return adapter == (project.target or "duckdb")


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
