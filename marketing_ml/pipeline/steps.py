"""The demo's steps as asset jobs: each step materialises asset groups of the graph.

The CLI (`marketing-ml run --step ...`) and the Dagster UI (Jobs tab) run the same jobs, so a step run
from the terminal shows up in the UI with its lineage and metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg


@dataclass(frozen=True)
class Step:
    name: str
    groups: tuple[str, ...]
    description: str
    # daily steps that need only the latest days build [end - recent_days + 1, end] instead of the history
    recent_days: int | None = None

    @property
    def job_name(self) -> str:
        return f"step_{self.name}"


STEPS: tuple[Step, ...] = (
    Step("data", ("raw", "ground_truth"), "simulate clients, events, touches and outcomes"),
    Step("features", ("features",), "build point-in-time feature snapshots with dbt"),
    Step("models", ("training",), "train conversion, churn and next-best-action models"),
    Step("registry", ("registry",), "promote champions in the MLflow registry"),
    Step("uplift", ("uplift",), "learn the effect of contacts from the randomised contact log, promote champions"),
    # 35 days: a month of daily scores, and conversion predictions old enough (30 days) to meet their outcomes
    Step("inference", ("scoring", "monitoring"), "score clients, build business outputs, monitor", recent_days=35),
    Step("streaming", ("streaming",), "stream a burst of events, ingest them exactly once, rescore the clients they touch"),
)
STEP_NAMES = tuple(s.name for s in STEPS)


def step(name: str) -> Step:
    return next(s for s in STEPS if s.name == name)


def step_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    """One job per step, selecting the step's asset groups."""
    return [
        dg.define_asset_job(s.job_name, selection=dg.AssetSelection.groups(*s.groups), description=s.description)
        for s in STEPS
    ]
