"""Deployments: per-model serving settings (batching, worker processes) and canary traffic splits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from modelhost.errors import InvalidInput, VersionNotFound
from modelhost.registry.core import RegistryCore, audit
from modelhost.registry.records import Canary, DeploymentInfo, check_alias_name, parse_version
from modelhost.registry.tables import Deployment, ModelVersion, utcnow

MAX_BATCH_SIZE = 4096
MAX_WAIT_MS = 10_000.0
MAX_WORKERS = 64


def _info(name: str, row: Deployment | None) -> DeploymentInfo:
    if row is None:
        return DeploymentInfo(model=name)
    canaries = {a: Canary(int(c["version"]), float(c["percent"])) for a, c in (row.canaries or {}).items()}
    return DeploymentInfo(name, row.max_batch_size, row.max_wait_ms, row.workers, canaries)


class DeploymentsMixin(RegistryCore):
    def get_deployment(self, name: str) -> DeploymentInfo:
        with self.session() as s:
            model = self._model(s, name)
            return _info(name, s.scalar(select(Deployment).where(Deployment.model_id == model.id)))

    def set_deployment(
        self,
        name: str,
        *,
        max_batch_size: int | None = None,
        max_wait_ms: float | None = None,
        workers: int | None = None,
        actor: str = "",
    ) -> DeploymentInfo:
        """Change serving settings; arguments left ``None`` keep their current value."""
        if max_batch_size is not None and not 1 <= max_batch_size <= MAX_BATCH_SIZE:
            raise InvalidInput(f"max_batch_size must be between 1 and {MAX_BATCH_SIZE}, got {max_batch_size}")
        if max_wait_ms is not None and not 0 <= max_wait_ms <= MAX_WAIT_MS:
            raise InvalidInput(f"max_wait_ms must be between 0 and {MAX_WAIT_MS:g}, got {max_wait_ms}")
        if workers is not None and not 0 <= workers <= MAX_WORKERS:
            raise InvalidInput(f"workers must be between 0 and {MAX_WORKERS}, got {workers}")
        updates: dict[str, Any] = {
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            "workers": workers,
        }
        with self.session() as s:
            row = self._deployment_row(s, name)
            changes = {}
            for key, value in updates.items():
                if value is not None:
                    changes[key] = {"from": getattr(row, key), "to": value}
                    setattr(row, key, value)
            row.updated_at, row.updated_by = utcnow(), actor
            audit(s, actor, "deployment.set", f"model:{name}", changes=changes)
            s.commit()
            return _info(name, row)

    def set_canary(
        self, name: str, alias: str, version: int | str, percent: float, *, actor: str = ""
    ) -> DeploymentInfo:
        """Send ``percent`` % of ``name@alias`` traffic to ``version`` (0 removes the split)."""
        check_alias_name(alias)
        number = parse_version(version)
        if not 0 <= percent <= 100:
            raise InvalidInput(f"canary percent must be between 0 and 100, got {percent}")
        with self.session() as s:
            model = self._model(s, name, lock=True)
            exists = s.scalar(
                select(ModelVersion.id).where(
                    ModelVersion.model_id == model.id, ModelVersion.version == number
                )
            )
            if exists is None:
                raise VersionNotFound(f"model '{name}' has no version {number}")
            row = self._deployment_row(s, name)
            canaries = dict(row.canaries or {})
            if percent == 0:
                canaries.pop(alias, None)
            else:
                canaries[alias] = {"version": number, "percent": float(percent)}
            row.canaries = canaries
            row.updated_at, row.updated_by = utcnow(), actor
            audit(s, actor, "canary.set", f"model:{name}@{alias}", version=number, percent=float(percent))
            s.commit()
            return _info(name, row)

    def clear_canary(self, name: str, alias: str, *, actor: str = "") -> DeploymentInfo:
        with self.session() as s:
            row = self._deployment_row(s, name)
            removed = (row.canaries or {}).get(alias)
            row.canaries = {a: c for a, c in (row.canaries or {}).items() if a != alias}
            row.updated_at, row.updated_by = utcnow(), actor
            audit(s, actor, "canary.clear", f"model:{name}@{alias}", removed=removed)
            s.commit()
            return _info(name, row)

    def _deployment_row(self, s: Any, name: str) -> Deployment:
        model = self._model(s, name, lock=True)
        row = s.scalar(select(Deployment).where(Deployment.model_id == model.id))
        if row is None:
            row = Deployment(model_id=model.id, canaries={}, updated_at=utcnow())
            s.add(row)
        return row
