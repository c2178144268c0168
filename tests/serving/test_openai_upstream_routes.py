"""/v1 routes around upstream models without a running upstream: the gateway's reservation is given
back on every failure (a concurrency-1 key is never left holding its slot), and failures are counted
per model/version. The proxying itself is tested against a real server in tests/e2e/test_upstream.py."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.gateway.keys import KeyService
from modelhost.registry import Registry
from modelhost.serving.app import create_app

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def test_failures_give_the_reservation_back(settings: Settings, registry: Registry, tmp_path: Path) -> None:
    manifest = tmp_path / "down.json"
    manifest.write_text(
        json.dumps(
            {"format": "openai-upstream", "base_url": _dead_url(), "model": "m", "connect_timeout_s": 2}
        )
    )
    registry.register_version("down", manifest)
    s = settings.model_copy(update={"auth": "keys"})
    _, token = KeyService(registry.session, s).create(
        "one-at-a-time", ["infer", "models:read"], limits={"concurrency": 1}
    )
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(s, registry=registry)) as c:
        assert [m["id"] for m in c.get("/v1/models", headers=headers).json()["data"]] == ["down"]
        for _ in range(3):  # a leaked slot would turn the second request into a 429
            r = c.post("/v1/chat/completions", json={"model": "nope", **CHAT}, headers=headers)
            assert r.status_code == 404 and r.json()["error"]["param"] == "model"
            r = c.post("/v1/chat/completions", json={"model": "down", **CHAT}, headers=headers)
            assert r.status_code == 502, r.text
            assert r.json()["error"]["code"] == "upstream_unavailable"
            assert "cannot be reached" in r.json()["error"]["message"]
            r = c.post("/v1/embeddings", json={"model": "down", "input": "x"}, headers=headers)
            assert r.status_code == 400 and "embeddings capability" in r.json()["error"]["message"]
            r = c.post("/v2/models/down/infer", json={"inputs": []}, headers=headers)
            assert r.status_code == 400
        metrics = c.get("/metrics").text
    assert 'modelhost_requests_total{model="down",protocol="openai",status="502",version="1"} 3.0' in metrics


def test_registered_through_the_admin_api(settings: Settings, registry: Registry, tmp_path: Path) -> None:
    from tests.conftest import make_admin_key

    manifest = {"format": "openai-upstream", "base_url": _dead_url(), "model": "m", "api_key_env": "UP_KEY"}
    headers = {"Authorization": f"Bearer {make_admin_key(registry, settings)}"}
    with TestClient(create_app(settings, registry=registry)) as c:
        files = {"file": ("remote.json", json.dumps(manifest).encode(), "application/json")}
        r = c.post("/api/v1/models/remote/versions", files=files, headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["runtime"] == "openai-upstream"
        assert r.json()["signature"]["extra"]["api_key"] == "env:UP_KEY"
        manifest["api_key"] = "sk-plain"
        files = {"file": ("remote.json", json.dumps(manifest).encode(), "application/json")}
        r = c.post("/api/v1/models/remote/versions", files=files, headers=headers)
        assert r.status_code == 400 and "plaintext secret" in r.json()["error"]
        assert "sk-plain" not in r.text
