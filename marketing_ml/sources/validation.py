"""Check a provider's files against the data contract: one report per table, every violated rule with
its count, the failing values and a few example rows as they are in the files.

Steps, per table: find its file(s), rename the columns by the mapping, leave out the values the mapping
ignores (counted), translate the vocabulary, parse every column into its contract kind, then run the
table's pandera schema (`contract.contract_schema`) lazily, so every rule reports, not only the first.

Parsing is done here rather than by pandera's coercion: pandera turns any non-empty text into True for a
boolean and leaves a column unparsed when one value fails, so the value rules behind it cannot run. Here a
value that does not parse is one "type" violation and becomes null, and every other rule still runs on
every row (a "type" row is not reported again as "not null").
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from marketing_ml.sources.contract import (
    CONTRACT,
    RULE_ALLOWED_VALUES,
    RULE_NOT_NULL,
    RULE_REQUIRED_COLUMN,
    RULE_REQUIRED_TABLE,
    RULE_TYPE,
    RULE_UNIQUE_KEY,
    RULE_UNMAPPED_VALUE,
    contract_schema,
)
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.settings import WarehouseSource
from marketing_ml.sources.mapping import MAPPING_FILE, SourceMapping, TableMapping, load_mapping

EXAMPLE_ROWS = 5
REPORTED_VALUES = 10
FILE_SUFFIXES = (".parquet", ".csv")
FILE_COLUMN = "file"  # the example rows say which file each came from
_CANONICAL_INTEGER = re.compile(r"^(0|-?[1-9]\d*)$")
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


@dataclass(frozen=True)
class Violation:
    """One rule broken in one column (or a missing table or column), with what a user needs to fix it."""

    table: str
    column: str | None  # contract name; None for a missing table
    source_column: str | None  # the column's name in the files, when the mapping renames it
    rule: str
    rows: int  # rows that break it (a missing column: every row)
    values: dict[str, int] = field(default_factory=dict)  # the most frequent failing values and their rows
    examples: pd.DataFrame = field(default_factory=pd.DataFrame)  # up to EXAMPLE_ROWS rows as in the files


@dataclass(frozen=True)
class TableReport:
    table: str
    files: tuple[Path, ...]
    rows: int  # rows read, before the mapping's ignored values are left out
    violations: tuple[Violation, ...] = ()
    ignored: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> source value -> rows left out
    unused_columns: tuple[str, ...] = ()  # columns in the files the contract does not know (not loaded)
    provided: bool = True


@dataclass(frozen=True)
class SourceReport:
    location: Path | str  # the folder of files, or "warehouse"
    mapping: Path | None
    tables: dict[str, TableReport]

    @property
    def violations(self) -> list[Violation]:
        return [v for t in self.tables.values() for v in t.violations]

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class ParsedTable:
    """A table in contract names and types, and the source rows it came from (for example rows)."""

    frame: pd.DataFrame
    source: pd.DataFrame  # as read, source column names, plus FILE_COLUMN
    type_failures: dict[str, pd.Index]  # contract column -> rows whose value did not parse


@dataclass(frozen=True)
class LoadedSource:
    report: SourceReport
    tables: dict[str, pd.DataFrame]  # the tables provided, in contract names and types, ignored rows left out


class SourceFileError(ValueError):
    """A file or warehouse table of the source cannot be read at all (not CSV or Parquet, corrupt, not
    there): the message names it."""


def validate_source(folder: Path, mapping_path: Path | None = None, today: dt.date | None = None) -> SourceReport:
    """Check the files in `folder` against the contract. Without `mapping_path`, `folder/mapping.yaml` is
    used when it exists, else the files use the contract's own names."""
    return load_source(folder, mapping_path, today).report


