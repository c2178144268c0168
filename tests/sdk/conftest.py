"""The SDK against the real app in process: ``Client`` over Starlette's TestClient, ``AsyncClient``
over httpx's ASGITransport (with the app's lifespan run in the test's event loop), or, for the
session-scoped LLM/task apps, over a bridge to their TestClient."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from modelhost import AsyncClient, Client
from modelhost.config import Settings
from modelhost.registry import Registry
from modelhost.serving.app import create_app
from tests.conftest import make_admin_key

RunAsync = Callable[[Callable[[AsyncClient], Awaitable[Any]]], Any]


@pytest.fixture
def admin_key(settings: Settings, iris_registry: Registry) -> str:
    return make_admin_key(iris_registry, settings)


@pytest.fixture
def sdk(settings: Settings, iris_registry: Registry, admin_key: str) -> Iterator[Client]:
    with TestClient(create_app(settings, registry=iris_registry)) as http:
        yield Client("http://testserver", api_key=admin_key, http_client=http)


@pytest.fixture
def run_async(settings: Settings, iris_registry: Registry, admin_key: str) -> RunAsync:
    """Runs ``fn(async_client)`` in a fresh event loop against a fresh app (lifespan included)."""

    def run(fn: Callable[[AsyncClient], Awaitable[Any]]) -> Any:
        app = create_app(settings, registry=iris_registry)

        async def main() -> Any:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with AsyncClient("http://testserver", api_key=admin_key, transport=transport) as c:
                    return await fn(c)

        return asyncio.run(main())

    return run


class BridgeTransport(httpx.AsyncBaseTransport):
    """Async requests served by a running TestClient (its app lives in the TestClient's own loop)."""

    def __init__(self, client: TestClient) -> None:
        self._client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        resp = await asyncio.to_thread(
            self._client.request,
            request.method,
            str(request.url),
            content=request.content,
            headers=dict(request.headers),
        )
        return httpx.Response(resp.status_code, headers=resp.headers, content=resp.content)


def bridged(client: TestClient, fn: Callable[[AsyncClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with AsyncClient("http://testserver", transport=BridgeTransport(client)) as c:
            return await fn(c)

    return asyncio.run(main())
