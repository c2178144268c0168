"""create_app(settings): the FastAPI application with every protocol mounted over one DataPlane."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelhost import __version__
from modelhost.config import Settings
from modelhost.dataplane.plane import DataPlane
from modelhost.dataplane.repository import ModelRepository
from modelhost.registry import Registry
from modelhost.serving.errors import install_error_handlers
from modelhost.serving.limits import BodySizeLimit
from modelhost.serving.rest import admin, v2

log = logging.getLogger(__name__)


def create_app(settings: Settings, registry: Registry | None = None) -> FastAPI:
    """Build the app. The registry (and its migrations) is opened at start-up unless one is given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reg = registry or Registry(settings)
        reg.store.remove_stale_temp()
        plane = DataPlane(reg, ModelRepository(reg, settings), settings)
        app.state.plane = plane
        if settings.load_on_start:
            for failure in await plane.load_defaults():
                log.warning("model not loaded at start-up: %s", failure)
        plane.started = True
        try:
            yield
        finally:
            plane.started = False
            await plane.repository.unload_all()
            if registry is None:
                reg.close()

    app = FastAPI(
        title="modelhost",
        version=__version__,
        description="Model registry and serving: Open Inference Protocol v2 and a registry admin API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(v2.router)
    app.include_router(admin.router)
    return app
