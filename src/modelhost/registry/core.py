"""RegistryCore: the database engine, sessions and artifact store shared by the registry's parts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelhost.config import Settings
from modelhost.errors import ModelNotFound
from modelhost.registry.db import make_engine, make_sessionmaker, migrate
from modelhost.registry.store import ArtifactStore
from modelhost.registry.tables import Alias, Model, ModelVersion


def audit(s: Session, actor: str, action: str, target: str, **details: Any) -> None:
    """Audit entry in the same transaction as the change (imported late: gateway imports registry)."""
    from modelhost.gateway.audit import record

    record(s, actor, action, target, **details)


class RegistryCore:
    """Engine, sessions, artifact store and the lookups every registry part needs."""

    def __init__(self, settings: Settings, *, run_migrations: bool = True) -> None:
        self.settings = settings
        self.engine = make_engine(settings.resolved_database_url)
        if run_migrations:
            migrate(self.engine)
        self._sessions = make_sessionmaker(self.engine)
        from modelhost.gateway.crypto import cipher_from_settings

        self.store = ArtifactStore(
            settings.resolved_artifact_url, settings.resolved_cache_dir, cipher=cipher_from_settings(settings)
        )

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return self._sessions()

    # --- models and versions ------------------------------------------------------------------

    def _model(self, s: Session, name: str) -> Model:
        model = s.scalar(select(Model).where(Model.name == name))
        if model is None:
            raise ModelNotFound(f"model '{name}' is not registered")
        return model

    def _aliases_by_version(self, s: Session, model_id: int) -> dict[int, list[str]]:
        rows = s.execute(
            select(Alias.name, ModelVersion.version)
            .join(ModelVersion, Alias.version_id == ModelVersion.id)
            .where(Alias.model_id == model_id)
        ).all()
        out: dict[int, list[str]] = {}
        for alias, version in rows:
            out.setdefault(version, []).append(alias)
        return out
