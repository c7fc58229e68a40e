"""What the decisions read from the warehouse: the day's clients and who was contacted recently.

The contact history has two sources: the logged contacts (`raw_interventions`: advisor outreach and
retention calls; `raw_campaign_touches`: campaign actions) and the platform's own lists of earlier days
(`scoring.advisor_queue`, `scoring.retention_list`, `scoring.campaign_targets`), which are the contacts it
asked for. The lists of the days a run builds are not read back (the table still holds an earlier run's
rows for them): the run passes those in from memory, so a range built in one run and its days rebuilt one
at a time decide the same.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import pandas as pd

from marketing_ml.decisions.business import NO_CONTACT, BusinessAssumptions
from marketing_ml.features.catalog import FEATURE_TABLE
from marketing_ml.resources.warehouse import WarehouseResource

SCHEMA = "scoring"
CALL_LISTS = ("advisor_queue", "retention_list")
CAMPAIGN_LISTS = ("campaign_targets",)


def pool_of_days(warehouse: WarehouseResource, first: dt.date, last: dt.date) -> pd.DataFrame:
    """One row per client active on each day: what the lists and their valuation need."""
    return warehouse.query(
        f"""select f.client_id, f.as_of_date, c.assigned_advisor_id as advisor_id, f.investable_assets,
                   c.balance_401k, c.contact_opt_out, f.is_converted
            from {FEATURE_TABLE} f join raw.raw_clients c using (client_id)
            where f.as_of_date between ? and ? order by f.as_of_date, f.client_id""",
        [first, last],
    )


def _latest(warehouse: WarehouseResource, sources: Iterable[tuple[str, str, str]], since: dt.date,
            before: dt.date) -> pd.Series:
    parts = [f"select client_id, {date} as contact_date from {table} where {date} >= ? and {date} < ?{extra}"
             for table, date, extra in sources]
    frame = warehouse.query(
        f"select client_id, max(contact_date) as contact_date from ({' union all '.join(parts)}) group by 1",
        [x for _ in parts for x in (since, before)],
    )
    return frame.set_index("client_id")["contact_date"]


def logged_contacts(warehouse: WarehouseResource, a: BusinessAssumptions, day: dt.date,
                    run_start: dt.date) -> tuple[pd.Series, pd.Series]:
    """(latest call date, latest campaign date) per client inside the cool-downs before `day`, from the raw
    logs and the platform's lists of days before `run_start`."""
    def sources(raw: tuple[str, str, str], lists: tuple[str, ...]) -> list[tuple[str, str, str]]:
        found = [raw]
        for name in lists:
            if warehouse.table_exists(SCHEMA, name):
                found.append((f"{SCHEMA}.{name}", "as_of_date", f" and as_of_date < date '{run_start.isoformat()}'"))
        return found

    calls = _latest(warehouse, sources(("raw.raw_interventions", "intervention_date",
                                        f" and intervention <> '{NO_CONTACT}'"), CALL_LISTS),
                    day - dt.timedelta(days=a.call_cooldown_days), day)
    campaigns = _latest(warehouse, sources(("raw.raw_campaign_touches", "touch_date", f" and action <> '{NO_CONTACT}'"),
                                           CAMPAIGN_LISTS),
                        day - dt.timedelta(days=a.campaign_cooldown_days), day)
    return calls, campaigns


def days_since(latest: pd.Series, in_run: Mapping[int | str, dt.date] | pd.Series, day: dt.date) -> pd.Series:
    """Days from each client's latest contact (logged, or listed earlier in this run: by client, a client
    may repeat) to `day`.

    `cache=False`: to decide whether to cache, pandas boxes the first 10,000 values as Timestamps on every
    call, which cost more than the rest of the function (5 s over a 35-day run of two assets)."""
    dates = pd.to_datetime(latest, cache=False)
    if len(in_run):
        earlier = pd.to_datetime(pd.Series(in_run), cache=False)
        dates = pd.concat([dates, earlier]).groupby(level=0).max()
    return (pd.Timestamp(day) - dates).dt.days
