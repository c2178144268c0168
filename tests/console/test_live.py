"""Live metrics for the console: rates and quantiles from a Metrics registry, with a fake clock."""

from __future__ import annotations

import math

import pytest

from modelhost.console.live import ALL, MetricsHistory, quantile
from modelhost.monitoring.metrics import Metrics


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, math.inf: 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.15)
    assert quantile(0.99, {0.1: 0.0, 1.0: 0.0, math.inf: 10.0}) == pytest.approx(1.0)  # beyond the last bound
    assert quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    assert quantile(0.5, {}) is None


def test_history_turns_counters_into_points_per_interval() -> None:
    metrics = Metrics()
    now = [100.0]
    history = MetricsHistory(metrics, min_interval_s=1.0, clock=lambda: now[0])
    history.sample()
    for _ in range(10):
        metrics.requests.labels("a", "1", "v2", "200").inc()
        metrics.latency.labels("a", "1", "v2").observe(0.004)
    metrics.requests.labels("b", "3", "openai", "429").inc()
    metrics.tokens.labels("b", "3", "output").inc(50)
    now[0] += 5.0
    series = history.series()
    assert series["models"] == ["a", "b"]
    (point,) = series["points"]
    assert point["rps"] == pytest.approx(11 / 5)
    assert point["errors_per_s"] == pytest.approx(1 / 5)
    assert point["tokens_per_s"] == pytest.approx(10.0)
    assert 2.5 < point["p50_ms"] <= 5.0  # inside the (2.5 ms, 5 ms] bucket
    only_b = history.series("b")
    assert only_b["points"][0]["rps"] == pytest.approx(0.2) and only_b["points"][0]["p50_ms"] is None
    now[0] += 0.2  # within min_interval_s: no new sample, so no new point
    assert len(history.series(ALL)["points"]) == 1
    now[0] += 2.0
    assert history.series()["points"][-1]["rps"] == 0
