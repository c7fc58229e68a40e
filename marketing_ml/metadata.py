"""Metadata a user looks at in the Dagster UI: previews, Markdown tables and plots.

Plots are PNGs embedded as data URIs in Markdown, the way the Dagster UI renders images without any file
server; matplotlib runs with the non-interactive Agg backend.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import dagster as dg
import pandas as pd

PII_COLUMNS = frozenset({"first_name", "last_name", "email", "phone", "date_of_birth"})


def logged_model_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, step: str) -> dict[str, dg.MetadataValue]:
    """The latest materialization metadata of a model asset, which names its MLflow model; a failure that
    says which step to run when there is none yet."""
    event = instance.get_latest_materialization_event(key)
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    if "mlflow_model_uri" not in metadata:
        raise dg.Failure(f"{key.to_user_string()} has no trained model yet: run the {step} step first "
                         f"(marketing-ml run --step {step}).")
    return dict(metadata)


def markdown_table(frame: pd.DataFrame, float_digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.{float_digits}g}"
        return "" if value is None or value is pd.NA else str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def preview(frame: pd.DataFrame, rows: int = 10, drop: Sequence[str] = ()) -> dg.MetadataValue:
    """The first rows without personal data: previews end up in logs and screenshots."""
    keep = [c for c in frame.columns if c not in PII_COLUMNS and c not in drop]
    return dg.MetadataValue.md(markdown_table(frame[keep].head(rows)))


def figure_markdown(fig, title: str = "") -> str:
    """Render a matplotlib figure as an inline PNG in Markdown."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{title}](data:image/png;base64,{encoded})"