def load_source(
    folder: Path, mapping_path: Path | None = None, today: dt.date | None = None, tables: Collection[str] = tuple(CONTRACT)
) -> LoadedSource:
    """The source's `tables` in the contract's names and types, and the report of checking them: a loader
    writes the tables only when the report has no violation. `clients` is always read: the other tables'
    rules need it."""
    folder = Path(folder)
    if mapping_path is None and (folder / MAPPING_FILE).exists():
        mapping_path = folder / MAPPING_FILE
    mapping = load_mapping(mapping_path)
    files = {name: table_files(folder, name, mapping.table(name)) for name in {*tables, "clients"}}
    raw = {name: read_files(paths) for name, paths in files.items() if paths}
    return _loaded(raw, files, mapping, today, tables, folder, mapping_path)


def load_warehouse_source(
    warehouse: WarehouseResource, mapping_path: Path, today: dt.date | None = None,
    tables: Collection[str] = tuple(CONTRACT),
) -> LoadedSource:
    """`load_source` of tables the provider's ELT loaded into the warehouse: the mapping names each one
    (`table: schema.name`); a table it does not name is not provided."""
    mapping = load_mapping(mapping_path)
    named = {name: mapping.table(name).table for name in {*tables, "clients"}}
    raw = {name: read_warehouse_table(warehouse, table) for name, table in named.items() if table}
    origins = {name: [Path(table)] for name, table in named.items() if table}
    return _loaded(raw, origins, mapping, today, tables, "warehouse", mapping_path)


def load_provider_source(source: Path | WarehouseSource, warehouse: WarehouseResource | None,
                         mapping_path: Path | None = None, today: dt.date | None = None,
                         tables: Collection[str] = tuple(CONTRACT)) -> LoadedSource:
    """The source the settings name, loaded and checked: a folder of files, or the warehouse tables its
    mapping names (read through `warehouse`); `mapping_path` overrides the source's own mapping."""
    if isinstance(source, WarehouseSource):
        if warehouse is None:
            raise ValueError("a warehouse source is read through the warehouse resource")
        return load_warehouse_source(warehouse, mapping_path or source.mapping, today, tables)
    return load_source(source, mapping_path, today, tables)


def read_warehouse_table(warehouse: WarehouseResource, table: str) -> pd.DataFrame:
    """Every row of a warehouse table (`mapping.WAREHOUSE_TABLE`), with the table each came from; column
    names as the warehouse resource gives them (lower case on Snowflake)."""
    try:
        frame = warehouse.query(f"select * from {table}")
    except Exception as error:  # each backend raises its own error for a missing or unreadable table
        raise SourceFileError(f"cannot read the warehouse table {table}: {str(error).splitlines()[0]}") from error
    return frame.assign(**{FILE_COLUMN: table})


def _loaded(raw: dict[str, pd.DataFrame], origins: dict[str, list[Path]], mapping: SourceMapping,
            today: dt.date | None, tables: Collection[str], location: Path | str, mapping_path: Path | None) -> LoadedSource:
    reports, parsed = check_tables(raw, mapping, today or dt.date.today(), [t for t in CONTRACT if t in tables], origins)
    return LoadedSource(SourceReport(location, mapping_path, reports), parsed)


