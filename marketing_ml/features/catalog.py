"""The feature catalog: every feature of `features.client_features_daily` with its description, owner,
entity, version, dtype, group and the hash of the SQL that computes it.

The catalog is code, not a service: it is read from the dbt YAML (`meta.feature` of each column of
dbt_project/models/features/client_features_daily.yml) and the committed lock of SQL hashes, so models,
the CLI and notebooks can read it without Dagster, dbt or a warehouse:

    from marketing_ml.features.catalog import load_feature_catalog, model_input_features
    inputs = model_input_features()      # .numeric, .categorical: the columns a model reads
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from marketing_ml.features import DBT_PROJECT_DIR

FEATURE_MODEL = "client_features_daily"
FEATURE_SCHEMA = "features"
FEATURE_TABLE = f"{FEATURE_SCHEMA}.{FEATURE_MODEL}"
KEY_COLUMNS = ("client_id", "as_of_date")
FEATURES_YAML = Path("models") / "features" / f"{FEATURE_MODEL}.yml"
LOCK_FILE = Path("feature_versions.lock.json")

DTYPES = ("integer", "float", "boolean", "category")
NUMERIC_DTYPES = ("integer", "float", "boolean")  # booleans enter models as 0/1
GROUPS = ("status", "engagement", "behavioral", "financial", "lifecycle")
REQUIRED_META = ("group", "dtype", "version", "owner", "entity")


class FeatureCatalogError(ValueError):
    """The feature YAML is incomplete or inconsistent; the message names the column and what to fix."""


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    group: str
    dtype: str
    version: int
    owner: str
    entity: str
    sql_hash: str | None  # from the lock file; None until `marketing-ml features lock` records it

    @property
    def is_categorical(self) -> bool:
        return self.dtype == "category"


@dataclass(frozen=True)
class ModelInputs:
    """Feature columns a model reads, split by how they are encoded."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def load_feature_catalog(project_dir: Path = DBT_PROJECT_DIR) -> list[Feature]:
    """Every feature, in table column order."""
    document = yaml.safe_load((project_dir / FEATURES_YAML).read_text())
    model = next(m for m in document["models"] if m["name"] == FEATURE_MODEL)
    locked = read_lock(project_dir)
    features = []
    for column in model["columns"]:
        name = column["name"]
        if name in KEY_COLUMNS:
            continue
        meta = (column.get("config") or {}).get("meta", {}).get("feature")
        where = f"column {name!r} of {FEATURES_YAML}"
        if not meta:
            raise FeatureCatalogError(f"{where} has no `config.meta.feature`: every non-key column is a feature")
        missing = [k for k in REQUIRED_META if meta.get(k) in (None, "")]
        if missing or not column.get("description"):
            raise FeatureCatalogError(f"{where} lacks {', '.join(missing or ['description'])}")
        if meta["dtype"] not in DTYPES or meta["group"] not in GROUPS:
            raise FeatureCatalogError(f"{where}: dtype must be one of {DTYPES}, group one of {GROUPS}")
        if not isinstance(meta["version"], int) or meta["version"] < 1:
            raise FeatureCatalogError(f"{where}: version must be a positive integer")
        features.append(
            Feature(
                name=name,
                description=" ".join(column["description"].split()),
                group=meta["group"],
                dtype=meta["dtype"],
                version=meta["version"],
                owner=meta["owner"],
                entity=meta["entity"],
                sql_hash=locked.get(name, {}).get("sql_hash"),
            )
        )
    return features


def catalog_frame(project_dir: Path = DBT_PROJECT_DIR) -> pd.DataFrame:
    """The catalog as a table with fixed column types (it is stored in the warehouse)."""
    frame = pd.DataFrame([vars(f) for f in load_feature_catalog(project_dir)])
    return frame.astype({"version": "int64", "sql_hash": "string", "description": "string"})


def get_feature(name: str, project_dir: Path = DBT_PROJECT_DIR) -> Feature:
    """One feature by name; an unknown name raises KeyError with the closest names."""
    by_name = {f.name: f for f in load_feature_catalog(project_dir)}
    if name not in by_name:
        close = difflib.get_close_matches(name, by_name, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"No feature named {name!r}.{hint} (`marketing-ml features list` shows them all)")
    return by_name[name]


def model_input_features(project_dir: Path = DBT_PROJECT_DIR) -> ModelInputs:
    """The features a model reads: numeric (integer, float, boolean as 0/1) and categorical (VARCHAR)."""
    catalog = load_feature_catalog(project_dir)
    return ModelInputs(
        numeric=tuple(f.name for f in catalog if f.dtype in NUMERIC_DTYPES),
        categorical=tuple(f.name for f in catalog if f.is_categorical),
    )


def catalog_version(project_dir: Path = DBT_PROJECT_DIR) -> str:
    """A short fingerprint of the whole catalog (names, versions, SQL hashes), for lineage tags."""
    entries = [(f.name, f.version, f.sql_hash) for f in load_feature_catalog(project_dir)]
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:12]


def read_lock(project_dir: Path = DBT_PROJECT_DIR) -> dict[str, dict]:
    """The committed {feature: {version, sql_hash}} lock; empty when there is none yet."""
    path = project_dir / LOCK_FILE
    return json.loads(path.read_text())["features"] if path.exists() else {}
