"""Starting the gRPC service: disabled by port 0, optional when grpcio is missing."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from modelhost.config import Settings
from modelhost.dataplane.plane import DataPlane
from modelhost.dataplane.repository import ModelRepository
from modelhost.registry import Registry
from modelhost.serving import grpc as grpc_service
from modelhost.serving.grpc.server import grpc_address


def _plane(registry: Registry, settings: Settings) -> DataPlane:
    return DataPlane(registry, ModelRepository(registry, settings), settings)


def test_port_zero_starts_nothing(registry: Registry, settings: Settings) -> None:
    assert asyncio.run(grpc_service.start_if_enabled(_plane(registry, settings), settings)) is None


def test_without_grpcio_http_still_serves(
    registry: Registry, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)  # makes `import grpc` raise ImportError
    monkeypatch.delitem(sys.modules, "modelhost.serving.grpc.server", raising=False)
    s = settings.model_copy(update={"grpc_port": 1})
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(grpc_service.start_if_enabled(_plane(registry, s), s)) is None
    assert "install modelhost[grpc]" in caplog.text


def test_ipv6_hosts_are_bracketed() -> None:
    assert grpc_address("::", 8001) == "[::]:8001"
    assert grpc_address("127.0.0.1", 8001) == "127.0.0.1:8001"
