"""Shared fixtures: isolated settings (a temp home), small real models trained on scikit-learn data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from fastapi.testclient import TestClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelhost.config import Settings
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from tests.services.postgres import PostgresServer, unavailable_reason


@pytest.fixture(scope="session")
def iris_xy() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    return x, y


@pytest.fixture(scope="session")
def iris_model(iris_xy):  # type: ignore[no-untyped-def]
    x, y = iris_xy
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)


@pytest.fixture(scope="session")
def iris_skops(tmp_path_factory: pytest.TempPathFactory, iris_model) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("artifacts") / "iris.skops"
    sio.dump(iris_model, path)
    return path


@pytest.fixture(scope="session")
def regressor_skops(tmp_path_factory: pytest.TempPathFactory, iris_xy) -> Path:  # type: ignore[no-untyped-def]
    x, _ = iris_xy
    path = tmp_path_factory.mktemp("artifacts") / "reg.skops"
    sio.dump(LinearRegression().fit(x[:, :3], x[:, 3]), path)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # gRPC off: tests that want it pick a free port (the default 8001 may be taken on a shared machine).
    return Settings(home=tmp_path / "home", load_on_start=True, grpc_port=0)


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = Registry(settings)
    yield reg
    reg.close()


@pytest.fixture
def iris_registry(registry: Registry, iris_skops: Path) -> Registry:
    """iris v1 (skops, alias production) and v2 (ONNX, alias staging)."""
    registry.register_version("iris", iris_skops, metrics={"accuracy": 0.97})
    registry.set_alias("iris", "production", 1)
    registry.register_version("iris", iris_skops, convert_onnx=True)
    registry.set_alias("iris", "staging", 2)
    return registry


@pytest.fixture
def client(settings: Settings, iris_registry: Registry) -> Iterator[TestClient]:
    with TestClient(create_app(settings, registry=iris_registry)) as c:
        yield c


def make_admin_key(registry: Registry, settings: Settings) -> str:
    """A fresh admin API key (the secret, shown once) for tests that call the admin API."""
    from modelhost.gateway.keys import KeyService

    _, token = KeyService(registry.session, settings).create("test-admin", ["admin"])
    return str(token)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster for the whole run (skipped, with the reason, where none can start)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = PostgresServer()
    server.start()
    yield server
    server.stop()
