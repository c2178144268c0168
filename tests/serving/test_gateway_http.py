"""The gateway over HTTP: keys on OIP v2 and the admin API, error shapes, limits headers, usage, audit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.errors import InvalidInput
from modelhost.gateway.keys import KeyService
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from modelhost.serving.deps import CurrentKey

ROW = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}


def _with_v1_route(settings: Settings, registry: Registry) -> Any:
    """An app with a stand-in /v1 route, adopting auth with one parameter as the OpenAI routes will."""
    app = create_app(settings, registry=registry)
    router = APIRouter()

    @router.get("/v1/models")
    async def v1_models(key: CurrentKey) -> dict[str, Any]:
        return {"object": "list", "owner": key.key_id}

    app.include_router(router)
    return app


@pytest.fixture
def public(settings: Settings, iris_registry: Registry) -> Iterator[tuple[TestClient, KeyService]]:
    """A server bound beyond loopback: keys are required."""
    s = settings.model_copy(update={"host": "0.0.0.0"})
    keys = KeyService(iris_registry.session, s)
    with TestClient(_with_v1_route(s, iris_registry)) as c:
        yield c, keys


def test_auth_none_is_refused_off_loopback(settings: Settings, iris_registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="loopback"):
        create_app(settings.model_copy(update={"host": "0.0.0.0", "auth": "none"}), registry=iris_registry)


def test_keys_required_off_loopback_in_each_protocols_error_shape(
    public: tuple[TestClient, KeyService],
) -> None:
    c, keys = public
    r = c.post("/v2/models/iris/infer", json=ROW)
    assert r.status_code == 401 and "missing API key" in r.json()["error"]
    r = c.get("/v1/models")
    assert r.status_code == 401
    err = r.json()["error"]
    assert (
        err["type"] == "authentication_error"
        and err["code"] == "unauthorized"
        and "API key" in err["message"]
    )
    assert c.get("/v2/health/ready").status_code == 200  # probes stay open
    _, raw = keys.create("svc", ["infer"])
    assert c.get("/v1/models", headers={"Authorization": f"Bearer {raw}"}).json()["object"] == "list"


def test_bearer_and_x_api_key_headers_are_accepted(public: tuple[TestClient, KeyService]) -> None:
    c, keys = public
    _, raw = keys.create("svc", ["infer"])
    r = c.post("/v2/models/iris/infer", json=ROW, headers={"Authorization": f"Bearer {raw}"})
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [0]
    r = c.post("/v2/models/iris/infer", json=ROW, headers={"X-API-Key": raw})
    assert r.status_code == 200
    r = c.post("/v2/models/iris/infer", json=ROW, headers={"Authorization": f"Token {raw}"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]


def test_scopes_give_403_per_model_and_per_route(public: tuple[TestClient, KeyService]) -> None:
    c, keys = public
    _, digits_only = keys.create("d", ["infer:digits"])
    h = {"Authorization": f"Bearer {digits_only}"}
    r = c.post("/v2/models/iris@production/infer", json=ROW, headers=h)
    assert r.status_code == 403 and "iris" in r.json()["error"]
    assert c.get("/v2/models/iris", headers=h).status_code == 403
    assert c.post("/v2/repository/index", headers=h).status_code == 403
    assert c.post("/v2/repository/models/iris/unload", headers=h).status_code == 403
    r = c.get("/api/v1/keys", headers=h)
    assert r.status_code == 403 and "admin" in r.json()["error"]
    _, reader = keys.create("r", ["models:read"])
    assert c.get("/v2/models/iris", headers={"Authorization": f"Bearer {reader}"}).status_code == 200
    assert (
        c.post("/v2/models/iris/infer", json=ROW, headers={"Authorization": f"Bearer {reader}"}).status_code
        == 403
    )


def test_revoked_key_is_rejected_on_the_next_request(public: tuple[TestClient, KeyService]) -> None:
    c, keys = public
    _, admin = keys.create("adm", ["admin"])
    created = c.post(
        "/api/v1/keys",
        json={"name": "svc", "scopes": ["infer"]},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert created.status_code == 201
    raw, key_id = created.json()["key"], created.json()["key_id"]
    h = {"Authorization": f"Bearer {raw}"}
    assert c.post("/v2/models/iris/infer", json=ROW, headers=h).status_code == 200  # now cached
    r = c.post(f"/api/v1/keys/{key_id}/revoke", headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 200 and r.json()["revoked"] is True
    r = c.post("/v2/models/iris/infer", json=ROW, headers=h)
    assert r.status_code == 401 and "revoked" in r.json()["error"]


def test_rate_limit_429_with_headers(public: tuple[TestClient, KeyService]) -> None:
    c, keys = public
    _, raw = keys.create("svc", ["infer"], limits={"rpm": 2})
    h = {"Authorization": f"Bearer {raw}"}
    first = c.post("/v2/models/iris/infer", json=ROW, headers=h)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert c.post("/v2/models/iris/infer", json=ROW, headers=h).status_code == 200
    r = c.post("/v2/models/iris/infer", json=ROW, headers=h)
    assert r.status_code == 429 and "rpm" in r.json()["error"]
    assert 1 <= int(r.headers["retry-after"]) <= 60 and r.headers["x-ratelimit-remaining-requests"] == "0"


def test_admin_key_lifecycle_usage_and_audit(public: tuple[TestClient, KeyService], iris_skops: Path) -> None:
    c, keys = public
    _, admin = keys.create("adm", ["admin"])
    c.headers["Authorization"] = f"Bearer {admin}"
    svc = c.post(
        "/api/v1/keys", json={"name": "svc", "scopes": ["infer"], "limits": {"requests_per_day": 100}}
    ).json()
    assert svc["key"].startswith("mh_live_") and svc["limits"] == {"requests_per_day": 100}
    bad = c.post("/api/v1/keys", json={"name": "x", "scopes": ["root"]})
    assert bad.status_code == 400 and "scope" in bad.json()["error"]
    assert c.post("/api/v1/keys", json={"name": "x"}).status_code == 400
    assert c.post("/api/v1/keys/ffffffffffff/revoke").status_code == 404
    listed = c.get("/api/v1/keys").json()
    assert {k["name"] for k in listed} >= {"adm", "svc"} and all("key" not in k for k in listed)
    for _ in range(3):
        r = c.post("/v2/models/iris/infer", json=ROW, headers={"Authorization": f"Bearer {svc['key']}"})
        assert r.status_code == 200
    r = c.post(
        "/v2/models/iris/infer", json={"inputs": []}, headers={"Authorization": f"Bearer {svc['key']}"}
    )
    assert r.status_code == 400
    usage = c.get("/api/v1/usage", params={"key_id": svc["key_id"]}).json()
    assert [(u["model"], u["version"], u["requests"], u["rows"], u["errors"]) for u in usage] == [
        ("iris", "", 1, 0, 1),
        ("iris", "1", 3, 3, 0),
    ]
    csv = c.get("/api/v1/usage", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv") and csv.text.startswith(
        "key_id,model,version,day"
    )
    assert c.get("/api/v1/usage", params={"since": "yesterday"}).status_code == 400
    rotated = c.post(f"/api/v1/keys/{svc['key_id']}/rotate")
    assert rotated.status_code == 201 and rotated.json()["rotated_from"] == svc["key_id"]
    with open(iris_skops, "rb") as f:
        assert c.post("/api/v1/models/iris/versions", files={"file": ("iris.skops", f)}).status_code == 201
    assert c.put("/api/v1/models/iris/aliases/production", json={"version": 3}).status_code == 200
    assert c.put("/api/v1/models/iris/aliases/production", json={"version": 1}).status_code == 200
    assert c.post("/api/v1/models/iris/aliases/production/rollback").status_code == 200  # back to 3
    assert c.delete("/api/v1/models/iris/aliases/staging").status_code == 204
    actor = f"key:{keys.key_id_of(admin)}(adm)"
    events = c.get("/api/v1/audit", params={"actor": actor}).json()
    actions = [e["action"] for e in reversed(events)]
    assert actions == [
        "key.create",
        "key.create",
        "key.revoke",
        "key.rotate",
        "version.register",
        "alias.set",
        "alias.set",
        "alias.rollback",
        "alias.delete",
    ]
    assert all(e["actor"] == actor for e in events)
    rollback = next(e for e in events if e["action"] == "alias.rollback")
    assert rollback["details"]["from_version"] == 1 and rollback["details"]["to_version"] == 3
    assert c.get("/api/v1/audit", params={"target": "model:iris@"}).json()[0]["action"] == "alias.delete"


def test_load_and_unload_are_audited(public: tuple[TestClient, KeyService]) -> None:
    c, keys = public
    _, loader = keys.create("ops", ["models:load"])
    h = {"Authorization": f"Bearer {loader}"}
    assert c.post("/v2/repository/models/iris/unload", headers=h).status_code == 200
    assert c.post("/v2/repository/models/iris/load", headers=h).status_code == 200
    _, admin = keys.create("adm", ["admin"])
    events = c.get(
        "/api/v1/audit", params={"target": "model:iris"}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert [(e["action"], e["actor"]) for e in events.json()[:2]] == [
        ("model.load", f"key:{keys.key_id_of(loader)}(ops)"),
        ("model.unload", f"key:{keys.key_id_of(loader)}(ops)"),
    ]


def test_redis_down_fails_closed_with_503(settings: Settings, iris_registry: Registry) -> None:
    from modelhost.gateway.limits import RedisBackend

    app = create_app(settings, registry=iris_registry, limits_backend=RedisBackend("redis://127.0.0.1:1/0"))
    keys = KeyService(iris_registry.session, settings)
    _, limited = keys.create("svc", ["infer"], limits={"rpm": 100})
    with TestClient(app) as c:
        r = c.post("/v2/models/iris/infer", json=ROW, headers={"Authorization": f"Bearer {limited}"})
        assert r.status_code == 503 and "unreachable" in r.json()["error"]
        assert "MODELHOST_LIMITS_FAIL_OPEN" in r.json()["error"]
        # keys without limits and anonymous local calls never touch the limits backend
        assert c.post("/v2/models/iris/infer", json=ROW).status_code == 200
