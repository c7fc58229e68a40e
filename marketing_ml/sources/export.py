"""A simulated world written out the way a provider's extracts look: other column names, UUID client ids,
another event vocabulary, CSV and Parquet, a folder of daily files, and the mapping file that lines it all
up with the contract.

It is the worked example of a mapping and the fixture of the round-trip tests: validating the export must
find nothing, and every bad-data case is this export with one thing broken.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from marketing_ml.simulation.config import SimulationConfig
from marketing_ml.simulation.engine import simulate_days
from marketing_ml.simulation.population import client_profiles, generate_population
from marketing_ml.sources.mapping import MAPPING_FILE

# contract column -> the provider's name, per table (every other column keeps its name)
COLUMNS = {
    "clients": {"client_id": "participant_uuid", "enrollment_date": "enrolled_on", "date_of_birth": "dob",
                "annual_income": "salary_usd", "home_owner": "owns_home"},
    "marketing_events": {"event_id": "activity_id", "client_id": "participant_uuid", "event_date": "activity_day",
                         "event_ts": "activity_time", "channel": "medium", "event_type": "activity"},
    "campaign_touches": {"touch_id": "action_id", "client_id": "participant_uuid", "touch_date": "action_day",
                         "action": "offer", "responded": "responded_flag"},
    "interventions": {"intervention_id": "contact_id", "client_id": "participant_uuid",
                      "intervention_date": "contact_day", "intervention": "contact_type",
                      "assignment_probability": "p_assigned"},
    "outcomes": {"outcome_id": "outcome_ref", "client_id": "participant_uuid", "outcome_date": "happened_on",
                 "outcome_type": "outcome"},
}
# contract value -> the provider's values, per column; two of them write some logins as single sign-on
VALUES = {
    "marketing_events": {
        "channel": {"web": "WEB", "email": "EMAIL", "mobile_app": "APP", "advisor_call": "PHONE",
                    "webinar": "WEBINAR", "branch": "BRANCH_OFFICE"},
        "event_type": {"login": ["LOGIN", "SSO_LOGIN"], "page_view": "PAGE_VIEW", "calculator_use": "CALCULATOR",
                       "document_download": "DOC_DOWNLOAD", "email_open": "EMAIL_OPEN", "email_click": "EMAIL_CLICK",
                       "advisor_call": "ADVISOR_PHONE_CALL", "advisor_meeting": "ADVISOR_MEETING",
                       "webinar_attendance": "WEBINAR_ATTENDED", "branch_visit": "BRANCH_VISIT"},
    },
    "campaign_touches": {"action": {"advisor_meeting_invite": "MEETING_INVITE",
                                    "retirement_readiness_email": "READINESS_EMAIL", "webinar_invite": "WEBINAR_INVITE",
                                    "financial_plan_review_offer": "PLAN_REVIEW", "mobile_app_promo": "APP_PROMO",
                                    "no_contact": "HOLDOUT"}},
    "interventions": {"intervention": {"no_contact": "HOLDOUT", "advisor_outreach": "ADVISOR_OUTREACH",
                                       "retention_call": "RETENTION_CALL"}},
    "outcomes": {"outcome_type": {"conversion": "ADVISORY_SIGNUP", "churn": "ROLLOVER_OUT"}},
}
IGNORED_EVENT_TYPE = "PASSWORD_RESET"  # an event the platform has no kind for: ignored by the mapping
PATHS = {"clients": "participants.csv", "marketing_events": "activity", "campaign_touches": "campaign_log.csv",
         "interventions": "contact_log.csv", "outcomes": "outcomes.parquet"}
UUID_NAMESPACE = uuid.UUID("5f0c7a52-3a43-4c3e-9a57-2f4f1d0c6b11")


@dataclass(frozen=True)
class ExportedWorld:
    folder: Path
    mapping: Path
    client_uuids: dict[int, str]  # simulator id -> the export's UUID


def client_uuid(client_id: int) -> str:
    return str(uuid.uuid5(UUID_NAMESPACE, str(client_id)))


def export_simulated_world(config: SimulationConfig, first: dt.date, last: dt.date, folder: Path) -> ExportedWorld:
    """The simulator's clients and its events, campaign touches, interventions and outcomes of
    `first`..`last` as a provider's extract in `folder`, with `folder/mapping.yaml`. The simulator's truth
    (`p_true`, the touches' response probabilities) is left out: a provider has none."""
    folder.mkdir(parents=True, exist_ok=True)
    clients = client_profiles(config, generate_population(config))
    days = simulate_days(config, first, last)
    uuids = {int(i): client_uuid(int(i)) for i in clients["client_id"]}

    def provider(frame: pd.DataFrame, table: str) -> pd.DataFrame:
        frame = frame.assign(client_id=frame["client_id"].map(uuids))
        for column, values in VALUES.get(table, {}).items():
            first_value = {k: v[0] if isinstance(v, list) else v for k, v in values.items()}
            frame[column] = frame[column].map(first_value)
        return frame.rename(columns=COLUMNS[table])

    clients_out = provider(clients, "clients")
    clients_out["owns_home"] = clients_out["owns_home"].map({True: "Y", False: "N"})
    clients_out.to_csv(folder / PATHS["clients"], index=False)

    events = provider(days.events, "marketing_events")
    single_sign_on = (days.events["event_type"] == "login") & (days.events["event_id"] % 2 == 1)
    events.loc[single_sign_on.to_numpy(), "activity"] = "SSO_LOGIN"
    events["activity_id"] = "A" + events["activity_id"].astype(str)
    resets = events[days.events["event_type"].eq("login").to_numpy()].iloc[::10].copy()
    resets["activity"] = IGNORED_EVENT_TYPE
    resets["activity_id"] = resets["activity_id"] + "R"
    events = pd.concat([events, resets]).sort_values(["activity_day", "activity_id"], kind="stable")
    (folder / PATHS["marketing_events"]).mkdir(exist_ok=True)
    for day, rows in events.groupby("activity_day", sort=True):
        rows.to_parquet(folder / PATHS["marketing_events"] / f"activity_{day}.parquet", index=False)

    truth = [c for c in days.touches.columns if c.startswith("p_")]  # the simulator's response probabilities
    touches = provider(days.touches.drop(columns=truth), "campaign_touches")
    touches["responded_flag"] = touches["responded_flag"].map({True: "1", False: "0"})
    touches.to_csv(folder / PATHS["campaign_touches"], index=False)
    provider(days.interventions, "interventions").to_csv(folder / PATHS["interventions"], index=False)
    provider(days.outcomes.drop(columns="p_true"), "outcomes").to_parquet(folder / PATHS["outcomes"], index=False)

    mapping = {
        "tables": {
            table: {
                "path": PATHS[table],
                "columns": COLUMNS[table],
                **({"values": VALUES[table]} if table in VALUES else {}),
                **({"ignore": {"event_type": [IGNORED_EVENT_TYPE]}} if table == "marketing_events" else {}),
            }
            for table in COLUMNS
        }
    }
    mapping_path = folder / MAPPING_FILE
    mapping_path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return ExportedWorld(folder, mapping_path, uuids)