def check_tables(
    raw: dict[str, pd.DataFrame],
    mapping: SourceMapping,
    today: dt.date,
    checked: Collection[str],
    files: dict[str, list[Path]] | None = None,
) -> tuple[dict[str, TableReport], dict[str, pd.DataFrame]]:
    """The reports of the `checked` tables, and every table of `raw` parsed into contract names and types.

    `raw` holds the tables as read, by contract table name; `clients` may be there only as the context of
    the other tables' rules (unchecked). A required table missing from `raw` is a violation.
    """
    id_kind = client_id_kind(raw["clients"], mapping.table("clients")) if "clients" in raw else None
    parsed: dict[str, ParsedTable] = {}
    ignored: dict[str, dict[str, dict[str, int]]] = {}
    for name, frame in raw.items():
        kept, ignored[name] = leave_out_ignored(frame, mapping.table(name))
        parsed[name] = parse_table(name, kept, mapping.table(name), mapping.date_format, id_kind)

    enrolment = _enrolment(parsed["clients"]) if "clients" in parsed else None
    reports = {}
    for name in checked:
        schema = CONTRACT[name]
        if name not in parsed:
            missing = (Violation(name, None, None, RULE_REQUIRED_TABLE, 0),) if schema.metadata["required"] else ()
            reports[name] = TableReport(name, (), 0, missing, provided=False)
            continue
        table_mapping = mapping.table(name)
        known = {table_mapping.source_column(c) for c in schema.columns}
        reports[name] = TableReport(
            name,
            tuple((files or {}).get(name, ())),
            len(raw[name]),
            tuple(check_table(name, parsed[name], table_mapping, today, enrolment)),
            ignored[name],
            tuple(c for c in raw[name].columns if c not in known and c != FILE_COLUMN),
        )
    return reports, {n: t.frame for n, t in parsed.items()}


def table_files(folder: Path, table: str, mapping: TableMapping) -> list[Path]:
    """The file, or the files of the folder (one a day, say), that hold a table; none if it is not there."""
    candidates = [folder / mapping.path] if mapping.path else [
        *(folder / f"{table}{suffix}" for suffix in FILE_SUFFIXES), folder / table
    ]
    for path in candidates:
        if path.is_file():
            return [path]
        if path.is_dir():
            return sorted(p for p in path.iterdir() if p.suffix in FILE_SUFFIXES)
    return []


def read_files(paths: list[Path]) -> pd.DataFrame:
    """The rows of all files, in order, with the file each row came from. CSV is read as text, so ids keep
    their leading zeros and every value is parsed by the contract's rules, not guessed by the reader."""
    frames = []
    for path in paths:
        try:
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str)
        except (OSError, ValueError, pd.errors.ParserError) as error:
            raise SourceFileError(f"cannot read {path}: {error}") from error
        frames.append(frame.assign(**{FILE_COLUMN: path.name}))
    with warnings.catch_warnings():  # a daily file without rows is fine
        warnings.simplefilter("ignore", FutureWarning)
        return pd.concat(frames, ignore_index=True)


def client_id_kind(clients: pd.DataFrame, mapping: TableMapping) -> str:
    """"integer" when every client id is an integer written plainly (no leading zeros), else "string": the
    clients table decides, and every table's client ids are parsed the same way."""
    ids = clients.get(mapping.source_column("client_id"))
    if ids is None or pd.api.types.is_integer_dtype(ids):
        return "integer"
    text = ids.dropna().astype(str)
    return "integer" if text.str.fullmatch(_CANONICAL_INTEGER).all() else "string"


def leave_out_ignored(frame: pd.DataFrame, mapping: TableMapping) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """The rows the mapping does not ignore, and the ignored values with their counts."""
    keep = pd.Series(True, index=frame.index)
    counts: dict[str, dict[str, int]] = {}
    for column, values in mapping.ignore.items():
        source = mapping.source_column(column)
        if source not in frame:
            continue
        hit = frame[source].astype("string").isin(values).fillna(False)
        if hit.any():
            counts[column] = {str(k): int(v) for k, v in frame.loc[hit, source].value_counts().items()}
        keep &= ~hit
    return frame[keep], counts


def parse_table(
    name: str, frame: pd.DataFrame, mapping: TableMapping, date_format: str, id_kind: str | None
) -> ParsedTable:
    """The contract columns the files have, in contract names and types; the rows whose value did not parse."""
    parsed: dict[str, pd.Series] = {}
    failures: dict[str, pd.Index] = {}
    for column, spec in CONTRACT[name].columns.items():
        source = mapping.source_column(column)
        if source not in frame:
            continue
        values = frame[source]
        if column in mapping.values:
            text = values.astype("string")
            # an unmapped value stays as it is, so the allowed-values rule reports it (as "unmapped value")
            values = text.map(mapping.values[column]).fillna(text)
        kind = spec.metadata["kind"]
        if column == "client_id" and id_kind is not None:
            kind = "integer" if id_kind == "integer" else "identifier"
        parsed[column] = _parse(values, kind, date_format)
        failed = values.notna() & parsed[column].isna()
        if failed.any():
            failures[column] = frame.index[failed.to_numpy()]
    return ParsedTable(pd.DataFrame(parsed, index=frame.index), frame, failures)


