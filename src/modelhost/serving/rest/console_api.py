"""JSON routes the web console needs where the admin API has no equivalent (/api/v1/console/...).

Unlike /api/v1/models (admin only), the reads here are open to read-only keys (scope models:read),
so a read-only user sees what an admin sees but cannot act: every write still goes through the
admin API. Usage is per day for admins, and a non-admin key sees only its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query

from modelhost.console.live import ALL, history_for
from modelhost.gateway.keys import ApiKey
from modelhost.gateway.metering import UsageRecord
from modelhost.registry import Registry
from modelhost.serving.deps import CurrentKey, GatewayDep, ModelName, ModelRef, Plane, RegistryDep
from modelhost.serving.rest.v2_protocol import ERROR_RESPONSES, ErrorResponse

router = APIRouter(prefix="/api/v1/console", tags=["Console"], responses=ERROR_RESPONSES)
_ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorResponse} for s in (400, 401, 403, 404)}
_USAGE_FIELDS = ("requests", "input_tokens", "output_tokens", "rows", "errors", "cost")


@router.get("/session", responses=_ERRORS)
async def session(key: CurrentKey) -> dict[str, Any]:
    """Who the presented key is, and what the console may offer it (no secret, only the public id)."""
    return {
        "key_id": key.key_id,
        "name": key.name,
        "owner": key.owner,
        "scopes": list(key.scopes),
        "is_admin": key.is_admin,
        "can_read": key.can_read(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
    }


def _model_overview(registry: Registry, name: str, *, history: bool) -> dict[str, Any]:
    model = registry.get_model(name).to_dict()
    aliases = [a.to_dict() for a in registry.list_aliases(name)]
    if history:
        for alias in aliases:
            alias["history"] = [e.to_dict() for e in registry.alias_history(name, alias["alias"])]
    return {
        **model,
        "versions": [v.to_dict() for v in registry.list_versions(name)],
        "alias_list": aliases,
        "deployment": registry.get_deployment(name).to_dict(),
    }


@router.get("/models", responses=_ERRORS)
async def models(key: CurrentKey, registry: RegistryDep) -> list[dict[str, Any]]:
    """Every model with its versions, aliases and deployment settings (scope models:read)."""
    key.require_read()

    def read() -> list[dict[str, Any]]:
        return [_model_overview(registry, m.name, history=False) for m in registry.list_models()]

    return await anyio.to_thread.run_sync(read)


@router.get("/models/{name}", responses=_ERRORS)
async def model(name: ModelName, key: CurrentKey, registry: RegistryDep, plane: Plane) -> dict[str, Any]:
    """One model, with each alias's history and what this server has loaded of it."""
    key.require_read(name)
    overview = await anyio.to_thread.run_sync(lambda: _model_overview(registry, name, history=True))
    overview["loaded"] = [
        {"version": e.info.version, "state": str(e.state), "inflight": e.inflight, "runtime": e.info.runtime}
        for e in plane.repository.loaded()
        if e.info.model == name
    ]
    return overview


@router.get("/drift/{model_ref}", responses=_ERRORS)
async def drift(
    model_ref: ModelRef,
    key: CurrentKey,
    plane: Plane,
    version: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 5000,
) -> dict[str, Any]:
    """The drift report of /api/v1/drift, readable with scope models:read."""
    key.require_read(model_ref)
    return (await plane.drift(model_ref, version, limit)).to_dict()


def _daily(records: list[UsageRecord], since: str, until: str) -> list[dict[str, Any]]:
    """One row per day from ``since`` to ``until`` (days without usage are zeros, so charts have no gaps)."""
    days: dict[str, dict[str, Any]] = {}
    day = datetime.fromisoformat(since).date()
    last = datetime.fromisoformat(until).date()
    while day <= last:
        days[day.isoformat()] = {"day": day.isoformat(), **dict.fromkeys(_USAGE_FIELDS, 0)}
        day += timedelta(days=1)
    for r in records:
        row = days.get(r.day)
        if row is not None:
            for f in _USAGE_FIELDS:
                row[f] += getattr(r, f)
    for row in days.values():
        row["cost"] = round(row["cost"], 6)
    return list(days.values())


def _per(records: list[UsageRecord], attr: str) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for r in records:
        row = totals.setdefault(getattr(r, attr), {attr: getattr(r, attr), **dict.fromkeys(_USAGE_FIELDS, 0)})
        for f in _USAGE_FIELDS:
            row[f] += getattr(r, f)
    for row in totals.values():
        row["cost"] = round(row["cost"], 6)
    return sorted(totals.values(), key=lambda row: -row["requests"])


@router.get("/usage", responses=_ERRORS)
async def usage(
    key: CurrentKey,
    gateway: GatewayDep,
    days: Annotated[int, Query(ge=1, le=366, description="how many days back, today included")] = 30,
    model: str | None = None,
) -> dict[str, Any]:
    """Usage and cost per day, per key and per model over the last ``days`` UTC days. An admin sees
    every key; any other key sees its own usage only."""
    today = datetime.now(UTC).date()
    since, until = (today - timedelta(days=days - 1)).isoformat(), today.isoformat()
    own: ApiKey | None = None if key.is_admin else key
    await anyio.to_thread.run_sync(gateway.meter.flush)
    records = await anyio.to_thread.run_sync(
        lambda: gateway.meter.report(
            key_id=own.key_id if own else None, model=model, since=since, until=until
        )
    )
    return {
        "scope": "own" if own else "all",
        "since": since,
        "until": until,
        "days": _daily(records, since, until),
        "per_key": _per(records, "key_id"),
        "per_model": _per(records, "model"),
    }


@router.get("/metrics", responses=_ERRORS)
async def live_metrics(key: CurrentKey, plane: Plane, model: str = ALL) -> dict[str, Any]:
    """Requests/s, errors/s, tokens/s and p50/p99 latency over time, from this server's own metrics
    (sampled when polled, at most once a second; the last 300 samples are kept)."""
    key.require_read(None if model == ALL else model)
    return history_for(plane.metrics).series(model)
