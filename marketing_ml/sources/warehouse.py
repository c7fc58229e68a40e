"""A checked table as the raw schema stores it: every contract column in the contract's order (an
optional column the source lacks is all null, so the staging views that select it still work) and dates
as dates, the types the simulator writes."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from marketing_ml.sources.contract import CONTRACT

_EMPTY_DTYPES = {"date": pd.ArrowDtype(pa.date32()), "timestamp": "datetime64[us]", "number": "float64",
                 "integer": "Int64", "boolean": "boolean", "text": "string[pyarrow]", "identifier": "Int64"}


def warehouse_frame(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (parsed by `validation`) ready for the raw schema."""
    columns = {}
    for name, column in CONTRACT[table].columns.items():
        kind = column.metadata["kind"]
        if name in frame:
            values = frame[name]
            columns[name] = values.astype(pd.ArrowDtype(pa.date32())) if kind == "date" else values
        else:
            columns[name] = pd.Series(index=frame.index, dtype=_EMPTY_DTYPES[kind])  # all null
    return pd.DataFrame(columns, index=frame.index).reset_index(drop=True)
