"""The mapping file: how a provider's own extracts line up with the data contract.

A YAML file, every key in the platform's names (the contract's tables, columns and values):

    tables:
      clients:
        path: participants.csv          # a file or a folder of daily files, relative to the source folder
        columns:                        # contract column: your column
          client_id: participant_uuid
          enrollment_date: enrolled_on
      marketing_events:
        path: events/
        columns: {event_type: activity, channel: medium}
        values:                         # contract value: your value(s)
          event_type: {login: [LOGIN, SIGN_IN], page_view: PAGE_VIEW}
          channel: {web: WEB, mobile_app: APP}
        ignore:                         # your values left out on purpose (counted in the report)
          event_type: [PASSWORD_RESET]
    date_format: "%d/%m/%Y"             # optional; default ISO 8601

A table or column the file does not name keeps the contract's name; a table without `path` is looked up
as `<table>.parquet`, `<table>.csv` or a folder `<table>/`. With the tables already in the warehouse
(`MARKETING_ML_SOURCE=warehouse`), each table names its warehouse table instead of a path:

    tables:
      clients: {table: provider.participants, columns: {client_id: participant_uuid}}

(Snowflake returns unquoted column names in lower case, which is how the mapping then names them.)
 Once a column has a `values` map, every value
of it must be mapped or ignored: an unmapped value is a violation reported with its count, never dropped
or kept silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import re

import yaml

from marketing_ml.sources.contract import CONTRACT

MAPPING_FILE = "mapping.yaml"
# a warehouse table as the mapping may name it: [database.]schema.table, plain identifiers (it goes into SQL)
WAREHOUSE_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){1,2}")


class MappingError(ValueError):
    """The mapping file itself is wrong (not the data): the message names the key to fix."""


@dataclass(frozen=True)
class TableMapping:
    """One contract table's source: where its file is and how its columns and values are named there."""

    path: str | None = None
    table: str | None = None  # the warehouse table, for a warehouse source
    columns: dict[str, str] = field(default_factory=dict)  # contract column -> source column
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # contract column -> {source value: contract value}
    ignore: dict[str, frozenset[str]] = field(default_factory=dict)  # contract column -> source values left out

    def source_column(self, column: str) -> str:
        return self.columns.get(column, column)


@dataclass(frozen=True)
class SourceMapping:
    tables: dict[str, TableMapping] = field(default_factory=dict)
    date_format: str = "ISO8601"

    def table(self, name: str) -> TableMapping:
        return self.tables.get(name, TableMapping())


def load_mapping(path: Path | None) -> SourceMapping:
    """The mapping at `path`; None means the source uses the contract's own names."""
    if path is None:
        return SourceMapping()
    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise MappingError(f"cannot read the mapping file {path}: {error}") from error
    return parse_mapping(document, str(path))


def parse_mapping(document: object, where: str = "mapping") -> SourceMapping:
    if not isinstance(document, Mapping):
        raise MappingError(f"{where}: expected a mapping with a `tables` key, got {type(document).__name__}")
    _only(document, {"tables", "date_format"}, where)
    tables = document.get("tables") or {}
    _only(tables, set(CONTRACT), f"{where}: tables")
    parsed = {name: _table(name, spec or {}, f"{where}: tables.{name}") for name, spec in tables.items()}
    return SourceMapping(tables=parsed, date_format=str(document.get("date_format", "ISO8601")))


def _table(name: str, spec: object, where: str) -> TableMapping:
    if not isinstance(spec, Mapping):
        raise MappingError(f"{where}: expected keys path or table, columns, values, ignore")
    _only(spec, {"path", "table", "columns", "values", "ignore"}, where)
    schema = CONTRACT[name]
    columns = {str(k): str(v) for k, v in (spec.get("columns") or {}).items()}
    _only(columns, set(schema.columns), f"{where}.columns")
    values: dict[str, dict[str, str]] = {}
    for column, targets in (spec.get("values") or {}).items():
        allowed = _allowed_values(name, column, f"{where}.values")
        by_source: dict[str, str] = {}
        for target, sources in (targets or {}).items():
            if str(target) not in allowed:
                raise MappingError(
                    f"{where}.values.{column}: {target!r} is not a platform value; one of {', '.join(allowed)}"
                )
            for source in sources if isinstance(sources, list) else [sources]:
                if str(source) in by_source:
                    raise MappingError(f"{where}.values.{column}: {source!r} is mapped twice")
                by_source[str(source)] = str(target)
        values[str(column)] = by_source
    ignore = {}
    for column, sources in (spec.get("ignore") or {}).items():
        _allowed_values(name, column, f"{where}.ignore")
        ignore[str(column)] = frozenset(str(s) for s in (sources if isinstance(sources, list) else [sources]))
    path, table = spec.get("path"), spec.get("table")
    if path is not None and table is not None:
        raise MappingError(f"{where}: name either a file (path) or a warehouse table (table), not both")
    if table is not None and not WAREHOUSE_TABLE.fullmatch(str(table)):
        raise MappingError(f"{where}.table: {table!r} is not a warehouse table name like schema.table")
    return TableMapping(path=str(path) if path is not None else None, table=str(table) if table is not None else None,
                        columns=columns, values=values, ignore=ignore)


def _allowed_values(table: str, column: str, where: str) -> list[str]:
    """The platform's vocabulary of a column: only a column with one has values to map."""
    schema_column = CONTRACT[table].columns.get(column)
    stats = [c.statistics for c in (schema_column.checks if schema_column is not None else [])]
    allowed = next((s["allowed_values"] for s in stats if "allowed_values" in s), None)
    if allowed is None:
        with_vocabulary = [n for n, c in CONTRACT[table].columns.items()
                           if any("allowed_values" in k.statistics for k in c.checks)]
        raise MappingError(f"{where}: {column!r} has no vocabulary to map; columns with one: {', '.join(with_vocabulary)}")
    return [str(v) for v in allowed]


def _only(keys: Mapping, allowed: set[str], where: str) -> None:
    unknown = sorted(set(map(str, keys)) - allowed)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {', '.join(unknown)}; expected one of {', '.join(sorted(allowed))}")