def _parse(values: pd.Series, kind: str, date_format: str) -> pd.Series:
    if kind == "identifier":
        if pd.api.types.is_integer_dtype(values):
            return values.astype("Int64")
        text = values if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object else values.astype("string")
        return text.str.strip()
    if kind in ("date", "timestamp"):
        if pd.api.types.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.ArrowDtype):
            parsed = pd.to_datetime(values, errors="coerce")
        else:
            parsed = pd.to_datetime(values.astype("string"), errors="coerce",
                                    format=date_format if kind == "date" else "ISO8601")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert(None)
        parsed = parsed.astype("datetime64[ns]")
        return parsed.dt.normalize() if kind == "date" else parsed
    if kind == "number":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    if kind == "integer":
        number = pd.to_numeric(values, errors="coerce")
        whole = number.where(np.isclose(number, number.round()) | number.isna())
        return whole.astype("Int64")
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(values):
            return values.astype("boolean")
        text = values.astype("string").str.strip().str.lower()
        return text.map(lambda v: True if v in _TRUE else False if v in _FALSE else pd.NA).astype("boolean")
    # Arrow-backed text stays Arrow: millions of Python strings would cost more than the rest of the checks
    return values if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object else values.astype("string")


def _enrolment(clients: ParsedTable) -> pd.Series | None:
    """Each client's enrolment date by id: what the other tables' "known client" and "on or after
    enrolment" rules look up (a duplicated id counts once; "unique key" reports it)."""
    frame = clients.frame
    if "client_id" not in frame or "enrollment_date" not in frame:
        return None
    known = frame.dropna(subset=["client_id"]).drop_duplicates("client_id")
    return known.set_index("client_id")["enrollment_date"]


