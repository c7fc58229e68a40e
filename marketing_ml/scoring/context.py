"""What the business outputs read beside a day's predictions: features and the client record."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from marketing_ml.resources.warehouse import WarehouseResource


def with_client_context(warehouse: WarehouseResource, predictions: pd.DataFrame, days: list[dt.date]) -> pd.DataFrame:
    """Predictions joined to what the business outputs need from features and the client record."""
    context = warehouse.query(
        """select f.client_id, f.as_of_date, f.investable_assets, f.lifecycle_segment, c.assigned_advisor_id as advisor_id
           from features.client_features_daily f join raw.raw_clients c using (client_id)
           where f.as_of_date between ? and ?""",
        [min(days), max(days)],
    )
    return predictions.merge(context, on=["client_id", "as_of_date"], how="left")
