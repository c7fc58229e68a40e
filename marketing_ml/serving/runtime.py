"""What the API serves, kept current from one background thread, published by swapping one reference.

`ServingRuntime.state` is an immutable `ServingState` (champions + the feature snapshot encoded for
them). A request reads `runtime.state` once and uses only that object, so a model or feature refresh that
lands mid-request changes nothing it sees. One thread does all loading, so there is a single writer:

- every `feature_poll_seconds`: the online table's version (count, min/max `updated_at`); newer rows are
  read, encoded and merged (`FeatureSnapshot.merged`); a rebuilt table is read in full;
- every `model_poll_seconds`: the version each task's alias points to; a moved alias loads the new
  version (unchanged tasks keep theirs) and the features are re-encoded for it before the swap;
- the advisor queue is re-read when its signature changes.

A failed refresh keeps serving the last good state and is reported by /readyz (until a first state
exists) and counted in /metrics.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from marketing_ml.registry.store import CHAMPION, alias_version
from marketing_ml.resources.warehouse import WarehouseResource
from marketing_ml.serving import advisor_queue
from marketing_ml.serving.advisor_queue import AdvisorQueue, QueueUnavailable
from marketing_ml.serving.models import SERVED_TASKS, ChampionSet
from marketing_ml.serving.online_features import ONLINE_TABLE, read_rows, read_version
from marketing_ml.serving.store import FeatureSnapshot, RowBlock

log = logging.getLogger("marketing_ml.serving")
ENCODE_CHUNK = 50_000  # rows encoded at a time on a full read: bounds the transient pandas memory


@dataclass(frozen=True)
class ServingState:
    champions: ChampionSet
    features: FeatureSnapshot
    published_at: float = field(default_factory=time.time)


@dataclass
class RefreshStats:
    model_swaps: int = 0
    feature_refreshes: int = 0
    errors: dict[str, int] = field(default_factory=lambda: {"models": 0, "features": 0, "advisor_queue": 0})


class ServingRuntime:
    def __init__(self, warehouse: WarehouseResource, tracking_uri: str, *, alias: str = CHAMPION,
                 model_poll_seconds: float = 10.0, feature_poll_seconds: float = 2.0,
                 overlap_seconds: float = 30.0, freeze_heap: bool = False):
        self.warehouse = warehouse
        self.tracking_uri = tracking_uri
        self.alias = alias
        self.model_poll_seconds = model_poll_seconds
        self.feature_poll_seconds = feature_poll_seconds
        # rows stamped up to this long before the newest one seen are re-read: a writer whose stamp was
        # taken before another writer's commit is still picked up (re-read rows that are not newer are ignored)
        self.overlap = pd.Timedelta(seconds=overlap_seconds)
        self.freeze_heap = freeze_heap
        self.state: ServingState | None = None
        self.queue: AdvisorQueue | None = None
        self.queue_problem: str = "the advisor queue has not been read yet"
        self.problem: str = "starting: loading champions and online features"
        self.stats = RefreshStats()
        self.champions: ChampionSet | None = None  # the newest loaded; published with features encoded for it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one refresh of each kind (the thread's loop; tests call them directly) -------------------------
    def refresh_models(self) -> bool:
        """Load the champions if an alias moved; True if the loaded set changed."""
        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        versions = {}
        for task in SERVED_TASKS:
            version = alias_version(client, task, self.alias)
            if version is None:
                raise LookupError(
                    f"no version of model {task!r} holds the alias @{self.alias} in {self.tracking_uri}; "
                    "run `marketing-ml run --step models --step registry`"
                )
            versions[task] = str(version.version)
        if self.champions is not None and self.champions.versions == versions:
            return False
        began = time.perf_counter()
        self.champions = ChampionSet.load(self.tracking_uri, self.alias, reuse=self.champions, versions=versions)
        log.info("loaded champions %s in %.1fs", self.champions.versions, time.perf_counter() - began)
        self.refresh_features()  # re-encode the online rows for the new models, then publish both together
        self.stats.model_swaps += 1
        return True

    def refresh_features(self) -> bool:
        """Merge online rows newer than the published ones (or read all after a rebuild or a model change);
        True if a new state was published."""
        champions = self.champions
        if champions is None:
            return False
        version = read_version(self.warehouse)
        if version is None:
            raise LookupError(f"{ONLINE_TABLE} does not exist yet: run `marketing-ml run --step features`")
        state = self.state
        columns = champions.feature_columns
        full = state is None or state.champions is not champions or version.needs_full_read(state.features.version)
        if full:
            began = time.perf_counter()
            block = self._encode(champions, read_rows(self.warehouse, columns))
            if state is None or state.champions is not champions:  # new champions: checked on these rows
                champions = self.champions = champions.with_compiled_actions(block.encoded)
            snapshot = FeatureSnapshot.build(block, version)
            log.info("loaded %d online feature rows in %.1fs (NBA boosters compiled: %s)", len(snapshot),
                     time.perf_counter() - began, champions.compiled_actions is not None)
        elif version.has_newer_rows(state.features.version):
            since = state.features.version.last_updated_at - self.overlap
            rows = read_rows(self.warehouse, columns, since=since)
            snapshot = state.features.merged(self._encode(champions, rows), version)
            log.info("merged %d online feature rows stamped after %s", len(rows), since)
        else:
            return False
        self.state = ServingState(champions, snapshot)
        self.problem = ""
        self.stats.feature_refreshes += 1
        if full and self.freeze_heap:
            # models and stores are hundreds of thousands of long-lived objects: a full garbage collection
            # that walks them all stalls requests for tens of milliseconds. Freeze them out of the collector
            # (once per full load, a single pause; the previous state's objects are collected first).
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        return True

    def refresh_advisor_queue(self) -> bool:
        try:
            signature = advisor_queue.read_signature(self.warehouse)
        except QueueUnavailable as reason:
            self.queue, self.queue_problem = None, str(reason)
            return False
        if self.queue is not None and self.queue.signature == signature:
            return False
        self.queue, self.queue_problem = advisor_queue.read_queue(self.warehouse, signature), ""
        return True

    @staticmethod
    def _encode(champions: ChampionSet, frame: pd.DataFrame) -> RowBlock:
        chunks = [frame.iloc[i:i + ENCODE_CHUNK] for i in range(0, max(len(frame), 1), ENCODE_CHUNK)]
        encoded = [champions.encode(chunk) for chunk in chunks]
        return RowBlock.from_frame(frame, {k: _stack([e[k] for e in encoded]) for k in encoded[0]})

    # -- the background thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="marketing-ml-refresh", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        next_model_poll = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_model_poll:
                self._attempt("models", self.refresh_models)
                next_model_poll = time.monotonic() + self.model_poll_seconds
            self._attempt("features", self.refresh_features)
            self._attempt("advisor_queue", self.refresh_advisor_queue)
            self._stop.wait(self.feature_poll_seconds)

    def _attempt(self, kind: str, refresh: Callable[[], bool]) -> None:
        try:
            refresh()
        except Exception as error:  # keep serving the last good state; say why in /readyz and the log
            self.stats.errors[kind] += 1
            if self.state is None and kind != "advisor_queue":
                self.problem = str(error)
            log.warning("%s refresh failed (serving the last good state): %s", kind, error)

    def wait_until_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.state is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.state is not None


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