def check_table(
    name: str, table: ParsedTable, mapping: TableMapping, today: dt.date, enrolment: pd.Series | None
) -> list[Violation]:
    """Every rule of the contract the table breaks: the parse failures, then pandera's findings."""
    failures = [
        pd.DataFrame({"column": column, "rule": RULE_TYPE, "index": rows,
                      "failure_case": table.source.loc[rows, mapping.source_column(column)].astype(str).to_numpy()})
        for column, rows in table.type_failures.items()
    ]
    schema = contract_schema(name, table.frame, today, enrolment)
    try:
        schema.validate(table.frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures.append(_pandera_failures(errors.failure_cases, table, mapping))
    if not failures:
        return []
    found = pd.concat(failures, ignore_index=True)
    return [
        _violation(name, column, rule, group, table, mapping)
        for (column, rule), group in found.groupby(["column", "rule"], sort=False, dropna=False)
    ]


def _pandera_failures(cases: pd.DataFrame, table: ParsedTable, mapping: TableMapping) -> pd.DataFrame:
    """Pandera's failure cases as (column, rule, index, failure_case), in the contract's rule names."""
    cases = cases.copy()
    missing = cases["check"] == "column_in_dataframe"
    cases.loc[missing, "column"] = cases.loc[missing, "failure_case"]
    rule = cases["check"].astype(str).replace({
        "column_in_dataframe": RULE_REQUIRED_COLUMN,
        "field_uniqueness": RULE_UNIQUE_KEY,
        "not_nullable": RULE_NOT_NULL,
    })
    rule = rule.mask(rule.str.startswith("dtype("), RULE_TYPE)
    mapped = cases["column"].isin(list(mapping.values))
    rule = rule.mask(mapped & (rule == RULE_ALLOWED_VALUES), RULE_UNMAPPED_VALUE)
    cases["rule"] = rule
    # a value that did not parse is null now: "type" has reported it, "not null" must not again
    parse_failed = pd.Series(False, index=cases.index)
    for column, rows in table.type_failures.items():
        parse_failed |= (cases["column"] == column) & cases["index"].isin(rows)
    return cases.loc[~parse_failed, ["column", "rule", "index", "failure_case"]]


def _violation(
    name: str, column: str, rule: str, group: pd.DataFrame, table: ParsedTable, mapping: TableMapping
) -> Violation:
    source = mapping.source_column(column)
    if rule == RULE_REQUIRED_COLUMN:
        return Violation(name, column, source, rule, len(table.source))
    rows = pd.Index(group["index"].dropna().unique())
    # the values as they are in the files (pandera's are the parsed ones); a check that could not run has no rows
    failing = table.source.loc[rows, source] if len(rows) and source in table.source else group["failure_case"]
    values = failing.astype(str).value_counts().head(REPORTED_VALUES)
    key = mapping.source_column(CONTRACT[name].metadata["key"])
    shown = [c for c in dict.fromkeys([key, mapping.source_column("client_id"), source, FILE_COLUMN]) if c in table.source]
    examples = table.source.loc[rows[:EXAMPLE_ROWS], shown] if len(rows) else pd.DataFrame()
    return Violation(name, column, source, rule, max(len(rows), 1), {str(k): int(v) for k, v in values.items()}, examples)


# ---- the printed report --------------------------------------------------------------------------------


def format_report(report: SourceReport) -> str:
    """The report as `marketing-ml validate` prints it."""
    lines = [f"source {report.location}" + (f" (mapping {report.mapping})" if report.mapping else " (contract names, no mapping)")]
    for table in report.tables.values():
        lines.extend(["", *format_table_report(table)])
    failed = [t for t in report.tables.values() if t.violations]
    total = len(report.violations)
    lines.append("\n" + ("ok: no violations" if not total else f"FAILED: {total} violation(s) in {len(failed)} table(s)"))
    return "\n".join(lines)


def format_table_report(table: TableReport) -> list[str]:
    """One table's lines of the report: its rows, then every violation with its values and example rows."""
    if not table.provided:
        need = "MISSING (required)" if CONTRACT[table.table].metadata["required"] else "not provided (optional)"
        return [f"{table.table}: {need}"]
    if not table.files:
        where = ""
    elif len(table.files) == 1:
        where = f" from {table.files[0].name}"
    else:
        where = f" from {table.files[0].parent.name}/ ({len(table.files)} files)"
    status = "ok" if not table.violations else f"{len(table.violations)} violation(s)"
    lines = [f"{table.table}: {table.rows:,} rows{where}: {status}"]
    for v in table.violations:
        named = v.column if v.source_column in (None, v.column) else f"{v.column} (your column {v.source_column!r})"
        lines.append(f"  {named}: {v.rule}: {v.rows:,} row(s)")
        if v.rule == RULE_REQUIRED_COLUMN:
            lines.append("    the column is not in the files; map it in the mapping file's `columns`")
            continue
        if v.values:
            lines.append("    values: " + ", ".join(f"{value!r} ({n:,})" for value, n in v.values.items()))
        if not v.examples.empty:
            lines.extend("    " + line for line in v.examples.to_string(index=False).splitlines())
    for column, counts in table.ignored.items():
        shown = ", ".join(f"{value!r} ({n:,})" for value, n in counts.items())
        lines.append(f"  left out by the mapping's ignore list, {column}: {shown}")
    if table.unused_columns:
        lines.append(f"  columns the contract does not use (not loaded): {', '.join(table.unused_columns)}")
    return lines
