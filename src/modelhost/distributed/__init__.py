"""Scale-out backends: where the data plane's models run (``MODELHOST_BACKEND``)."""

from __future__ import annotations

from modelhost.config import Settings
from modelhost.dataplane.repository import ModelRepository
from modelhost.monitoring.metrics import Metrics
from modelhost.registry import Registry


def make_repository(registry: Registry, settings: Settings, metrics: Metrics) -> ModelRepository:
    """The model repository of the configured backend; Ray is imported only when it is chosen."""
    if settings.backend == "ray":
        from modelhost.distributed.ray_serve import RayModelRepository

        return RayModelRepository(registry, settings, metrics)
    return ModelRepository(registry, settings, metrics)
