"""Named FastAPI dependencies; routes declare what they need instead of reaching into app.state."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from modelhost.config import Settings
from modelhost.dataplane.plane import DataPlane
from modelhost.errors import Forbidden, Unauthorized
from modelhost.registry import Registry


def get_plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.plane
    return plane


def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.plane.registry
    return registry


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def require_admin(request: Request) -> str:
    """Check the admin bearer token; returns the actor name recorded in the registry."""
    token = request.app.state.settings.admin_token
    if not token:
        raise Forbidden("the admin API is disabled: set MODELHOST_ADMIN_TOKEN on the server to enable it")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("missing admin credentials: send 'Authorization: Bearer <admin token>'")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("invalid admin token")
    return "admin"


Plane = Annotated[DataPlane, Depends(get_plane)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
Admin = Annotated[str, Depends(require_admin)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
