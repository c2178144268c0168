"""The OIP infer fast path (serving/rest/v2_fast.py): taken for the hot path, the FastAPI route for
anything unusual, and the same answers either way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.gateway.keys import KeyService
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from modelhost.serving.rest import v2_fast

ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Model names the fast path served (it calls run_infer; the route calls it from v2 directly)."""
    calls: list[str] = []
    real = v2_fast.run_infer

    async def counting(plane: Any, usage: Any, model: str, *args: Any) -> Any:
        calls.append(model)
        return await real(plane, usage, model, *args)

    monkeypatch.setattr(v2_fast, "run_infer", counting)
    return calls


@pytest.fixture
def public(settings: Settings, iris_registry: Registry) -> Iterator[tuple[TestClient, KeyService]]:
    s = settings.model_copy(update={"host": "0.0.0.0", "max_body_bytes": 4096})
    with TestClient(create_app(s, registry=iris_registry)) as c:
        yield c, KeyService(iris_registry.session, s)


def _both(c: TestClient, path: str, **kw: Any) -> tuple[Any, Any]:
    """The same request through the fast path and through the route (forced by an override)."""
    fast = c.post(path, **kw)
    app: Any = c.app
    app.dependency_overrides[object] = object  # any override sends infer to the FastAPI route
    try:
        slow = c.post(path, **kw)
    finally:
        app.dependency_overrides.clear()
    return fast, slow


def test_hot_path_is_served_by_the_fast_path(client: TestClient, spy: list[str]) -> None:
    r = client.post("/v2/models/iris/infer", json={**ROW, "id": "r1"}, headers={"x-request-id": "abc-1"})
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [0] and r.json()["id"] == "r1"
    assert r.headers["x-request-id"] == "abc-1" and r.headers["x-modelhost-model-version"] == "1"
    assert r.headers["content-type"] == "application/json"
    assert client.post("/v2/models/iris@production/infer", json=ROW).status_code == 200
    assert client.post("/v2/models/iris/versions/1/infer", json=ROW).json()["model_version"] == "1"
    assert spy == ["iris", "iris@production", "iris"]


def test_unusual_requests_fall_back_to_the_route(client: TestClient, spy: list[str]) -> None:
    r = client.post("/v2/models/-bad/infer", json=ROW)  # the route's path pattern answers
    assert r.status_code == 400 and "model_name" in r.json()["error"]
    r = client.get("/v2/models/iris/infer")
    assert r.status_code == 405 and "not allowed" in r.json()["error"]
    assert client.post("/v2/models/iris/versions//infer", json=ROW).status_code == 404
    assert spy == []


@pytest.mark.parametrize(
    ("path", "kw", "status", "needle"),
    [
        ("/v2/models/iris/infer", {"json": ROW}, 200, None),
        ("/v2/models/nope/infer", {"json": ROW}, 404, "nope"),
        ("/v2/models/iris/versions/9/infer", {"json": ROW}, 404, "9"),
        ("/v2/models/iris/infer", {"content": b"{nope"}, 400, "not valid JSON"),
        ("/v2/models/iris/infer", {"json": {"inputs": []}}, 400, "inputs"),
        ("/v2/models/iris/infer", {"json": {**ROW, "extra": 1}}, 400, "unsupported parameter 'extra'"),
        ("/v2/models/iris/infer", {"json": {"inputs": [{**ROW["inputs"][0], "shape": ["1", 4]}]}}, 200, None),
        ("/v2/models/iris/infer", {"json": {"inputs": [{**ROW["inputs"][0], "datatype": "FP99"}]}}, 400, "datatype"),
        ("/v2/models/iris/infer", {"json": {"inputs": [{**ROW["inputs"][0], "shape": [2, 4]}]}}, 400, "shape"),
        ("/v2/models/iris/infer", {"content": b"x" * 5000}, 413, "MODELHOST_MAX_BODY_BYTES"),
    ],
)  # fmt: skip
def test_fast_path_and_route_answer_alike(
    public: tuple[TestClient, KeyService], path: str, kw: dict[str, Any], status: int, needle: str | None
) -> None:
    c, keys = public
    _, raw = keys.create("svc", ["infer"])
    kw = {**kw, "headers": {"Authorization": f"Bearer {raw}"}}
    fast, slow = _both(c, path, **kw)
    assert fast.status_code == slow.status_code == status
    assert fast.json() == slow.json()
    if needle is not None:
        assert needle in fast.json()["error"]
    for name in ("content-type", "x-modelhost-model-version", "inference-header-content-length"):
        assert fast.headers.get(name) == slow.headers.get(name)


def test_gateway_refusals_match(public: tuple[TestClient, KeyService]) -> None:
    c, keys = public
    fast, slow = _both(c, "/v2/models/iris/infer", json=ROW)
    assert fast.status_code == slow.status_code == 401 and fast.json() == slow.json()
    _, digits = keys.create("d", ["infer:digits"])
    fast, slow = _both(c, "/v2/models/iris/infer", json=ROW, headers={"X-API-Key": digits})
    assert fast.status_code == slow.status_code == 403 and fast.json() == slow.json()
    _, limited = keys.create("l", ["infer"], limits={"rpm": 2})
    h = {"Authorization": f"Bearer {limited}"}
    fast, slow = _both(c, "/v2/models/iris/infer", json=ROW, headers=h)
    assert fast.headers["x-ratelimit-remaining-requests"] == "1"
    assert slow.headers["x-ratelimit-remaining-requests"] == "0"
    r = c.post("/v2/models/iris/infer", json=ROW, headers=h)
    assert r.status_code == 429 and "rpm" in r.json()["error"] and "retry-after" in r.headers
    lim_id = keys.key_id_of(limited)
    metrics = c.get("/metrics").text
    assert f'modelhost_gateway_denials_total{{key_id="{lim_id}",reason="rate_limited"}} 1.0' in metrics


