"""The data contract: what the raw tables must hold for the features, models and decisions to be right.

Written once, as pandera schemas (one per table), and read by everything else: `validation` checks a
source against them, `render_contract_markdown` writes the README's "Bring your own data" section from
them. The columns and vocabularies are the simulator's (`marketing_ml/simulation/`), because the dbt
features are written against exactly those; a provider maps its own names onto them (`mapping`).

A column's `metadata` says how a source's text is parsed into it (`kind`) and which rules need the other
tables: `references` (the client must exist in `clients`), `not_before` (a date no earlier than the
client's enrolment) and `not_in_future`. `contract_schema` turns those into pandera checks once the other
tables are known.

Required columns are the ones the features are computed from (the staging models select them); an
optional one may be absent (a load writes it as nulls) or null.
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pandera.pandas as pa

from marketing_ml.simulation.effects import ARMS
from marketing_ml.simulation.vocabulary import (
    ACTION_NAMES,
    CHANNELS,
    DEVICES,
    EVENT_TYPES,
    MARITAL_STATUSES,
    OUTCOME_TYPES,
    RISK_TOLERANCES,
    SERVICE_TIERS,
)

# How a column's values are parsed from a source (CSV text or Parquet types) before the rules run.
KINDS = ("identifier", "date", "timestamp", "number", "integer", "boolean", "text")

# The rules a report names. Pandera's own failure names are translated into these (validation.py).
RULE_REQUIRED_TABLE = "required table"
RULE_REQUIRED_COLUMN = "required column"
RULE_TYPE = "type"
RULE_NOT_NULL = "not null"
RULE_UNIQUE_KEY = "unique key"
RULE_ALLOWED_VALUES = "allowed values"
RULE_UNMAPPED_VALUE = "unmapped value"
RULE_RANGE = "range"
RULE_KNOWN_CLIENT = "known client"
RULE_NOT_BEFORE_ENROLMENT = "on or after enrolment"
RULE_NOT_IN_FUTURE = "not in the future"


def _allowed(values: tuple[str, ...]) -> pa.Check:
    return pa.Check.isin(list(values), name=RULE_ALLOWED_VALUES, error=RULE_ALLOWED_VALUES)


def _range(low: float | None = None, high: float | None = None) -> pa.Check:
    if low is not None and high is not None:
        return pa.Check.in_range(low, high, name=RULE_RANGE, error=RULE_RANGE)
    if low is not None:
        return pa.Check.ge(low, name=RULE_RANGE, error=RULE_RANGE)
    return pa.Check.le(high, name=RULE_RANGE, error=RULE_RANGE)


def _column(
    kind: str,
    description: str,
    *,
    required: bool = True,
    nullable: bool | None = None,
    unique: bool = False,
    checks: tuple[pa.Check, ...] = (),
    **rules: object,
) -> pa.Column:
    """A contract column: a required column is non-null unless said otherwise, an optional one may be null."""
    dtype = {
        "identifier": None,  # integers or strings (UUIDs), whichever the source has
        "date": "datetime64[ns]",
        "timestamp": "datetime64[ns]",
        "number": "float64",
        "integer": "Int64",
        "boolean": "boolean",
        "text": None,  # text as the source stores it (Arrow or Python strings): parsing made it text
    }[kind]
    return pa.Column(
        dtype,
        checks=list(checks),
        nullable=(not required) if nullable is None else nullable,
        unique=unique,
        required=required,
        description=description,
        metadata={"kind": kind, **rules},
    )


def _table(name: str, asset: str, description: str, key: str, date: str | None, required: bool,
           columns: dict[str, pa.Column]) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        columns,
        name=name,
        description=description,
        metadata={"asset": asset, "key": key, "date": date, "required": required},
    )


CLIENTS = _table(
    "clients",
    "raw_clients",
    "One row per plan participant: the profile as of enrolment (or the start of the history).",
    key="client_id",
    date=None,  # one table, not partitioned: every client, whenever they enrolled
    required=True,
    columns={
        "client_id": _column("identifier", "The participant's id: integers or strings (UUIDs).", unique=True),
        "enrollment_date": _column("date", "Enrolment in the plan; no events or features before it.",
                                   not_in_future=True),
        "date_of_birth": _column("date", "For age and years to retirement.", not_in_future=True),
        "annual_income": _column("number", "Yearly salary in USD.", checks=(_range(0),)),
        "balance_401k": _column("number", "401(k) balance in USD.", checks=(_range(0),)),
        "contribution_rate": _column("number", "Share of salary the participant contributes.",
                                     checks=(_range(0, 1),)),
        "employer_match_rate": _column("number", "Share of salary the employer matches at most.",
                                       checks=(_range(0, 1),)),
        "outside_assets": _column("number", "Assets held elsewhere, in USD.", checks=(_range(0),)),
        "tenure_years": _column("number", "Years with the employer.", checks=(_range(0),)),
        "dependents": _column("integer", "Number of dependents.", checks=(_range(0),)),
        "target_retirement_age": _column("integer", "Planned retirement age.", checks=(_range(40, 90),)),
        "marital_status": _column("text", "Marital status.", checks=(_allowed(MARITAL_STATUSES),)),
        "risk_tolerance": _column("text", "Investment risk profile.", checks=(_allowed(RISK_TOLERANCES),)),
        "service_tier": _column("text", "Service tier of the account.", checks=(_allowed(SERVICE_TIERS),)),
        "home_owner": _column("boolean", "Owns a home."),
        "contact_opt_out": _column("boolean", "Asked not to be contacted proactively: never in a call list or "
                                   "campaign. Absent or null: no opt-out recorded.", required=False),
        "employer_id": _column("identifier", "The plan sponsor.", required=False),
        "industry": _column("text", "The employer's industry.", required=False),
        "assigned_advisor_id": _column("identifier", "The advisor the participant is assigned to.", required=False),
        "state": _column("text", "US state of residence.", required=False),
        "gender": _column("text", "Kept in raw only: not a targeting attribute.", required=False),
        "first_name": _column("text", "Personal data, kept in raw only.", required=False),
        "last_name": _column("text", "Personal data, kept in raw only.", required=False),
        "email": _column("text", "Personal data, kept in raw only.", required=False),
        "phone": _column("text", "Personal data, kept in raw only.", required=False),
    },
)

MARKETING_EVENTS = _table(
    "marketing_events",
    "raw_marketing_events",
    "One row per client interaction: channel, event type, device, campaign.",
    key="event_id",
    date="event_date",
    required=True,
    columns={
        "event_id": _column("identifier", "The event's id.", unique=True),
        "client_id": _column("identifier", "The client it belongs to.", references="clients"),
        "event_date": _column("date", "The day of the event; partitions the table.", not_in_future=True,
                              not_before="enrollment_date"),
        "channel": _column("text", "Where it happened.", checks=(_allowed(CHANNELS),)),
        "event_type": _column("text", "What happened.", checks=(_allowed(EVENT_TYPES),)),
        "event_ts": _column("timestamp", "When it happened.", required=False),
        "device": _column("text", "The device; without it the device features count nothing.",
                          required=False, checks=(_allowed(DEVICES),)),
        "campaign_id": _column("text", "The campaign a response belongs to.", required=False),
    },
)

CAMPAIGN_TOUCHES = _table(
    "campaign_touches",
    "raw_campaign_touches",
    "One row per marketing action taken for a client, with the observed response. Optional: the next-best-"
    "action model learns from it when actions were assigned at random; without it the touch features "
    "count none.",
    key="touch_id",
    date="touch_date",
    required=False,
    columns={
        "touch_id": _column("identifier", "The action's id.", unique=True),
        "client_id": _column("identifier", "The client.", references="clients"),
        "touch_date": _column("date", "The day of the action.", not_in_future=True, not_before="enrollment_date"),
        "action": _column("text", "The action taken.", checks=(_allowed(ACTION_NAMES),)),
        "responded": _column("boolean", "Whether the client responded."),
        "campaign_id": _column("text", "The campaign.", required=False),
    },
)

INTERVENTIONS = _table(
    "interventions",
    "raw_interventions",
    "One row per contact assignment (advisor outreach, retention call, or the no-contact hold-out). "
    "Optional: without it there are no effect (uplift) models.",
    key="intervention_id",
    date="intervention_date",
    required=False,
    columns={
        "intervention_id": _column("identifier", "The assignment's id.", unique=True),
        "client_id": _column("identifier", "The client assigned.", references="clients"),
        "intervention_date": _column("date", "The day of the assignment.", not_in_future=True,
                                     not_before="enrollment_date"),
        "intervention": _column("text", "The arm.", checks=(_allowed(ARMS),)),
        "assignment_probability": _column(
            "number",
            "The chance of this arm when contacts were randomised: what tells a randomised log from a "
            "targeted one.",
            required=False,
            checks=(pa.Check.in_range(0, 1, include_min=False, name=RULE_RANGE, error=RULE_RANGE),),
        ),
    },
)

OUTCOMES = _table(
    "outcomes",
    "raw_outcomes",
    "One row per conversion to wealth advisory or churn (rollover out), on the day it happened.",
    key="outcome_id",
    date="outcome_date",
    required=True,
    columns={
        "outcome_id": _column("identifier", "The outcome's id.", unique=True),
        "client_id": _column("identifier", "The client.", references="clients"),
        "outcome_date": _column("date", "The day it happened.", not_in_future=True, not_before="enrollment_date"),
        "outcome_type": _column("text", "What happened.", checks=(_allowed(OUTCOME_TYPES),)),
        "amount_usd": _column("number", "Assets moved, in USD.", required=False, checks=(_range(0),)),
        "p_true": _column("number", "The simulator's probability that drew it (ground truth); a "
                          "provider's data has none.", required=False, checks=(_range(0, 1),)),
    },
)

CONTRACT: dict[str, pa.DataFrameSchema] = {
    s.name: s for s in (CLIENTS, MARKETING_EVENTS, CAMPAIGN_TOUCHES, INTERVENTIONS, OUTCOMES)
}


def contract_schema(
    name: str, frame: pd.DataFrame, today: dt.date, enrolment: pd.Series | None
) -> pa.DataFrameSchema:
    """The table's schema with the rules that depend on today and on the clients table added as checks.

    `enrolment` is `clients.enrollment_date` indexed by client id (ids as parsed), or None when the
    clients table could not be read, so the rules that need it cannot run. `frame` is the parsed table the
    schema will validate: "on or after enrolment" looks up each row's enrolment date by its client id
    (a row of an unknown client is left to "known client").
    """
    schema = CONTRACT[name]
    for column_name, column in schema.columns.items():
        rules = column.metadata or {}
        extra: list[pa.Check] = []
        if rules.get("not_in_future"):
            extra.append(pa.Check.le(pd.Timestamp(today), name=RULE_NOT_IN_FUTURE, error=RULE_NOT_IN_FUTURE))
        if rules.get("references") and enrolment is not None:
            known = enrolment.index
            extra.append(pa.Check(lambda s, known=known: s.isin(known), name=RULE_KNOWN_CLIENT, error=RULE_KNOWN_CLIENT))
        if rules.get("not_before") and enrolment is not None and "client_id" in frame:
            extra.append(_not_before_enrolment(frame["client_id"], enrolment))
        if extra:
            schema = schema.update_column(column_name, checks=[*column.checks, *extra])
    return schema


def _not_before_enrolment(client_ids: pd.Series, enrolment: pd.Series) -> pa.Check:
    enrolled = client_ids.map(enrolment)

    def on_or_after_enrolment(dates: pd.Series) -> pd.Series:
        since = enrolled.loc[dates.index]
        return since.isna() | dates.isna() | (dates >= since)

    return pa.Check(on_or_after_enrolment, name=RULE_NOT_BEFORE_ENROLMENT, error=RULE_NOT_BEFORE_ENROLMENT)


# ---- the README section --------------------------------------------------------------------------------


def _rules_text(column: pa.Column) -> str:
    rules = column.metadata or {}
    parts: list[str] = []
    if column.unique:
        parts.append("unique key")
    if rules.get("references"):
        parts.append("a client in `clients`")
    if rules.get("not_before"):
        parts.append("on or after the client's `enrollment_date`")
    if rules.get("not_in_future"):
        parts.append("not after today")
    for check in column.checks:
        stats = check.statistics
        if "allowed_values" in stats:
            parts.append("one of " + ", ".join(f"`{v}`" for v in stats["allowed_values"]))
        elif "min_value" in stats and "max_value" in stats:
            low = "(" if stats.get("include_min") is False else "["
            parts.append(f"in {low}{_number(stats['min_value'])}, {_number(stats['max_value'])}]")
        elif "min_value" in stats:
            parts.append(f"≥ {_number(stats['min_value'])}")
        elif "max_value" in stats:
            parts.append(f"≤ {_number(stats['max_value'])}")
    if column.required and not column.nullable:
        parts.insert(0, "not null")
    return "; ".join(parts)


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


TABLE_HEADER = "| column | type | required | rules | meaning |\n|---|---|---|---|---|"


def render_contract_markdown() -> str:
    """The contract as Markdown: one table per raw table, the text between the README's contract markers."""
    blocks: list[str] = []
    for schema in CONTRACT.values():
        meta = schema.metadata
        need = "required" if meta["required"] else "optional"
        rows = [
            f"| `{name}` | {column.metadata['kind']} | {'yes' if column.required else 'no'} | "
            f"{_rules_text(column)} | {column.description} |"
            for name, column in schema.columns.items()
        ]
        partitioned = f"daily partitions by `{meta['date']}`" if meta["date"] else "not partitioned"
        blocks.append(
            f"**`{schema.name}`** ({need}; becomes `raw.{meta['asset']}`, {partitioned}, key `{meta['key']}`): "
            f"{schema.description}\n\n{TABLE_HEADER}\n" + "\n".join(rows)
        )
    return "\n\n".join(blocks) + "\n"


README_BLOCK = re.compile(r"(<!-- contract -->\n)(?P<body>.*?)(<!-- /contract -->)", re.DOTALL)


def readme_with_contract(readme: str) -> str:
    """The README with its contract block (between `<!-- contract -->` and `<!-- /contract -->`) rendered
    from the schemas; a test keeps the committed README equal to it."""
    if not README_BLOCK.search(readme):
        raise ValueError("the README has no <!-- contract --> ... <!-- /contract --> block")
    return README_BLOCK.sub(lambda m: m.group(1) + render_contract_markdown() + m.group(3), readme)


if __name__ == "__main__":  # python -m marketing_ml.sources.contract README.md: regenerate the README block
    import sys
    from pathlib import Path

    readme_path = Path(sys.argv[1])
    readme_path.write_text(readme_with_contract(readme_path.read_text()))
