"""Feature versions guarded by SQL hashes: changing what a feature computes without bumping its version
is caught.

Each feature's hash covers the compiled SQL that produces that column and nothing else: every expression
it is computed from, through the intermediate models and the staging views down to the raw tables, and
every filter, join and grouping that decides which rows it is computed over (sqlglot walks the compiled
query's scopes). Comments and formatting do not count; editing one feature's SQL changes only the hashes
of the features computed from it.

The hashes and versions are committed in dbt_project/feature_versions.lock.json. A test compares them
with the current SQL; `marketing-ml features lock` records them after a version bump, and refuses to
record a changed hash whose version was not bumped. The hashed text is SQL as sqlglot renders it, so
sqlglot is pinned to a major version (pyproject.toml).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from marketing_ml.features import DBT_PROJECT_DIR
from marketing_ml.features.catalog import FEATURE_MODEL, LOCK_FILE, load_feature_catalog, read_lock
from marketing_ml.resources.dbt import ENV_DUCKDB_PATH, WarehouseDbtCliResource, dbt_executable

DIALECT = "duckdb"
# Hashes are of the SQL compiled for one fixed window: the window's dates are the only inputs that vary.
HASH_WINDOW = {"min_date": "2000-01-01", "max_date": "2000-01-01"}
# Clauses that decide which rows a query block produces.
_ROW_CLAUSES = ("from", "joins", "where", "group", "having", "qualify")


@dataclass(frozen=True)
class CompiledSql:
    features: str  # the compiled feature model, intermediate models inlined as CTEs
    upstream: dict[str, str]  # relation name (database.schema.table) -> compiled SQL of a view it reads


def compile_feature_sql(project_dir: Path = DBT_PROJECT_DIR) -> CompiledSql:
    """Compile the feature model and its upstream views for the fixed hash window (needs no warehouse)."""
    with tempfile.TemporaryDirectory(prefix="mm_dbt_compile_") as target:
        dbt = WarehouseDbtCliResource(
            project_dir=str(project_dir),
            target="duckdb",
            dbt_executable=dbt_executable(),
            profile_env={ENV_DUCKDB_PATH: ":memory:"},
        )
        log = io.StringIO()
        # dbt echoes the compiled SQL; keep it out of the terminal unless compiling fails
        with contextlib.redirect_stdout(log):
            invocation = dbt.cli(
                ["compile", "--select", f"+{FEATURE_MODEL}", "--vars", json.dumps(HASH_WINDOW)],
                target_path=Path(target),
                raise_on_error=False,
            ).wait()
        if not invocation.is_successful():
            raise RuntimeError(f"dbt compile of the feature model failed:\n{log.getvalue()[-4000:]}")
        manifest = invocation.get_artifact("manifest.json")
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    features = next(n["compiled_code"] for n in nodes if n["name"] == FEATURE_MODEL)
    upstream = {
        f"{n['database']}.{n['schema']}.{n['alias']}": n["compiled_code"]
        for n in nodes
        if n["config"]["materialized"] == "view"
    }
    return CompiledSql(features=features, upstream=upstream)


def feature_sql_hashes(compiled: CompiledSql) -> dict[str, str]:
    """{output column: hash of the SQL that computes it} for every column of the feature model."""
    query = sqlglot.parse_one(compiled.features, dialect=DIALECT)
    views = {name: sqlglot.parse_one(sql, dialect=DIALECT) for name, sql in compiled.upstream.items()}
    query = qualify(exp.expand(query, views, dialect=DIALECT), dialect=DIALECT, validate_qualify_columns=False)
    root = build_scope(query)
    hashes = {}
    for projection in root.expression.selects:
        parts = _SqlDependencies()
        parts.column(root, projection.alias_or_name)
        hashes[projection.alias_or_name] = parts.digest()
    return hashes


class _SqlDependencies:
    """The SQL fragments one output column depends on, collected by walking the query's scopes."""

    def __init__(self) -> None:
        self.fragments: set[str] = set()
        self._columns: set[tuple[int, str]] = set()
        self._row_scopes: set[int] = set()
        self._joins: set[tuple[int, str]] = set()

    def digest(self) -> str:
        return hashlib.sha256("\n".join(sorted(self.fragments)).encode()).hexdigest()[:16]

    def column(self, scope: Scope, name: str) -> None:
        if (id(scope), name) in self._columns:
            return
        self._columns.add((id(scope), name))
        projection = next(p for p in scope.expression.selects if p.alias_or_name == name)
        self._add(projection)
        self._references(scope, projection)
        self.rows(scope)

    def rows(self, scope: Scope) -> None:
        """The clauses deciding which rows `scope` yields, and the rows of the query blocks they come
        from. A LEFT JOIN only attaches columns (on unique keys), so it counts for the columns taken
        from it (see `_references`), not for the rows."""
        if id(scope) in self._row_scopes:
            return
        self._row_scopes.add(id(scope))
        for clause in _ROW_CLAUSES:
            value = scope.expression.args.get(clause)
            for node in value if isinstance(value, list) else [value] if value else []:
                if isinstance(node, exp.Join) and node.side == "LEFT":
                    continue
                self._add(node)
                self._references(scope, node)
                for table in node.find_all(exp.Table):
                    source = scope.sources.get(table.alias_or_name)
                    if isinstance(source, Scope):
                        self.rows(source)

    def _references(self, scope: Scope, node: exp.Expression) -> None:
        for column in node.find_all(exp.Column):
            source = scope.sources.get(column.table)
            if isinstance(source, Scope):
                self.column(source, column.name)
            elif source is not None:  # a warehouse table
                self._add(source)
            join = _left_join(scope, column.table)
            if join is not None and (id(scope), column.table) not in self._joins:
                self._joins.add((id(scope), column.table))
                self._add(join)
                self._references(scope, join.args["on"])

    def _add(self, node: exp.Expression) -> None:
        self.fragments.add(f"{type(node).__name__}: {node.sql(dialect=DIALECT, comments=False)}")


