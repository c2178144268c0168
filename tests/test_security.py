"""Security properties: hostile artifacts never execute, names cannot traverse paths, CORS is closed,
request bounds are enforced with the right errors."""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import skops.io as sio
from fastapi.testclient import TestClient
from sklearn.preprocessing import FunctionTransformer

from modelhost.config import Settings
from modelhost.errors import InvalidInput, UnsafeArtifact
from modelhost.registry import Registry
from modelhost.serving.app import create_app

from .conftest import make_admin_key

BODY = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


class Exploit:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def admin(settings: Settings, iris_registry: Registry) -> Iterator[TestClient]:
    token = make_admin_key(iris_registry, settings)
    app = create_app(settings, registry=iris_registry)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        c.admin_token = token  # type: ignore[attr-defined]
        yield c


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_never_runs(registry: Registry, tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    for name in ("model.pkl", "model.skops", "model.onnx", "model"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(Exploit(marker), protocol=protocol))
        with pytest.raises(UnsafeArtifact):
            registry.register_version("evil", path)
    assert not marker.exists()
    assert registry.list_models() == []


def test_malicious_skops_never_runs(registry: Registry, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.skops"
    sio.dump(FunctionTransformer(func=os.system, kw_args={"command": f"touch {marker}"}), path)
    with pytest.raises(UnsafeArtifact, match="system"):
        registry.register_version("evil", path)
    assert not marker.exists()


def test_malicious_upload_through_the_api(admin: TestClient, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    r = admin.post("/api/v1/models/iris/versions",
                   files={"file": ("x.skops", pickle.dumps(Exploit(marker)))})  # fmt: skip
    assert r.status_code == 400 and "pickle" in r.json()["error"]
    assert not marker.exists()


def test_upload_file_names_cannot_traverse(admin: TestClient, iris_skops: Path, settings: Settings) -> None:
    r = admin.post("/api/v1/models/iris/versions",
                   files={"file": ("../../../../escape.skops", iris_skops.read_bytes())})  # fmt: skip
    assert r.status_code == 201, r.text
    assert admin.get("/api/v1/models/iris/versions/3").json()["lineage"]["source"] == "upload:escape.skops"
    artifacts = settings.home / "artifacts"
    assert [p.name for p in artifacts.rglob("escape.skops")] == ["escape.skops"]
    assert not (settings.home.parent / "escape.skops").exists()


@pytest.mark.parametrize("name", ["../iris", "..", "a/b", "iris/../../x", "%2e%2e"])
def test_model_names_cannot_traverse(registry: Registry, iris_skops: Path, name: str) -> None:
    with pytest.raises(InvalidInput):
        registry.register_version(name, iris_skops)


def test_traversal_in_urls_is_refused(admin: TestClient) -> None:
    for path in ["/v2/models/..%2F..%2Fetc/infer", "/api/v1/models/..%2Fx/versions", "/v2/models/a%2Fb"]:
        r = admin.post(path, json=BODY) if path.endswith("infer") else admin.get(path)
        assert r.status_code in (400, 404) and "error" in r.json(), path


def test_cors_is_closed_by_default(admin: TestClient) -> None:
    r = admin.options("/v2/models/iris/infer", headers={"Origin": "https://evil.example",
                                                        "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert "access-control-allow-origin" not in r.headers
    r = admin.post("/v2/models/iris/infer", json=BODY, headers={"Origin": "https://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_admin_token_never_appears_in_logs(admin: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    admin.get("/api/v1/models")
    admin.get("/api/v1/models", headers={"Authorization": "Bearer wrong-secret-value"})
    assert admin.admin_token not in caplog.text and "wrong-secret-value" not in caplog.text  # type: ignore[attr-defined]


def test_row_limit_and_request_timeout(settings: Settings, iris_registry: Registry) -> None:
    s = settings.model_copy(update={"max_request_rows": 5, "request_timeout_s": 0.2})
    with TestClient(create_app(s, registry=iris_registry)) as c:
        rows = [[5.1, 3.5, 1.4, 0.2]] * 6
        r = c.post("/v2/models/iris/infer",
                   json={"inputs": [{"name": "input", "shape": [6, 4], "datatype": "FP64", "data": rows}]})  # fmt: skip
        assert r.status_code == 413 and "MODELHOST_MAX_REQUEST_ROWS" in r.json()["error"]
        entry = c.app.state.plane.repository.get(("iris", 1))  # type: ignore[attr-defined]
        original = entry.batcher.predict

        def slow(inputs, outputs):  # type: ignore[no-untyped-def]
            import time

            time.sleep(0.5)
            return original(inputs, outputs)

        entry.batcher.predict = slow
        r = c.post("/v2/models/iris/infer", json=BODY)
        assert r.status_code == 504 and "did not answer within 0.2 s" in r.json()["error"]
        entry.batcher.predict = original
        asyncio.run(asyncio.sleep(0.5))  # let the abandoned call finish
        assert c.post("/v2/models/iris/infer", json=BODY).status_code == 200
