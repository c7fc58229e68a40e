"""The API's in-memory feature store: every online client's row, already encoded for each served model.

A request looks a client up in a dict and reads one row of each model's input matrix; nothing is encoded
or allocated per client on the request path. Rows are kept in append-only arrays: a refresh writes new
rows only past the end of what any published snapshot points to, then publishes a new snapshot (a new
`positions` dict) by swapping one reference. A request holds the snapshot it started with, so it never
sees a half-applied refresh, and a refresh costs time in the rows it changes, not in the store's size.
When the arrays are full, the live rows are copied into new, larger arrays (amortised).

Client ids are what the warehouse holds: 64-bit integers, or strings (a provider's UUIDs), kept as Python
objects then. Memory: 8 bytes or 4 per encoded column per model per client, e.g. 50,000 clients x 8 models x 150
columns x 4 bytes = 240 MB.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from marketing_ml.serving.online_features import UPDATED_AT, TableVersion

GROWTH = 1.25  # capacity over the live rows after a (re)build: room for streaming updates
MIN_ROOM = 1024


@dataclass(frozen=True)
class RowBlock:
    """Feature rows read from the online table and encoded for each model."""

    client_ids: np.ndarray  # int64, or object (str) when the provider's ids are strings
    as_of_date: np.ndarray  # datetime64[D]
    updated_at: np.ndarray  # datetime64[us]
    encoded: Mapping[str, np.ndarray]  # model key -> (rows, columns)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, encoded: Mapping[str, np.ndarray]) -> RowBlock:
        ids = frame["client_id"]
        return cls(
            ids.to_numpy(np.int64) if pd.api.types.is_integer_dtype(ids) else ids.astype(str).to_numpy(object),
            pd.to_datetime(frame["as_of_date"]).to_numpy("datetime64[D]"),
            pd.to_datetime(frame[UPDATED_AT]).to_numpy("datetime64[us]"),
            encoded,
        )

    def __len__(self) -> int:
        return len(self.client_ids)

    def take(self, rows: np.ndarray) -> RowBlock:
        return RowBlock(self.client_ids[rows], self.as_of_date[rows], self.updated_at[rows],
                        {k: v[rows] for k, v in self.encoded.items()})


class EncodedRows:
    """Append-only arrays of encoded rows. Only the refresh thread appends; rows below `size` never change."""

    def __init__(self, like: RowBlock, capacity: int):
        self.client_ids = np.empty(capacity, like.client_ids.dtype)
        self.as_of_date = np.empty(capacity, "datetime64[D]")
        self.updated_at = np.empty(capacity, "datetime64[us]")
        self.encoded = {k: np.empty((capacity, v.shape[1]), v.dtype) for k, v in like.encoded.items()}
        self.size = 0

    @property
    def capacity(self) -> int:
        return len(self.client_ids)

    def append(self, block: RowBlock) -> np.ndarray:
        """Write the block past the end; returns the rows it now occupies."""
        start, stop = self.size, self.size + len(block)
        if stop > self.capacity:
            raise ValueError("no room: compact into a larger store first")
        self.client_ids[start:stop] = block.client_ids
        self.as_of_date[start:stop] = block.as_of_date
        self.updated_at[start:stop] = block.updated_at
        for key, values in block.encoded.items():
            self.encoded[key][start:stop] = values
        self.size = stop
        return np.arange(start, stop)

    def block(self, rows: np.ndarray) -> RowBlock:
        return RowBlock(self.client_ids, self.as_of_date, self.updated_at, self.encoded).take(rows)


@dataclass(frozen=True)
class FeatureSnapshot:
    """What requests read: which stored row holds each client, and the table version it reflects."""

    rows: EncodedRows
    positions: dict[int | str, int]
    version: TableVersion

    @classmethod
    def build(cls, block: RowBlock, version: TableVersion) -> FeatureSnapshot:
        block = _newest_per_client(block)
        rows = EncodedRows(block, max(int(len(block) * GROWTH), len(block) + MIN_ROOM))
        placed = rows.append(block)
        return cls(rows, dict(zip(block.client_ids.tolist(), placed.tolist())), version)

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def integer_ids(self) -> bool:
        """Whether clients are keyed by integers (else by strings)."""
        return self.rows.client_ids.dtype.kind == "i"

    def row(self, client_id: int | str) -> int | None:
        return self.positions.get(client_id)

    def merged(self, block: RowBlock, version: TableVersion) -> FeatureSnapshot:
        """A new snapshot with the block's rows replacing older rows of the same clients (rows that are not
        newer than what is stored are ignored, so re-reading an overlap is harmless)."""
        block = _newest_per_client(block)
        stored = np.fromiter((self.positions.get(c, -1) for c in block.client_ids.tolist()), np.int64, len(block))
        known = stored >= 0
        newer = ~known
        newer[known] = block.updated_at[known] > self.rows.updated_at[stored[known]]
        block = block.take(np.flatnonzero(newer))
        if len(block) == 0:
            return FeatureSnapshot(self.rows, self.positions, version)
        rows = self.rows
        if rows.size + len(block) > rows.capacity:  # compact the live rows into larger arrays
            live = np.fromiter(self.positions.values(), np.int64, len(self.positions))
            return FeatureSnapshot.build(_concat(rows.block(live), block), version)
        placed = rows.append(block)
        positions = dict(self.positions)
        positions.update(zip(block.client_ids.tolist(), placed.tolist()))
        return FeatureSnapshot(rows, positions, version)


def _newest_per_client(block: RowBlock) -> RowBlock:
    """One row per client: the one with the latest `updated_at` (later rows win ties)."""
    codes = pd.factorize(block.client_ids)[0]  # sortable for integer and string ids alike
    order = np.lexsort((np.arange(len(block)), block.updated_at, codes))
    ids = codes[order]
    last = np.ones(len(ids), bool)
    last[:-1] = ids[1:] != ids[:-1]
    return block.take(order[last]) if not last.all() else block


def _concat(a: RowBlock, b: RowBlock) -> RowBlock:
    return RowBlock(
        np.concatenate([a.client_ids, b.client_ids]),
        np.concatenate([a.as_of_date, b.as_of_date]),
        np.concatenate([a.updated_at, b.updated_at]),
        {k: np.concatenate([a.encoded[k], b.encoded[k]]) for k in a.encoded},
    )
