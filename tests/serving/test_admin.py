from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.gateway.keys import KeyService
from modelhost.registry import Registry
from modelhost.serving.app import create_app


@pytest.fixture
def keys(settings: Settings, iris_registry: Registry) -> KeyService:
    return KeyService(iris_registry.session, settings)


@pytest.fixture
def admin(settings: Settings, iris_registry: Registry, keys: KeyService) -> Iterator[TestClient]:
    _, token = keys.create("test-admin", ["admin"])
    app = create_app(settings, registry=iris_registry)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def test_admin_api_needs_an_admin_key_even_without_auth(client: TestClient, keys: KeyService) -> None:
    # auth mode "none" on loopback opens inference, never the admin API
    r = client.get("/api/v1/models")
    assert r.status_code == 401 and "admin key" in r.json()["error"]
    r = client.get("/api/v1/models", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 401 and "admin key" in r.json()["error"]  # a placeholder is no key on loopback
    r = client.get("/api/v1/models", headers={"Authorization": "Bearer mh_live_bad"})
    assert r.status_code == 401 and "malformed" in r.json()["error"]
    _, reader = keys.create("reader", ["models:read", "infer"])
    r = client.get("/api/v1/models", headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403 and "admin" in r.json()["error"]


def test_admin_key_is_checked(admin: TestClient, keys: KeyService) -> None:
    wrong = "mh_live_0123456789ab_" + "x" * 43
    assert admin.get("/api/v1/models", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
    assert admin.get("/api/v1/models", headers={"Authorization": ""}).status_code == 401
    assert admin.get("/api/v1/models", headers={"Authorization": "Basic abc"}).status_code == 401
    assert [m["name"] for m in admin.get("/api/v1/models").json()] == ["iris"]


def test_register_upload_and_alias_move_hot_applies(admin: TestClient, iris_skops: Path) -> None:
    with open(iris_skops, "rb") as f:
        r = admin.post(
            "/api/v1/models/iris/versions",
            files={"file": ("iris.skops", f)},
            data={"metrics": orjson.dumps({"accuracy": 0.98}).decode(), "description": "v3"},
        )
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 3 and r.json()["metrics"] == {"accuracy": 0.98}
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
    assert admin.post("/v2/models/iris/infer", json=body).json()["model_version"] == "1"
    r = admin.put("/api/v1/models/iris/aliases/production", json={"version": 3, "reason": "promote"})
    assert r.status_code == 200 and r.json()["version"] == 3
    assert admin.post("/v2/models/iris/infer", json=body).json()["model_version"] == "3"
    history = admin.get("/api/v1/models/iris/aliases/production/history").json()
    assert [(h["from_version"], h["to_version"]) for h in history] == [(None, 1), (1, 3)]


def test_admin_bad_input(admin: TestClient, tmp_path: Path, iris_model) -> None:  # type: ignore[no-untyped-def]
    import pickle

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(iris_model))
    with open(evil, "rb") as f:
        r = admin.post("/api/v1/models/iris/versions", files={"file": ("evil.pkl", f)})
    assert r.status_code == 400 and "pickle" in r.json()["error"]
    r = admin.post("/api/v1/models/iris/versions", data={"description": "no file"})
    assert r.status_code == 400 and "file" in r.json()["error"]
    with open(evil, "rb") as f:
        r = admin.post(
            "/api/v1/models/iris/versions", files={"file": ("x.skops", f)}, data={"metrics": "{oops"}
        )
    assert r.status_code == 400 and "metrics" in r.json()["error"]
    r = admin.put("/api/v1/models/iris/aliases/production", json={"version": "two"})
    assert r.status_code == 400 and "version" in r.json()["error"]
    r = admin.put("/api/v1/models/iris/aliases/production", json={"version": 1, "surprise": True})
    assert r.status_code == 400
    admin.put("/api/v1/models/iris/aliases/production", json={"version": 1, "protect": True})
    r = admin.put("/api/v1/models/iris/aliases/production", json={"version": 2})
    assert r.status_code == 409 and "protected" in r.json()["error"]
    assert [v["version"] for v in admin.get("/api/v1/models/iris/versions").json()] == [1, 2]