def _left_join(scope: Scope, alias: str) -> exp.Join | None:
    for join in scope.expression.args.get("joins") or []:
        if join.side == "LEFT" and join.this.alias_or_name == alias:
            return join
    return None


@dataclass(frozen=True)
class LockProblem:
    feature: str
    unbumped: bool  # its SQL changed and its version did not: the one problem `lock` cannot fix
    message: str

    def __str__(self) -> str:
        return f"{self.feature}: {self.message}"


def lock_problems(project_dir: Path = DBT_PROJECT_DIR, hashes: dict[str, str] | None = None) -> list[LockProblem]:
    """What is out of date between the catalog, the current SQL and the lock, each with what to do."""
    hashes = hashes if hashes is not None else feature_sql_hashes(compile_feature_sql(project_dir))
    locked = read_lock(project_dir)
    catalog = load_feature_catalog(project_dir)
    run_lock = "run `marketing-ml features lock` to record it"
    problems = []
    for feature in catalog:
        entry = locked.get(feature.name)
        current = hashes.get(feature.name)
        if current is None:
            problems.append(LockProblem(feature.name, False, "in the catalog but not a column of the feature model"))
        elif entry is None:
            problems.append(LockProblem(feature.name, False, f"new feature - {run_lock}"))
        elif entry["sql_hash"] != current and entry["version"] == feature.version:
            problems.append(LockProblem(feature.name, True, (
                f"its SQL changed but its version is still {feature.version} - bump meta.feature.version in "
                f"{FEATURE_MODEL}.yml, then run `marketing-ml features lock`")))
        elif entry["sql_hash"] != current or entry["version"] != feature.version:
            problems.append(LockProblem(feature.name, False, f"version bumped - {run_lock}"))
    names = {f.name for f in catalog}
    problems += [LockProblem(name, False, f"no longer a feature - {run_lock}") for name in locked if name not in names]
    return problems


def write_lock(project_dir: Path = DBT_PROJECT_DIR, hashes: dict[str, str] | None = None) -> list[LockProblem]:
    """Record the current versions and hashes. Refuses (returns the problems, writes nothing) while a
    feature's SQL changed without a version bump."""
    hashes = hashes if hashes is not None else feature_sql_hashes(compile_feature_sql(project_dir))
    unbumped = [p for p in lock_problems(project_dir, hashes) if p.unbumped]
    if unbumped:
        return unbumped
    entries = {f.name: {"version": f.version, "sql_hash": hashes[f.name]} for f in load_feature_catalog(project_dir)}
    lock = {
        "note": "Written by `marketing-ml features lock`; a test compares it with the compiled feature SQL.",
        "features": entries,
    }
    (project_dir / LOCK_FILE).write_text(json.dumps(lock, indent=2) + "\n")
    return []
