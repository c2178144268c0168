"""create_app(settings): the FastAPI application with every protocol mounted over one DataPlane."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import Receive, Scope, Send

from modelhost import __version__
from modelhost.config import Settings
from modelhost.console import routes as console
from modelhost.dataplane.batching import Activity
from modelhost.dataplane.plane import DataPlane
from modelhost.distributed import make_repository
from modelhost.gateway.limits import Backend
from modelhost.gateway.service import Gateway, resolve_auth_mode
from modelhost.monitoring import tracing
from modelhost.monitoring.metrics import Metrics
from modelhost.monitoring.tracing import TracingMiddleware
from modelhost.registry import Registry
from modelhost.serving import grpc as grpc_service
from modelhost.serving.edge import EdgeMiddleware, RequestIds
from modelhost.serving.errors import install_error_handlers
from modelhost.serving.rest import admin, console_api, explain, gateway_admin, ops, tasks, v2
from modelhost.serving.rest.openai import routes as openai_routes
from modelhost.serving.rest.tasks_fast import TaskFastPath
from modelhost.serving.rest.v2_fast import InferFastPath
from modelhost.serving.rest.v2_protocol import InferenceRequestModel

log = logging.getLogger(__name__)


class FastPath(Protocol):
    """A hot path answered ahead of FastAPI's stack and router (``rest/v2_fast.py``,
    ``rest/tasks_fast.py``): ``match`` is None for a request it leaves to FastAPI."""

    def match(self, scope: Scope) -> Any: ...

    async def handle(self, scope: Scope, receive: Receive, send: Send, match: Any) -> None: ...


class ModelhostApp(FastAPI):
    """The FastAPI app, except that the OIP infer hot path and POST /v1/translations are answered
    before FastAPI's own middleware stack and router (``fast_paths``: same checks, headers, errors and
    metrics)."""

    fast_paths: tuple[FastPath, ...] = ()
    activity: Activity | None = None  # the plane's count of requests in flight (set at start-up)
    # ``modelhost serve``: after the start-up loads, move every object alive out of the collector's
    # reach (``gc.freeze``), as the CLI does before the server starts (not in tests or embedders).
    freeze_after_start = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        activity = self.activity
        if activity is None or scope["type"] != "http":
            await self._dispatch(scope, receive, send)
            return
        with activity:
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        for fast in self.fast_paths:
            if (match := fast.match(scope)) is not None:
                await fast.handle(scope, receive, send, match)
                return
        await super().__call__(scope, receive, send)

    async def route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own handling (middleware stack, router): where a fast path hands a request on."""
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, registry: Registry | None = None, *, limits_backend: Backend | None = None
) -> ModelhostApp:
    """Build the app. The registry (and its migrations) is opened at start-up unless one is given."""
    resolve_auth_mode(settings)  # refuse auth=none off loopback before anything starts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reg = registry or Registry(settings)
        reg.store.remove_stale_temp()
        plane = DataPlane(reg, make_repository(reg, settings, Metrics()), settings)
        app.state.plane = plane
        if isinstance(app, ModelhostApp):
            app.activity = plane.activity
        gateway = Gateway(reg, settings, limits_backend)
        gateway.metrics = plane.metrics
        app.state.gateway = gateway
        log.info("auth mode: %s", gateway.mode)
        if settings.load_on_start:
            for failure in await plane.load_defaults():
                log.warning("model not loaded at start-up: %s", failure)
        if getattr(app, "freeze_after_start", False):
            # The models just loaded (their libraries' modules, tokenizers, ...: tens of thousands of
            # objects) live as long as the server: a full collection, which a model's own allocations
            # trigger now and then, need not scan them. Whisper served a 3 s clip in 463 ms against 397
            # ms called directly (+88 ms of CPU per request) before this.
            gc.collect()
            gc.freeze()
        grpc_server = await grpc_service.start_if_enabled(plane, settings)
        plane.started = True
        flusher = asyncio.create_task(gateway.run_flusher())
        try:
            yield
        finally:
            plane.started = False
            if grpc_server is not None:
                await grpc_server.stop()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await gateway.close()
            await plane.close()
            if registry is None:
                reg.close()

    app = ModelhostApp(
        title="modelhost",
        version=__version__,
        description="Model registry and serving: Open Inference Protocol v2, an OpenAI-compatible API (/v1) "
        "and a registry admin API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    ids = RequestIds()
    app.add_middleware(
        EdgeMiddleware, ids=ids, max_bytes=settings.max_body_bytes, access_log=settings.access_log
    )
    otel = tracing.tracer() if settings.otel_enabled else None
    if otel is not None:
        app.add_middleware(TracingMiddleware, tracer=otel)
    if settings.infer_fast_path:  # OIP infer and POST /v1/translations: same behaviour, ahead of FastAPI
        edge = (ids, settings.max_body_bytes, settings.access_log, otel)
        app.fast_paths = (InferFastPath(app, *edge), TaskFastPath(app, app.route, *edge))
    app.include_router(v2.router)
    app.include_router(admin.router)
    app.include_router(gateway_admin.router)
    app.include_router(ops.router)
    app.include_router(openai_routes.router)
    app.include_router(explain.router)
    app.include_router(tasks.router)
    app.include_router(console_api.router)
    app.include_router(console.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The published spec: bodies read by hand (infer) are declared, and FastAPI's 422 shape is
    removed because every validation error is answered as a 400 in the protocol's own shape."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    request_schema = InferenceRequestModel.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(request_schema.pop("$defs", {}))
    components["InferenceRequestModel"] = request_schema
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema


def app_from_env() -> FastAPI:
    """Factory for running under uvicorn directly (TLS flags, several workers):
    ``uvicorn --factory modelhost.serving.app:app_from_env``."""
    return create_app(Settings())
