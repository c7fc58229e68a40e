"""One day's decision inputs: the eligible clients with their scores, and the policies built from them.

Shared by the lists (which act on the platform's policy) and `business_impact` (which compares it with
the baselines in the same pools), so both see exactly the same clients and scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketing_ml.decisions.business import (
    CAMPAIGN_ACTIONS,
    LIST_INTERVENTION,
    NO_CONTACT,
    BusinessAssumptions,
    Policy,
    eligible,
    propensity_policy,
    uplift_scores_policy,
    value_policy,
)
from marketing_ml.registry.encoding import EncodedRows
from marketing_ml.uplift.store import PRIMARY_OUTCOME, UpliftChampion

# `uplift_scores` columns: the effect each list acts on, NaN when its intervention has no champion
EFFECT_COLUMNS = {"advisor_queue": "effect_conversion_advisor_outreach",
                  "retention_list": "effect_churn_retention_call"}


def version_column(intervention: str) -> str:
    return f"{intervention}_model_version"


@dataclass(frozen=True)
class DayInputs:
    pool: pd.DataFrame  # eligible clients (`business.eligible`) with predictions and uplift scores
    platform: Policy  # what the lists act on: uplift where a champion exists, propensity otherwise
    baselines: dict[str, Policy]  # value_only, propensity
    uplift_lists: tuple[str, ...]  # the lists whose intervention has an uplift champion

    def ranked_by(self, use_case: str) -> str:
        return "uplift" if use_case in self.uplift_lists or use_case == "campaign_targets" else "propensity"


def day_inputs(clients: pd.DataFrame, predictions: pd.DataFrame, uplift: pd.DataFrame, calls_ago: pd.Series,
               campaigns_ago: pd.Series, a: BusinessAssumptions) -> DayInputs:
    """`clients` (`contacts.pool_of_days` rows of the day), the day's `daily_predictions` and `uplift_scores`,
    and days since each client's latest call and campaign contact."""
    pool = eligible(clients, calls_ago, campaigns_ago, a)
    pool = pool.merge(predictions.drop(columns=["as_of_date"]), on="client_id", how="inner", validate="one_to_one")
    pool = pool.merge(uplift[["client_id", *EFFECT_COLUMNS.values()]], on="client_id", how="left", validate="one_to_one")
    # an all-empty effect column comes back from some warehouses as objects (None), not floats
    pool = pool.astype(dict.fromkeys(EFFECT_COLUMNS.values(), "float64"))
    uplift_lists = tuple(u for u, column in EFFECT_COLUMNS.items() if pool[column].notna().any())
    response = pool[[f"score_{x}" for x in CAMPAIGN_ACTIONS]].to_numpy(dtype=np.float64)
    none = pool[f"score_{NO_CONTACT}"].to_numpy(dtype=np.float64)
    propensity = propensity_policy(pool, pool["p_conversion"].to_numpy(dtype=np.float64),
                                   pool["p_churn"].to_numpy(dtype=np.float64), response, a)
    uplift_policy = uplift_scores_policy(
        "uplift", pool, pool[EFFECT_COLUMNS["advisor_queue"]].to_numpy(dtype=np.float64),
        pool[EFFECT_COLUMNS["retention_list"]].to_numpy(dtype=np.float64), response - none[:, None], a)
    platform = Policy.mixed("uplift", {
        "advisor_queue": uplift_policy if "advisor_queue" in uplift_lists else propensity,
        "retention_list": uplift_policy if "retention_list" in uplift_lists else propensity,
        "campaign_targets": uplift_policy,  # the next-best-action champion's response uplift
    })
    return DayInputs(pool, platform, {"value_only": value_policy(pool, a), "propensity": propensity}, uplift_lists)


def missing_champions(inputs: DayInputs) -> list[str]:
    """One line per list that falls back to propensity, saying why and what to run."""
    return [f"{u}: no uplift champion for {LIST_INTERVENTION[u]} (the uplift step has not promoted one: its "
            "`uplift_champions` decisions say why, a gate refusal or a contact log without randomised contacts), so "
            "it ranks by propensity x value; the uplift step (`marketing-ml run --step uplift`) needs at least 149 "
            "days of history with randomised contacts"
            for u in EFFECT_COLUMNS if u not in inputs.uplift_lists]


def score_uplift(features: pd.DataFrame | EncodedRows, champions: dict[str, UpliftChampion]) -> pd.DataFrame:
    """The effect each list acts on, for every row of `features` (NaN where the intervention has no champion)."""
    features = EncodedRows.of(features)
    out = features.frame[["client_id", "as_of_date"]].reset_index(drop=True)
    for use_case, column in EFFECT_COLUMNS.items():
        intervention = LIST_INTERVENTION[use_case]
        champion = champions.get(intervention)
        out[column] = (champion.effect(features, PRIMARY_OUTCOME[intervention]).to_numpy(dtype=np.float64)
                       if champion else np.nan)
        out[version_column(intervention)] = champion.version if champion else None
    return out
