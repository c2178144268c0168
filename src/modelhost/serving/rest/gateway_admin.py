"""Admin REST API of the gateway (/api/v1): API keys, usage reports, the audit log. Admin key only."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from modelhost.errors import InvalidInput
from modelhost.gateway.metering import to_csv
from modelhost.serving.deps import Admin, GatewayDep
from modelhost.serving.rest.v2_protocol import ERROR_RESPONSES, ErrorResponse

router = APIRouter(prefix="/api/v1", tags=["Gateway admin"], responses=ERROR_RESPONSES)
_ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorResponse} for s in (400, 401, 403, 404)}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(
        min_length=1, description="admin, models:read, models:load, infer, infer:<pattern>"
    )
    owner: str = ""
    expires_at: datetime | None = Field(default=None, description="ISO 8601 with a timezone")
    limits: dict[str, Any] = Field(default_factory=dict, description="rpm, tpm, concurrency, quotas, budgets")


@router.post("/keys", status_code=201, responses=_ERRORS)
async def create_key(body: KeyCreate, gateway: GatewayDep, actor: Admin) -> dict[str, Any]:
    """Create a key. The ``key`` field of the answer is the only time the secret is shown."""
    key, raw = await anyio.to_thread.run_sync(
        lambda: gateway.keys.create(
            body.name,
            body.scopes,
            owner=body.owner,
            expires_at=body.expires_at,
            limits=body.limits,
            actor=actor,
        )
    )
    return {"key": raw, **key.to_dict()}


@router.get("/keys", responses=_ERRORS)
async def list_keys(gateway: GatewayDep, _actor: Admin, include_revoked: bool = True) -> list[dict[str, Any]]:
    keys = await anyio.to_thread.run_sync(lambda: gateway.keys.list(include_revoked=include_revoked))
    return [k.to_dict() for k in keys]


@router.get("/keys/{key_id}", responses=_ERRORS)
async def get_key(key_id: str, gateway: GatewayDep, _actor: Admin) -> dict[str, Any]:
    return (await anyio.to_thread.run_sync(gateway.keys.get, key_id)).to_dict()


@router.post("/keys/{key_id}/revoke", responses=_ERRORS)
async def revoke_key(key_id: str, gateway: GatewayDep, actor: Admin) -> dict[str, Any]:
    """Revoke now: the next request with this key gets 401 (on every replica within MODELHOST_KEY_CACHE_S)."""
    return (await anyio.to_thread.run_sync(lambda: gateway.keys.revoke(key_id, actor=actor))).to_dict()


@router.post("/keys/{key_id}/rotate", status_code=201, responses=_ERRORS)
async def rotate_key(key_id: str, gateway: GatewayDep, actor: Admin) -> dict[str, Any]:
    """A new key with the same name, scopes and limits; the old one is revoked."""
    key, raw = await anyio.to_thread.run_sync(lambda: gateway.keys.rotate(key_id, actor=actor))
    return {"key": raw, **key.to_dict()}


def _day(name: str, value: str | None) -> str | None:
    if value is not None and not _DAY.match(value):
        raise InvalidInput(f"{name} must be a day as YYYY-MM-DD, got {value!r}")
    return value


@router.get(
    "/usage",
    responses={
        **_ERRORS,
        200: {
            "description": "Usage records",
            "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}},
        },
    },
)
async def usage(
    gateway: GatewayDep,
    _actor: Admin,
    key_id: str | None = None,
    model: str | None = None,
    since: Annotated[str | None, Query(description="first day, YYYY-MM-DD")] = None,
    until: Annotated[str | None, Query(description="last day, YYYY-MM-DD")] = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    """Usage per key, model, version and day (flushes this server's pending counters first)."""
    since, until = _day("since", since), _day("until", until)
    await anyio.to_thread.run_sync(gateway.meter.flush)
    records = await anyio.to_thread.run_sync(
        lambda: gateway.meter.report(key_id=key_id, model=model, since=since, until=until)
    )
    if format == "csv":
        return Response(to_csv(records), media_type="text/csv")
    return [r.to_dict() for r in records]


@router.get("/audit", responses=_ERRORS)
async def audit(
    gateway: GatewayDep,
    _actor: Admin,
    actor: str | None = None,
    action: str | None = None,
    target: Annotated[str | None, Query(description="prefix, e.g. model:iris or key:")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[dict[str, Any]]:
    """Audit entries, newest first."""
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since needs a timezone, e.g. 2026-11-25T00:00:00Z")
    events = await anyio.to_thread.run_sync(
        lambda: gateway.audit.query(actor=actor, action=action, target=target, since=since, limit=limit)
    )
    return [e.to_dict() for e in events]
