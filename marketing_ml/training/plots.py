"""The plots a model reviewer looks at: ROC, reliability (calibration) and lift by decile, model vs oracle.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state, no GUI backend), so they are
safe inside a Dagster run; `marketing_ml.metadata.figure_markdown` turns them into Markdown images.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from marketing_ml.registry.evaluation import decile_lift

COLOURS = {"model": "#1f77b4", "oracle": "#2ca02c", "baseline": "#7f7f7f", "champion": "#ff7f0e"}


def _axes(title: str, xlabel: str, ylabel: str):
    fig = Figure(figsize=(4.2, 3.4))
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    return fig, ax


def roc_figure(y: np.ndarray, scores: Mapping[str, np.ndarray], title: str = "ROC (test rows)") -> Figure:
    fig, ax = _axes(title, "false positive rate", "true positive rate")
    ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=1, ls="--")
    if len(np.unique(y)) == 2:
        for name, p in scores.items():
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, lw=1.5, label=name, color=COLOURS.get(name))
    ax.legend(fontsize=8, loc="lower right")
    return fig


def calibration_figure(y: np.ndarray, scores: Mapping[str, np.ndarray], bins: int = 10,
                       title: str = "Reliability (equal-count bins)") -> Figure:
    """Mean prediction vs observed rate per equal-count bin; the diagonal is perfect calibration."""
    fig, ax = _axes(title, "mean predicted probability", "observed rate")
    y = np.asarray(y, dtype=float)
    top = 0.0
    for name, p in scores.items():
        order = np.argsort(p, kind="stable")
        chunks = [c for c in np.array_split(order, min(bins, max(len(y), 1))) if len(c)]
        predicted = [float(np.mean(p[c])) for c in chunks]
        observed = [float(np.mean(y[c])) for c in chunks]
        ax.plot(predicted, observed, marker="o", ms=3, lw=1.2, label=name, color=COLOURS.get(name))
        top = max(top, *predicted, *observed)
    ax.plot([0, top], [0, top], color="#bbbbbb", lw=1, ls="--")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def lift_figure(y: np.ndarray, scores: Mapping[str, np.ndarray], title: str = "Lift by decile") -> Figure:
    """Observed rate in each score decile over the base rate (decile 1 = highest scores)."""
    fig, ax = _axes(title, "decile (1 = highest score)", "lift over base rate")
    width = 0.8 / max(len(scores), 1)
    for i, (name, p) in enumerate(scores.items()):
        table = decile_lift(y, p)
        ax.bar(table["decile"] + (i - (len(scores) - 1) / 2) * width, table["lift"], width=width, label=name,
               color=COLOURS.get(name))
    ax.axhline(1.0, color="#bbbbbb", lw=1, ls="--")
    ax.set_xticks(range(1, 11))
    ax.legend(fontsize=8)
    return fig


def policy_figure(values: Mapping[str, float], title: str = "Policy value (mean true response probability)") -> Figure:
    fig, ax = _axes(title, "", "expected response rate")
    names = list(values)
    ax.bar(names, [values[n] for n in names], color=["#7f7f7f", "#bbbbbb", "#1f77b4", "#2ca02c"][: len(names)])
    for i, name in enumerate(names):
        ax.annotate(f"{values[name]:.3f}", (i, values[name]), ha="center", va="bottom", fontsize=8)
    return fig
