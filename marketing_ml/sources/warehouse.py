"""A checked table as the raw schema stores it: every contract column in the contract's order (an
optional column the source lacks is all null, so the staging views that select it still work) and dates
as dates, the types the simulator writes."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from marketing_ml.sources.contract import CONTRACT

_DATE = pd.ArrowDtype(pa.date32())
_NULL_DTYPES = {"date": _DATE, "timestamp": "datetime64[us]", "number": "float64", "integer": "Int64",
                "boolean": "boolean", "text": "string[pyarrow]", "identifier": "Int64"}


def warehouse_frame(table: str, frame: pd.DataFrame, client_id_dtype: object) -> pd.DataFrame:
    """`frame` (parsed by `validation`) ready for the raw schema. A client id column the frame lacks (a
    table the source does not have) takes the type of the clients' ids, so joins to them keep working."""
    columns = {}
    for name, column in CONTRACT[table].columns.items():
        kind = column.metadata["kind"]
        if name in frame:
            values = frame[name]
            columns[name] = values.astype(_DATE) if kind == "date" else values
        else:
            dtype = client_id_dtype if name == "client_id" else _NULL_DTYPES[kind]
            columns[name] = pd.Series(index=frame.index, dtype=dtype)  # all null
    return pd.DataFrame(columns, index=frame.index).reset_index(drop=True)


def sql_types(frame: pd.DataFrame) -> dict[str, str]:
    """The SQL column types of a `warehouse_frame`, to create its table when it has no rows."""

    def sql(dtype: object) -> str:
        if dtype == _DATE:
            return "date"
        if pd.api.types.is_bool_dtype(dtype):
            return "boolean"
        if pd.api.types.is_integer_dtype(dtype):
            return "bigint"
        if pd.api.types.is_float_dtype(dtype):
            return "double"
        if pd.api.types.is_datetime64_any_dtype(dtype):
            return "timestamp"
        return "varchar"

    return {name: sql(dtype) for name, dtype in frame.dtypes.items()}
