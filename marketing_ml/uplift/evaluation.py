"""Judging uplift models: from observed outcomes (what a firm can compute) and against the true effects.

Everything is oriented as a *benefit*: the effect on conversion, minus the effect on churn (a prevented
churn is a benefit), so "rank by benefit, treat the top" means the same for both outcomes.

Observed (randomised arms, no truth needed):
- Qini curve Q(k) = B_t(k) - B_c(k) * N_t(k) / N_c(k) over the k contacts with the highest scores, where
  B is the benefit count in an arm (conversions, or prevented churns counted as -churns) and N the arm's
  contacts: the incremental outcomes had the top k been treated. The **Qini coefficient** is the mean gap
  between that curve and the straight line of random targeting, per contact (0 = no better than random).
- **AUUC**: the mean of the uplift curve (B_t(k)/N_t(k) - B_c(k)/N_c(k)) * k / N over k.
- Observed uplift by decile of the score.

Against the truth: Spearman rank correlation and PEHE (root mean squared error) between predicted and
true effects, and the true benefit of treating the top `capacity` contacts ranked by the model, by the
true effect (the oracle), by propensity, and at random (its exact expectation), on the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import spearmanr


def benefit_sign(outcome: str) -> float:
    """+1 where a higher outcome rate is the goal (conversion), -1 where a lower one is (churn)."""
    return -1.0 if outcome == "churn" else 1.0


def _cumulative_arms(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """Over the top k contacts by score (descending, ties in input order), k = 1..N: the treated and
    control counts and their outcome sums (N_t, N_c, B_t, B_c)."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    y, t = np.asarray(y, dtype=float)[order], np.asarray(treated, dtype=bool)[order]
    return np.cumsum(t), np.cumsum(~t), np.cumsum(y * t), np.cumsum(y * ~t)


def qini_curve(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Q(k) for k = 1..N, contacts in descending score order (ties in input order)."""
    n_t, n_c, b_t, b_c = _cumulative_arms(y, treated, score)
    return b_t - np.divide(b_c * n_t, n_c, out=np.zeros(len(n_t)), where=n_c > 0)


def qini_coefficient(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    """Mean gap between the Qini curve and random targeting, per contact (see the module docstring)."""
    q = qini_curve(y, treated, score)
    n = len(q)
    if n == 0:
        return float("nan")
    random_line = q[-1] * np.arange(1, n + 1) / n
    return float(np.mean(q - random_line) / n)


def auuc(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    n_t, n_c, b_t, b_c = _cumulative_arms(y, treated, score)
    rate_t = np.divide(b_t, n_t, out=np.zeros(len(n_t)), where=n_t > 0)
    rate_c = np.divide(b_c, n_c, out=np.zeros(len(n_c)), where=n_c > 0)
    k = np.arange(1, len(n_t) + 1)
    return float(np.mean((rate_t - rate_c) * k) / max(len(n_t), 1))


def uplift_by_decile(y: np.ndarray, treated: np.ndarray, score: np.ndarray,
                     true_benefit: np.ndarray | None = None) -> pd.DataFrame:
    """Observed uplift (treated rate - control rate) per score decile, 1 = highest scores."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype=float), "t": np.asarray(treated, dtype=bool),
                          "score": np.asarray(score, dtype=float)})
    if true_benefit is not None:
        frame["truth"] = true_benefit
    ranks = frame["score"].rank(method="first", ascending=False)
    frame["decile"] = np.ceil(ranks / len(frame) * 10).astype(int).clip(1, 10)
    rows = []
    for decile, part in frame.groupby("decile"):
        treated_rows, control_rows = part[part["t"]], part[~part["t"]]
        row = {"decile": int(decile), "treated": len(treated_rows), "control": len(control_rows),
               "observed_uplift": treated_rows["y"].mean() - control_rows["y"].mean(),
               "predicted_uplift": part["score"].mean()}
        if true_benefit is not None:
            row["true_uplift"] = part["truth"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def truth_metrics(predicted_benefit: np.ndarray, true_benefit: np.ndarray) -> dict[str, float]:
    predicted, truth = np.asarray(predicted_benefit, dtype=float), np.asarray(true_benefit, dtype=float)
    # a constant prediction (an arm model early-stopped to its base rate, in a small world) ranks nothing
    ranks = np.ptp(predicted) > 0 and np.ptp(truth) > 0
    return {
        "rank_correlation": float(spearmanr(predicted, truth).statistic) if ranks else float("nan"),
        "pehe": float(np.sqrt(np.mean((predicted - truth) ** 2))),
    }


def top_k_benefit(true_benefit: np.ndarray, score: np.ndarray, capacity: int) -> float:
    """True benefit of treating the `capacity` rows with the highest scores."""
    top = np.argsort(-np.asarray(score, dtype=float), kind="stable")[:capacity]
    return float(np.asarray(true_benefit, dtype=float)[top].sum())


def policy_comparison(true_benefit: np.ndarray, rankings: Mapping[str, np.ndarray], capacity: int) -> pd.DataFrame:
    """Treat the top `capacity` rows by each ranking; `random` and `oracle` are added. Shares of the oracle."""
    truth = np.asarray(true_benefit, dtype=float)
    values = {"random": capacity * float(truth.mean())}
    values |= {name: top_k_benefit(truth, score, capacity) for name, score in rankings.items()}
    values["oracle"] = top_k_benefit(truth, truth, capacity)
    table = pd.DataFrame({"policy": list(values), "true_incremental_outcomes": list(values.values())})
    table["share_of_oracle"] = table["true_incremental_outcomes"] / values["oracle"]
    table["contacts"] = capacity
    return table


def decile_figure(table: pd.DataFrame, title: str) -> Figure:
    """Observed (and true) uplift per predicted decile."""
    fig = Figure(figsize=(4.6, 3.4))
    ax = fig.add_subplot()
    x = table["decile"].to_numpy()
    width = 0.4 if "true_uplift" in table else 0.8
    ax.bar(x - (width / 2 if "true_uplift" in table else 0), table["observed_uplift"], width, label="observed (arms)")
    if "true_uplift" in table:
        ax.bar(x + width / 2, table["true_uplift"], width, label="true (simulator)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("decile of predicted benefit (1 = highest)", fontsize=9)
    ax.set_ylabel("benefit per contact", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
