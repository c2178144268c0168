"""Operations routes: Prometheus ``/metrics``, and (admin) drift reports and server status."""

from __future__ import annotations

import os
import resource
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from modelhost.errors import NotFound
from modelhost.monitoring.metrics import CONTENT_TYPE
from modelhost.serving.deps import Admin, ModelRef, Plane, SettingsDep
from modelhost.serving.rest.v2_protocol import ERROR_RESPONSES, ErrorResponse

router = APIRouter(tags=["Operations"], responses=ERROR_RESPONSES)
_ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorResponse} for s in (400, 401, 403, 404)}


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(plane: Plane, settings: SettingsDep) -> Response:
    if not settings.metrics_enabled:
        raise NotFound("metrics are disabled (MODELHOST_METRICS_ENABLED=false)")
    return Response(plane.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/api/v1/drift/{model_ref}", responses=_ERRORS)
async def drift(
    model_ref: ModelRef,
    plane: Plane,
    _actor: Admin,
    version: str | None = None,
    limit: int = Query(default=5000, ge=1, le=100_000),
) -> dict[str, Any]:
    """Drift of the version ``model_ref`` (name or name@alias) serves, against its reference data."""
    return (await plane.drift(model_ref, version, limit)).to_dict()


@router.get("/api/v1/status", responses=_ERRORS)
async def status(plane: Plane, _actor: Admin) -> dict[str, Any]:
    """Loaded models (state, in-flight, batching, workers) and this process's memory."""
    models: list[dict[str, Any]] = []
    for e in plane.repository.loaded():
        runtime = e.runtime
        models.append({
            "model": e.info.model,
            "version": e.info.version,
            "state": str(e.state),
            "runtime": e.info.runtime,
            "explicit": e.explicit,
            "inflight": e.inflight,
            "load_seconds": round(e.load_seconds, 3),
            "batching": None if e.batcher is None else {
                "max_batch_size": e.batcher.max_batch_size, "queue_depth": e.batcher.queue_depth,
                "batches": e.batcher.stats.batches, "rows": e.batcher.stats.rows,
            },
            "workers": getattr(runtime, "pids", lambda: [])(),
        })  # fmt: skip
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "pid": os.getpid(),
        "ready": plane.ready(),
        "max_rss_mb": round(rss_kb / 1024, 1),
        "models": models,
    }
