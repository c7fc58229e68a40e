"""Prometheus metrics of the API, in the text exposition format (version 0.0.4), without a client library.

Four families are all the service needs, so the exposition is written here rather than adding a
dependency: request counts by route template, method and status; a latency histogram by route; the
served model versions as an info-style gauge; the online store's size and freshness. Routes are labelled
by their template (`/v1/clients/{client_id}/scores`), never by the raw path, so label cardinality stays
bounded whatever clients call.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UNMATCHED_ROUTE = "<unmatched>"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**labels: object) -> str:
    def escape(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class RequestMetrics:
    """Counters and histograms updated once per request (from the event loop; a lock keeps /metrics and
    any threadpool route consistent)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(LATENCY_BUCKETS))
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)
        self.started = time.time()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(route, method, status)] += 1
            buckets = self._buckets[route]
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
                    break
            self._sums[route] += seconds
            self._counts[route] += 1

    def exposition(self) -> list[str]:
        with self._lock:
            lines = [
                "# HELP marketing_ml_http_requests_total HTTP requests handled, by route template, method and status.",
                "# TYPE marketing_ml_http_requests_total counter",
            ]
            for (route, method, status), n in sorted(self._requests.items()):
                labels = _labels(route=route, method=method, status=status)
                lines.append(f"marketing_ml_http_requests_total{labels} {n}")
            lines += [
                "# HELP marketing_ml_http_request_duration_seconds Time from request received to response sent.",
                "# TYPE marketing_ml_http_request_duration_seconds histogram",
            ]
            for route in sorted(self._counts):
                cumulative = 0
                for bound, n in zip(LATENCY_BUCKETS, self._buckets[route]):
                    cumulative += n
                    lines.append(f"marketing_ml_http_request_duration_seconds_bucket"
                                 f"{_labels(route=route, le=_number(bound))} {cumulative}")
                lines.append(f"marketing_ml_http_request_duration_seconds_bucket{_labels(route=route, le='+Inf')} "
                             f"{self._counts[route]}")
                lines.append(f"marketing_ml_http_request_duration_seconds_sum{_labels(route=route)} "
                             f"{_number(self._sums[route])}")
                lines.append(f"marketing_ml_http_request_duration_seconds_count{_labels(route=route)} "
                             f"{self._counts[route]}")
        return lines


def gauge(name: str, help_text: str, samples: Iterable[tuple[dict[str, object], float]],
          kind: str = "gauge") -> list[str]:
    """One metric family: HELP, TYPE and a line per (labels, value)."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{_labels(**labels) if labels else ''} {_number(value)}" for labels, value in samples]
    return lines


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task or body buffering): times each HTTP request and records
    it under the route template the router matched."""

    def __init__(self, app, metrics: RequestMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting a response

        async def send_with_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            self.metrics.observe(getattr(route, "path", UNMATCHED_ROUTE), scope["method"], status,
                                 time.perf_counter() - began)
