"""The fixed vocabularies of the simulated world: channels, event kinds, actions, segments.

They live in one module because the simulator, the dbt accepted-values tests, the models and the API
must all agree on them; changing one here changes it everywhere.
"""

from __future__ import annotations

from typing import NamedTuple

CHANNELS = ("web", "email", "mobile_app", "advisor_call", "webinar", "branch")
EVENT_TYPES = (
    "login",
    "page_view",
    "calculator_use",
    "document_download",
    "email_open",
    "email_click",
    "advisor_call",
    "advisor_meeting",
    "webinar_attendance",
    "branch_visit",
)
DEVICES = ("desktop", "mobile", "tablet", "phone", "in_person")


class EventKind(NamedTuple):
    """One (channel, event type) pair the simulator draws counts for."""

    channel: str
    event_type: str
    base_rate: float  # expected events per client-day for an average client
    driver: str  # which latent intent scales it: activity, conversion, churn, advice, email


EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind("web", "login", 0.0743, "activity"),
    EventKind("web", "page_view", 0.1283, "activity"),
    EventKind("web", "calculator_use", 0.0135, "conversion"),
    EventKind("web", "document_download", 0.0108, "churn"),
    EventKind("mobile_app", "login", 0.0675, "activity"),
    EventKind("mobile_app", "page_view", 0.0743, "activity"),
    EventKind("mobile_app", "calculator_use", 0.0068, "conversion"),
    EventKind("email", "email_open", 0.0675, "email"),
    EventKind("email", "email_click", 0.0162, "email"),
    EventKind("advisor_call", "advisor_call", 0.0047, "advice"),
    EventKind("branch", "advisor_meeting", 0.0016, "advice"),
    EventKind("webinar", "webinar_attendance", 0.0027, "conversion"),
    EventKind("branch", "branch_visit", 0.0014, "activity"),
)
KIND_INDEX = {(k.channel, k.event_type): i for i, k in enumerate(EVENT_KINDS)}

# Trailing-30-day count groups the true hazards are computed from. They are sums of event kinds that
# the features also count, so a model that sees the features can learn the hazards.
HAZARD_GROUPS: dict[str, tuple[int, ...]] = {
    "calculator": (KIND_INDEX["web", "calculator_use"], KIND_INDEX["mobile_app", "calculator_use"]),
    "advisor": (KIND_INDEX["advisor_call", "advisor_call"], KIND_INDEX["branch", "advisor_meeting"]),
    "webinar": (KIND_INDEX["webinar", "webinar_attendance"],),
    "email_click": (KIND_INDEX["email", "email_click"],),
    "documents": (KIND_INDEX["web", "document_download"],),
    "calls": (KIND_INDEX["advisor_call", "advisor_call"],),
    "activity": (
        KIND_INDEX["web", "login"],
        KIND_INDEX["web", "page_view"],
        KIND_INDEX["mobile_app", "login"],
        KIND_INDEX["mobile_app", "page_view"],
    ),
}
HAZARD_WINDOW_DAYS = 30


class Action(NamedTuple):
    """A next-best-action: what marketing can do for a client, and the event a response produces."""

    name: str
    response_kind: int  # index into EVENT_KINDS of the event a response creates
    cost_usd: float  # cost of one contact, used by budgets in campaign targeting


ACTIONS: tuple[Action, ...] = (
    Action("advisor_meeting_invite", KIND_INDEX["branch", "advisor_meeting"], 40.0),
    Action("retirement_readiness_email", KIND_INDEX["email", "email_click"], 0.5),
    Action("webinar_invite", KIND_INDEX["webinar", "webinar_attendance"], 2.0),
    Action("financial_plan_review_offer", KIND_INDEX["advisor_call", "advisor_call"], 25.0),
    Action("mobile_app_promo", KIND_INDEX["mobile_app", "login"], 1.0),
    Action("no_contact", KIND_INDEX["web", "login"], 0.0),
)
ACTION_NAMES = tuple(a.name for a in ACTIONS)

LIFE_EVENTS = ("job_change", "marriage", "new_child", "inheritance", "home_purchase", "bonus")
RISK_TOLERANCES = ("conservative", "moderate", "aggressive")
SERVICE_TIERS = ("basic", "plus", "premier")
MARITAL_STATUSES = ("single", "married", "divorced", "widowed")
INDUSTRIES = (
    "technology",
    "healthcare",
    "manufacturing",
    "education",
    "finance",
    "retail",
    "government",
    "energy",
)
OUTCOME_TYPES = ("conversion", "churn")
