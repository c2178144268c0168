"""/metrics, prediction logging, drift and status through the real app (in-process)."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from modelhost.config import Settings
from modelhost.registry import Registry
from modelhost.serving.app import create_app

from ..conftest import make_admin_key

ROOT = Path(__file__).resolve().parents[2]


def samples(c: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = c.get("/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return sum(
        v for (n, ls), v in metrics.items() if n == name and all((k, x) in ls for k, x in labels.items())
    )


@pytest.fixture
def mon(settings: Settings, iris_registry: Registry, iris_xy) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    iris_registry.set_reference("iris", 1, iris_xy[0], predictions=iris_xy[1])
    token = make_admin_key(iris_registry, settings)
    s = settings.model_copy(update={"prediction_log_rate": 1.0})
    with TestClient(create_app(s, registry=iris_registry), headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def _infer(c: TestClient, rows: list[list[float]], ref: str = "iris") -> int:
    body = {"inputs": [{"name": "input", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
    return c.post(f"/v2/models/{ref}/infer", json=body).status_code


def test_metrics_move_after_requests(mon: TestClient) -> None:
    before = samples(mon)
    assert _infer(mon, [[5.1, 3.5, 1.4, 0.2]] * 3) == 200
    assert _infer(mon, [[1.0, 2.0]]) == 400
    assert _infer(mon, [[1.0, 2.0, 3.0, 4.0]], ref="nope") == 404
    after = samples(mon)
    ok = dict(model="iris", version="1", protocol="rest")
    assert value(after, "modelhost_requests_total", **ok, status="200") == value(
        before, "modelhost_requests_total", **ok, status="200") + 1  # fmt: skip
    assert value(after, "modelhost_requests_total", **ok, status="400") >= 1
    assert value(after, "modelhost_request_duration_seconds_count", **ok) >= 1
    assert value(after, "modelhost_inference_rows_total", model="iris") >= 3
    assert value(after, "modelhost_batch_size_count", model="iris") >= 1
    assert value(after, "modelhost_models_loaded", state="READY") == 1
    assert value(after, "modelhost_model_load_seconds_count", model="iris") == 1
    assert not any(("model", "nope") in labels for _, labels in after)  # no series for unknown models
    buckets = {dict(ls)["le"] for (n, ls) in after if n == "modelhost_request_duration_seconds_bucket"}
    assert {"0.001", "60.0"} <= buckets


def test_prediction_log_and_drift_report(mon: TestClient, iris_xy) -> None:  # type: ignore[no-untyped-def]
    x = iris_xy[0]
    r = mon.get("/api/v1/drift/iris")
    assert r.status_code == 200 and "at least 30" in r.json()["note"]
    for i in range(0, 150, 10):  # the training distribution itself: no drift
        assert _infer(mon, x[i : i + 10].tolist()) == 200
    report = mon.get("/api/v1/drift/iris").json()
    assert report["current_rows"] == 150 and report["drifted"] is False, report
    shifted = x + np.array([2.5, 0.0, 0.0, 0.0])
    for _ in range(3):
        for i in range(0, 150, 10):
            _infer(mon, shifted[i : i + 10].tolist())
    report = mon.get("/api/v1/drift/iris").json()
    flagged = {f["feature"] for f in report["features"] if f["drifted"]}
    assert "f0" in flagged and report["drifted"] is True
    assert value(samples(mon), "modelhost_drift_score", model="iris", feature="f0", test="psi+ks") > 0.2
    r = mon.get("/api/v1/drift/iris", params={"version": "2"})
    assert "no reference data" in r.json()["note"]
    assert mon.get("/api/v1/drift/nope").status_code == 404


def test_status_and_request_ids(mon: TestClient) -> None:
    r = mon.post("/v2/models/iris/infer", headers={"x-request-id": "abc-123"},
                 json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]})  # fmt: skip
    assert r.headers["x-request-id"] == "abc-123"
    assert len(mon.get("/v2/health/live", headers={"x-request-id": "bad id!"}).headers["x-request-id"]) == 32
    status = mon.get("/api/v1/status").json()
    (model,) = status["models"]
    assert model["model"] == "iris" and model["state"] == "READY" and model["batching"]["batches"] >= 1
    assert status["max_rss_mb"] > 10


def test_metrics_can_be_disabled(settings: Settings, iris_registry: Registry) -> None:
    with TestClient(
        create_app(settings.model_copy(update={"metrics_enabled": False}), registry=iris_registry)
    ) as c:
        assert c.get("/metrics").status_code == 404


def test_grafana_dashboard_uses_only_exported_metrics(mon: TestClient) -> None:
    import re

    dashboard = json.loads((ROOT / "deploy" / "grafana" / "modelhost.json").read_text())
    assert dashboard["title"] and dashboard["panels"]
    _infer(mon, [[5.1, 3.5, 1.4, 0.2]])
    exported = {name for name, _ in samples(mon)}
    exported |= {n.removesuffix("_total") for n in exported}
    declared = {f.name for f in text_string_to_metric_families(mon.get("/metrics").text)}
    suffixes = ("_bucket", "_count", "_sum", "_total")
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for metric in re.findall(r"\b(modelhost_[a-z_]+)", target["expr"]):
                base = next((metric.removesuffix(s) for s in suffixes if metric.endswith(s)), metric)
                assert metric in exported or base in declared, (panel["title"], metric)
    time.sleep(0)


def test_gateway_denials_and_key_usage_are_metrics(settings: Settings, iris_registry: Registry) -> None:
    from modelhost.gateway.keys import KeyService

    keys = KeyService(iris_registry.session, settings)
    _, reader = keys.create("reader", ["infer:digits"])
    _, user = keys.create("user", ["infer"])
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    with TestClient(create_app(settings.model_copy(update={"auth": "keys"}), registry=iris_registry)) as c:
        assert c.post("/v2/models/iris/infer", json=body).status_code == 401
        assert (
            c.post(
                "/v2/models/iris/infer", json=body, headers={"Authorization": f"Bearer {reader}"}
            ).status_code
            == 403
        )
        assert (
            c.post(
                "/v2/models/iris/infer", json=body, headers={"Authorization": f"Bearer {user}"}
            ).status_code
            == 200
        )
        metrics = samples(c)
    assert value(metrics, "modelhost_gateway_denials_total", key_id="unknown", reason="unauthorized") == 1
    reader_id = reader.split("_")[2]
    assert value(metrics, "modelhost_gateway_denials_total", key_id=reader_id, reason="forbidden") == 1


def test_opentelemetry_spans_when_enabled(settings: Settings, iris_registry: Registry) -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    with TestClient(
        create_app(settings.model_copy(update={"otel_enabled": True}), registry=iris_registry)
    ) as c:
        r = c.post("/v2/models/iris/infer", json=body, headers={"x-request-id": "trace-me"})
        assert r.status_code == 200
        assert c.post("/v2/models/nope/infer", json=body).status_code == 404
    spans = {s.name: s for s in exporter.get_finished_spans()}
    span = spans["POST /v2/models/iris/infer"]
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["modelhost.request_id"] == "trace-me"
    assert spans["POST /v2/models/nope/infer"].attributes["http.response.status_code"] == 404


def test_metric_children_are_cached_and_recorded() -> None:
    from modelhost.monitoring.metrics import Metrics

    m = Metrics()
    first = m.child(m.requests, "iris", "1", "rest", "200")
    assert m.child(m.requests, "iris", "1", "rest", "200") is first
    assert m.child(m.requests, "iris", "2", "rest", "200") is not first
    first.inc()
    m.child(m.requests, "iris", "1", "rest", "200").inc()
    m.child(m.latency, "iris", "1", "rest").observe(0.002)
    text = m.render().decode()
    assert 'modelhost_requests_total{model="iris",protocol="rest",status="200",version="1"} 2.0' in text
    assert 'modelhost_request_duration_seconds_count{model="iris",protocol="rest",version="1"} 1.0' in text
