"""Prometheus metrics. One ``Metrics`` object per app (its own CollectorRegistry, so tests and several
apps in one process never share series); the data plane, gateway and LLM scheduler record through it.

Label values are bounded: model names are recorded only after they resolve to a registered model, key
ids (never secrets) only after authentication, so a client cannot create series at will.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Serving latencies: 1 ms … 60 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUEUE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
TOKEN_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Callback(Collector):
    """A gauge family computed at scrape time (queue depth, loaded models...)."""

    def __init__(self, name: str, doc: str, labels: list[str],
                 read: Callable[[], Iterable[tuple[list[str], float]]]) -> None:  # fmt: skip
        self.name, self.doc, self.labels, self.read = name, doc, labels, read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        for values, value in self.read():
            family.add_metric(values, value)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        mv = ["model", "version"]
        self.requests = Counter("modelhost_requests", "Inference requests by outcome.",
                                [*mv, "protocol", "status"], registry=r)  # fmt: skip
        self.latency = Histogram("modelhost_request_duration_seconds", "Inference request latency.",
                                 [*mv, "protocol"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.rows = Counter("modelhost_inference_rows", "Rows (samples) predicted.", mv, registry=r)
        self.batch_size = Histogram("modelhost_batch_size", "Rows per executed batch.", mv,
                                    buckets=BATCH_BUCKETS, registry=r)  # fmt: skip
        self.batch_requests = Histogram("modelhost_batch_requests", "Requests per executed batch.", mv,
                                        buckets=BATCH_BUCKETS, registry=r)  # fmt: skip
        self.queue_time = Histogram("modelhost_queue_seconds", "Time a request waited for its batch.", mv,
                                    buckets=QUEUE_BUCKETS, registry=r)  # fmt: skip
        self.load_time = Histogram("modelhost_model_load_seconds", "Model load (and warm-up) time.", ["model"],
                                   buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.loads = Counter(
            "modelhost_model_loads", "Model loads by outcome.", ["model", "outcome"], registry=r
        )
        self.unloads = Counter("modelhost_model_unloads", "Model unloads.", ["model"], registry=r)
        # LLM serving
        self.ttft = Histogram("modelhost_time_to_first_token_seconds", "Time to first token.", mv,
                              buckets=TOKEN_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.itl = Histogram("modelhost_inter_token_latency_seconds", "Time between generated tokens.", mv,
                             buckets=TOKEN_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.tokens = Counter("modelhost_tokens", "Tokens processed.", [*mv, "kind"], registry=r)
        # (LLM sequences and KV-cache use are read from the schedulers at scrape time: see repository.py)
        # gateway
        self.denials = Counter("modelhost_gateway_denials", "Requests refused by the gateway.",
                               ["key_id", "reason"], registry=r)  # fmt: skip
        self.key_tokens = Counter("modelhost_key_tokens", "Tokens used per API key.", ["key_id", "model"],
                                  registry=r)  # fmt: skip
        self.key_cost = Counter("modelhost_key_cost", "Cost charged per API key.", ["key_id"], registry=r)
        # drift
        self.drift = Gauge("modelhost_drift_score", "Latest drift score per feature (PSI, KS statistic or "
                           "chi-squared p-value).", [*mv, "feature", "test"], registry=r)  # fmt: skip
        self.drift_alerts = Counter("modelhost_drift_alerts", "Drift threshold crossings.", mv, registry=r)
        self.predictions_logged = Counter("modelhost_predictions_logged", "Requests sampled into the "
                                          "prediction log.", mv, registry=r)  # fmt: skip
        # model graphs: one observation per executed step (the graph's own latency is in ``latency``)
        self.graph_step_latency = Histogram("modelhost_graph_step_duration_seconds", "Latency of one step "
                                            "of a model graph.", ["graph", "step", "model", "version"],
                                            buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, cached: the hot path records per request, and ``labels()``
        takes a lock and builds its key every time. Series are never removed, so a cached child
        stays the registered one; label values are bounded (see the module docstring)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def add_callback(self, name: str, doc: str, labels: list[str],
                     read: Callable[[], Iterable[tuple[list[str], float]]]) -> None:  # fmt: skip
        self.registry.register(_Callback(name, doc, labels, read))

    def render(self) -> bytes:
        """The exposition text. Model worker processes never record metrics themselves (the server
        process records around each call), so one registry per server process is complete."""
        return generate_latest(self.registry)