def test_binary_tensors_through_the_fast_path(client: TestClient, spy: list[str]) -> None:
    import numpy as np

    header = (
        b'{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","parameters":{"binary_data_size":32}}],'
    )
    header += b'"parameters":{"binary_data_output":true}}'
    body = header + np.array([[5.1, 3.5, 1.4, 0.2]]).tobytes()
    r = client.post(
        "/v2/models/iris/infer",
        content=body,
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "content-type": "application/octet-stream",
        },
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers["inference-header-content-length"])
    first = orjson.loads(r.content[:n])["outputs"][0]
    label = np.frombuffer(r.content[n : n + first["parameters"]["binary_data_size"]], dtype=np.int64)
    assert label.tolist() == [0] and spy == ["iris"]


def test_revoked_key_is_refused_on_the_very_next_request(public: tuple[TestClient, KeyService]) -> None:
    c, keys = public
    _, admin = keys.create("adm", ["admin"])
    created = c.post("/api/v1/keys", json={"name": "svc", "scopes": ["infer"]},
                     headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    raw, key_id = created.json()["key"], created.json()["key_id"]
    h = {"Authorization": f"Bearer {raw}"}
    for _ in range(3):  # verified once, then answered from the key cache
        assert c.post("/v2/models/iris/infer", json=ROW, headers=h).status_code == 200
    assert (
        c.post(f"/api/v1/keys/{key_id}/revoke", headers={"Authorization": f"Bearer {admin}"}).status_code
        == 200
    )
    r = c.post("/v2/models/iris/infer", json=ROW, headers=h)
    assert r.status_code == 401 and "revoked" in r.json()["error"]


def test_streamed_body_over_the_limit_is_413_on_both_paths(public: tuple[TestClient, KeyService]) -> None:
    c, keys = public
    _, raw = keys.create("svc", ["infer"])

    def chunks() -> Iterator[bytes]:  # no content-length: the limit applies while the body streams in
        yield b"x" * 3000
        yield b"x" * 3000

    h = {"Authorization": f"Bearer {raw}"}
    fast = c.post("/v2/models/iris/infer", content=chunks(), headers=h)
    app: Any = c.app
    app.dependency_overrides[object] = object
    try:
        slow = c.post("/v2/models/iris/infer", content=chunks(), headers=h)
    finally:
        app.dependency_overrides.clear()
    assert fast.status_code == slow.status_code == 413
    assert fast.json() == slow.json() and "MODELHOST_MAX_BODY_BYTES" in fast.json()["error"]


def test_request_ids_and_access_log_alike_on_both_paths(
    settings: Settings, iris_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings.model_copy(update={"access_log": True})
    with TestClient(create_app(s, registry=iris_registry)) as c, caplog.at_level("INFO", "modelhost.access"):
        fast, slow = _both(c, "/v2/models/iris/infer", json=ROW)
        bad, _ = _both(c, "/v2/models/iris/infer", json=ROW, headers={"x-request-id": "no spaces allowed"})
        other = c.get("/v2/health/ready", headers={"x-request-id": "ready-1"})
    ids = [r.headers["x-request-id"] for r in (fast, slow, bad)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and len(set(ids)) == 3
    assert other.headers["x-request-id"] == "ready-1"
    records = [
        (r.getMessage(), getattr(r, "status", None)) for r in caplog.records if r.name == "modelhost.access"
    ]
    assert records[:2] == [("POST /v2/models/iris/infer 200", 200)] * 2
    assert ("GET /v2/health/ready 200", 200) in records


def test_requests_in_flight_are_counted_and_released(client: TestClient) -> None:
    """The server-wide count a batcher reads to run a lone request inline: each HTTP request counts
    while it is served, on the fast path, the router and errors alike, and nothing stays counted."""
    app = client.app
    activity = app.activity  # type: ignore[attr-defined]
    assert activity is not None and activity.active == 0
    plane = app.state.plane  # type: ignore[attr-defined]
    seen: list[int] = []
    entry_predict = plane.repository.predict

    async def spying(entry, inputs, outputs, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(activity.active)
        return await entry_predict(entry, inputs, outputs, **kwargs)

    plane.repository.predict = spying
    assert client.post("/v2/models/iris/infer", json=ROW).status_code == 200  # fast path
    assert client.post("/v2/models/iris/infer?x=1", json=ROW).status_code == 200  # the router
    assert client.post("/v2/models/iris/infer", content=b"{nope").status_code == 400
    assert client.post("/v2/models/nope/infer", json=ROW).status_code == 404
    assert client.get("/v2/health/ready").status_code == 200
    assert seen == [1, 1] and activity.active == 0
