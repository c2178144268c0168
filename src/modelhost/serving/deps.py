"""Named FastAPI dependencies (all ``async def``: FastAPI runs plain ``def`` dependencies in a thread
pool, a hand-off that costs more than these lookups); routes declare what they need instead of reaching into app.state.

Auth and metering, for any protocol (OIP v2 here, OpenAI /v1 routes likewise, one line each):

- ``key: CurrentKey`` — the caller's verified API key (401 if missing/invalid where keys are required);
- ``actor: Admin`` — an admin key, as the actor name recorded in the registry and audit log (403 otherwise);
- ``usage: Metered`` — for routes with ``{model_name}`` in the path: scope check (403), rate limits and
  quotas (429 with Retry-After and x-ratelimit-*), usage metering; settles when the request ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from modelhost.config import Settings
from modelhost.dataplane.plane import DataPlane
from modelhost.errors import Forbidden, Unauthorized
from modelhost.gateway.keys import ApiKey
from modelhost.gateway.service import Gateway, Reservation
from modelhost.registry import Registry

# The scope key the edge middleware (serving/edge.py) reads, so headers reach responses routes build.
RATELIMIT_SCOPE_KEY = "modelhost.ratelimit_headers"


async def get_plane(request: Request) -> DataPlane:
    plane: DataPlane = request.app.state.plane
    return plane


async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.plane.registry
    return registry


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def presented_key(request: Request) -> str | None:
    """The API key from ``Authorization: Bearer <key>``, else ``X-API-Key`` or ``api-key``."""
    headers = request.headers
    return key_from_headers(headers.get("authorization"), headers.get("x-api-key") or headers.get("api-key"))


def key_from_headers(authorization: str | None, api_key: str | None) -> str | None:
    """``presented_key`` on header values already read (the OIP infer fast path reads raw ASGI headers)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("unsupported Authorization header: send 'Authorization: Bearer mh_live_...'")
        return value.strip()
    return api_key or None


async def admit_from_headers(
    scope: Any, gateway: Gateway, headers: dict[str, str], model: str, version: str = ""
) -> Reservation:
    """What ``authenticate`` + ``metered`` do, for the pure-ASGI fast paths that read raw headers:
    key check (401), scope (403), limits and quotas (429); the key id and x-ratelimit-* headers are
    left in the ASGI scope. The caller settles the reservation (``error`` set on failure)."""
    presented = key_from_headers(
        headers.get("authorization"), headers.get("x-api-key") or headers.get("api-key")
    )
    key = await gateway.authenticate(presented)
    scope[KEY_ID_SCOPE] = key.key_id
    key.require_infer(model)
    usage = await gateway.admit(key, model, version)
    if usage.headers:
        scope[RATELIMIT_SCOPE_KEY] = usage.headers
    return usage


# Declared only so the OpenAPI spec (and /docs' "Authorize" button) shows both ways to send a key;
# the headers are parsed by presented_key, which also refuses unsupported schemes with a 401.
_BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer mh_live_...")
_X_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: mh_live_...")


async def authenticate(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None,
    _x_api_key: Annotated[str | None, Depends(_X_API_KEY)] = None,
) -> ApiKey:
    """The caller's key: verified (401 if malformed, unknown, revoked or expired), or the anonymous
    caller when the server runs in auth mode ``none`` and no key was sent."""
    gateway: Gateway = request.app.state.gateway
    key = await gateway.authenticate(presented_key(request))
    request.scope[KEY_ID_SCOPE] = key.key_id  # labels 403/429 metrics with the key's public id
    return key


CurrentKey = Annotated[ApiKey, Depends(authenticate)]
KEY_ID_SCOPE = "modelhost.key_id"


async def require_admin(key: CurrentKey) -> str:
    """An admin key is required (even in auth mode ``none``); returns the actor name."""
    if key.key_id == "anonymous":
        raise Unauthorized(
            "the admin API needs an admin key: send 'Authorization: Bearer mh_live_...' "
            "(the first admin key is printed by 'modelhost init' or at the server's first start)"
        )
    if not key.is_admin:
        raise Forbidden(f"API key {key.key_id} has no admin scope")
    return key.actor


async def require_reader(request: Request, key: CurrentKey) -> ApiKey:
    """Model metadata and listings: scope models:read, or infer on the model in the path."""
    key.require_read(request.path_params.get("model_name"))
    return key


async def require_loader(key: CurrentKey) -> ApiKey:
    key.require_load()
    return key


@contextlib.asynccontextmanager
async def _metered(
    request: Request, key: ApiKey, model: str, version: str = ""
) -> AsyncIterator[Reservation]:
    """Scope check, admission (limits, quotas, budgets) and, at the end, settlement of one request."""
    key.require_infer(model)
    gateway: Gateway = request.app.state.gateway
    usage = await gateway.admit(key, model, version)
    if usage.headers:
        request.scope[RATELIMIT_SCOPE_KEY] = usage.headers
    try:
        yield usage
    except BaseException:
        usage.error = True
        raise
    finally:
        await usage.settle()


async def meter_model(request: Request, key: CurrentKey) -> AsyncIterator[Reservation]:
    """Metering for ``{model_name}`` routes (OIP v2)."""
    async with _metered(
        request, key, request.path_params["model_name"], request.path_params.get("model_version", "")
    ) as usage:
        yield usage


async def meter_task(request: Request, key: CurrentKey) -> AsyncIterator[Reservation | None]:
    """Scope check, admission and metering for task routes, whose model is named in the body
    (JSON or multipart ``model`` field). Without a model name the route's own validation answers 400."""
    model: Any = None
    if request.headers.get("content-type", "").startswith("multipart/"):
        model = (await request.form()).get("model")
    else:
        with contextlib.suppress(ValueError):
            body = await request.json()
            model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, str) or not model:
        yield None
        return
    async with _metered(request, key, model) as usage:
        yield usage


Plane = Annotated[DataPlane, Depends(get_plane)]
TaskMetered = Annotated[Reservation | None, Depends(meter_task)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
GatewayDep = Annotated[Gateway, Depends(get_gateway)]
Admin = Annotated[str, Depends(require_admin)]
Reader = Annotated[ApiKey, Depends(require_reader)]
Loader = Annotated[ApiKey, Depends(require_loader)]
Metered = Annotated[Reservation, Depends(meter_model)]


# Path parameters, validated before any lookup (a malformed one is a 400, an unknown one a 404).
ModelName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description="Model name.")]
ModelRef = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(@[a-z][a-z0-9_-]{0,63})?$",
        description="NAME or NAME@ALIAS.",
    ),
]
AliasName = Annotated[
    str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="Alias (production, staging...).")
]
