"""The openai-upstream manifest: detection, validation, key references (never a plaintext secret),
registration through the CLI, and how upstream answers map to modelhost errors.

Proxying itself is tested against a real second server in tests/e2e/test_upstream.py."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from modelhost.cli import app
from modelhost.config import Settings
from modelhost.errors import (
    EncryptionError,
    InvalidInput,
    ModelNotReady,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from modelhost.gateway.crypto import cipher_from_settings, generate_key
from modelhost.registry import Registry
from modelhost.registry.formats import GRAPH, OPENAI_UPSTREAM, detect_format
from modelhost.runtimes.upstream import UpstreamRuntime


def _manifest(tmp_path: Path, **fields: object) -> Path:
    doc = {"format": "openai-upstream", "base_url": "http://127.0.0.1:9/v1/", "model": "llama", **fields}
    path = tmp_path / "up.json"
    path.write_text(json.dumps(doc))
    return path


def test_detected_by_content_and_graphs_stay_graphs(tmp_path: Path) -> None:
    assert detect_format(_manifest(tmp_path)) == OPENAI_UPSTREAM
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps({"nodes": []}))
    assert detect_format(graph) == GRAPH


def test_registered_with_an_env_reference(registry: Registry, tmp_path: Path) -> None:
    info = registry.register_version(
        "remote", _manifest(tmp_path, api_key_env="VLLM_KEY", capabilities=["chat"])
    )
    assert info.runtime == UpstreamRuntime.name and info.format == OPENAI_UPSTREAM
    assert info.signature.extra == {
        "kind": OPENAI_UPSTREAM,
        "base_url": "http://127.0.0.1:9/v1",
        "upstream_model": "llama",
        "capabilities": ["chat"],
        "api_key": "env:VLLM_KEY",
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"api_key": "sk-live-123"}, "plaintext secret"),
        ({"base_url": "http://user:pw@host/v1"}, "must not carry credentials"),
        ({"base_url": "ftp://host/v1"}, "http:// or https://"),
        ({"api_key_env": "NOT A NAME"}, "environment variable"),
        ({"capabilities": ["images"]}, "capabilities"),
        ({"timeout": 3}, "timeout"),
        ({"api_key_env": "A", "api_key_sealed": "mhsec1:x:y"}, "not both"),
    ],
)
def test_bad_manifests_are_refused(
    registry: Registry, tmp_path: Path, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        registry.register_version("remote", _manifest(tmp_path, **fields))


def test_sealed_key_opens_only_with_the_registry_key(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", encryption_key=generate_key(), grpc_port=0)
    cipher = cipher_from_settings(settings)
    assert cipher is not None
    token = cipher.seal("sk-upstream-secret")
    assert "sk-upstream-secret" not in token
    reg = Registry(settings)
    info = reg.register_version("remote", _manifest(tmp_path, api_key_sealed=token))
    assert info.signature.extra["api_key"] == "sealed"
    assert "sk-upstream-secret" not in json.dumps(info.to_dict()) and token not in json.dumps(info.to_dict())
    runtime = UpstreamRuntime(reg.artifact_path(info), info.signature, settings)
    runtime.load()
    assert runtime.client().headers["authorization"] == "Bearer sk-upstream-secret"
    reg.close()
    other = Settings(home=tmp_path / "other", encryption_key=generate_key(), grpc_port=0)
    with pytest.raises(EncryptionError):
        UpstreamRuntime.inspect(_manifest(tmp_path, api_key_sealed=token), other)
    with pytest.raises(InvalidInput, match="MODELHOST_ENCRYPTION_KEY"):
        UpstreamRuntime.inspect(
            _manifest(tmp_path, api_key_sealed=token), Settings(home=tmp_path, grpc_port=0)
        )


def test_env_key_is_read_at_load(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _manifest(tmp_path, api_key_env="MH_TEST_UPSTREAM_KEY")
    runtime = UpstreamRuntime(path, UpstreamRuntime.inspect(path, settings), settings)
    monkeypatch.delenv("MH_TEST_UPSTREAM_KEY", raising=False)
    with pytest.raises(ModelNotReady, match="MH_TEST_UPSTREAM_KEY"):
        runtime.load()
    monkeypatch.setenv("MH_TEST_UPSTREAM_KEY", "k1")
    runtime.load()
    assert runtime.client().headers["authorization"] == "Bearer k1"
    with pytest.raises(InvalidInput, match="served on /v1"):
        runtime.predict({}, [])


def test_upstream_answers_map_to_modelhost_errors(tmp_path: Path, settings: Settings) -> None:
    path = _manifest(tmp_path)
    runtime = UpstreamRuntime(path, UpstreamRuntime.inspect(path, settings), settings)
    runtime.load()
    openai_400 = httpx.Response(
        400, json={"error": {"message": "bad n", "type": "invalid_request_error", "param": "n", "code": None}}
    )
    rejected = runtime._status_error(openai_400)
    assert isinstance(rejected, UpstreamRejected)
    assert (rejected.status_code, rejected.message, rejected.param) == (400, "upstream: bad n", "n")
    limited = runtime._status_error(httpx.Response(429, json={"error": "slow"}, headers={"Retry-After": "3"}))
    assert limited.status_code == 429 and getattr(limited, "headers", None) == {"retry-after": "3"}
    assert isinstance(runtime._status_error(httpx.Response(401, text="no")), UpstreamUnavailable)
    assert runtime._status_error(httpx.Response(500, text="boom")).status_code == 502
    assert runtime._transport_error(httpx.ReadTimeout("slow")).status_code == 504
    assert isinstance(runtime._transport_error(httpx.ReadTimeout("slow")), UpstreamTimeout)
    assert runtime._transport_error(httpx.ConnectError("refused")).status_code == 502


def test_cli_upstream_add(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELHOST_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MODELHOST_ENCRYPTION_KEY", raising=False)
    runner = CliRunner()
    args = ["upstream", "add", "remote", "--base-url", "http://127.0.0.1:9/v1", "--model", "llama"]
    r = runner.invoke(app, [*args, "--api-key-env", "K", "--alias", "production", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["runtime"] == UpstreamRuntime.name
    r = runner.invoke(app, [*args, "--api-key-stdin"], input="sk-1\n")
    assert r.exit_code == 1 and "MODELHOST_ENCRYPTION_KEY" in r.output
    monkeypatch.setenv("MODELHOST_ENCRYPTION_KEY", generate_key())
    r = runner.invoke(app, [*args, "-c", "embeddings", "--api-key-stdin", "--json"], input="sk-1\n")
    assert r.exit_code == 0, r.output
    record = json.loads(r.output)
    assert record["version"] == 2 and "sk-1" not in r.output
    assert record["signature"]["extra"]["capabilities"] == ["embeddings"]
