"""A real gRPC server on a free port, started by the app's lifespan over the iris registry."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from fastapi.testclient import TestClient

from modelhost.config import Settings
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from modelhost.serving.grpc.service import InferenceStub
from tests.services.ports import free_port


@pytest.fixture
def grpc_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"grpc_port": free_port()})


@pytest.fixture
def app_client(grpc_settings: Settings, iris_registry: Registry) -> Iterator[TestClient]:
    with TestClient(create_app(grpc_settings, registry=iris_registry)) as c:
        yield c


@pytest.fixture
def stub(app_client: TestClient, grpc_settings: Settings) -> Iterator[InferenceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_settings.grpc_port}") as channel:
        yield InferenceStub(channel)
