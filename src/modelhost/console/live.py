"""Live metrics for the console charts, read from the server's own Prometheus registry.

Counters and histograms are cumulative; a chart needs rates and recent quantiles. ``MetricsHistory``
keeps a short ring of snapshots (taken when the console polls, at most one per ``min_interval_s``)
and turns each pair of neighbours into one point: requests/s, errors/s, tokens/s and the p50/p99
latency of the requests finished in that interval (bucket deltas, interpolated as Prometheus'
``histogram_quantile`` does).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry

from modelhost.monitoring.metrics import Metrics

ALL = "*"  # the pseudo-model that sums every model


def _now() -> float:
    return time.time()


@dataclass
class _Totals:
    requests: float = 0.0
    errors: float = 0.0
    tokens: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count


@dataclass
class Snapshot:
    at: float
    models: dict[str, _Totals]


def take_snapshot(registry: CollectorRegistry, at: float) -> Snapshot:
    """Totals per model (summed over versions and protocols) and for all models together."""
    models: dict[str, _Totals] = {ALL: _Totals()}

    def totals(model: str) -> list[_Totals]:
        return [models.setdefault(model, _Totals()), models[ALL]]

    for family in registry.collect():
        for s in family.samples:
            model = s.labels.get("model")
            if model is None:
                continue
            if s.name == "modelhost_requests_total":
                for t in totals(model):
                    t.requests += s.value
                    if not str(s.labels.get("status", "")).startswith("2"):  # an HTTP status
                        t.errors += s.value
            elif s.name == "modelhost_tokens_total":
                for t in totals(model):
                    t.tokens += s.value
            elif s.name == "modelhost_request_duration_seconds_bucket":
                le = float(s.labels["le"])
                for t in totals(model):
                    t.buckets[le] = t.buckets.get(le, 0.0) + s.value
    return Snapshot(at, models)


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile of a cumulative histogram (upper bound -> count), linearly interpolated within
    its bucket like Prometheus' ``histogram_quantile``; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # the highest finite bound, as Prometheus answers
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def _point(a: Snapshot, b: Snapshot, model: str) -> dict[str, Any]:
    zero = _Totals()
    ta, tb = a.models.get(model, zero), b.models.get(model, zero)
    dt = max(b.at - a.at, 1e-9)
    delta = {le: tb.buckets.get(le, 0.0) - ta.buckets.get(le, 0.0) for le in tb.buckets}

    def ms(q: float) -> float | None:
        value = quantile(q, delta)
        return None if value is None else round(value * 1000, 3)

    return {
        "t": round(b.at, 3),
        "rps": round((tb.requests - ta.requests) / dt, 4),
        "errors_per_s": round((tb.errors - ta.errors) / dt, 4),
        "tokens_per_s": round((tb.tokens - ta.tokens) / dt, 4),
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
    }


class MetricsHistory:
    """A ring of snapshots of one Metrics registry; ``series`` answers the console's live charts."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        capacity: int = 300,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._metrics = metrics
        self._clock = clock or (lambda: _now())
        self._min_interval_s = min_interval_s
        self._snapshots: deque[Snapshot] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def sample(self) -> None:
        now = self._clock()
        with self._lock:
            if self._snapshots and now - self._snapshots[-1].at < self._min_interval_s:
                return
            self._snapshots.append(take_snapshot(self._metrics.registry, now))

    def series(self, model: str = ALL) -> dict[str, Any]:
        """Sample now (rate-limited), then one point per interval between snapshots, oldest first,
        and the cumulative totals of the latest snapshot."""
        self.sample()
        with self._lock:
            snaps = list(self._snapshots)
        last = snaps[-1].models.get(model, _Totals())
        return {
            "model": model,
            "models": sorted(m for m in snaps[-1].models if m != ALL),
            "points": [_point(a, b, model) for a, b in pairwise(snaps)],
            "totals": {
                "requests": last.requests,
                "errors": last.errors,
                "tokens": last.tokens,
                "p50_ms": None if (p := quantile(0.5, last.buckets)) is None else round(p * 1000, 3),
                "p99_ms": None if (p := quantile(0.99, last.buckets)) is None else round(p * 1000, 3),
            },
        }


_histories: WeakKeyDictionary[Metrics, MetricsHistory] = WeakKeyDictionary()
_histories_lock = threading.Lock()


def history_for(metrics: Metrics) -> MetricsHistory:
    """The history of one app's Metrics (one per server process; tests get their own)."""
    with _histories_lock:
        history = _histories.get(metrics)
        if history is None:
            history = _histories[metrics] = MetricsHistory(metrics)
        return history
