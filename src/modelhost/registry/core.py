"""RegistryCore: the database engine, sessions and artifact store shared by the registry's parts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
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

    def _model(self, s: Session, name: str, *, lock: bool = False) -> Model:
        """The model row; ``lock`` takes its row lock (``SELECT ... FOR UPDATE``) until the commit.

        Writers that read, then change a model's aliases or deployment lock it first, so two server
        replicas promoting at once serialise instead of losing an update or a history entry. SQLite
        has no row locks: there a no-op UPDATE as the transaction's first statement takes the
        database's write lock (waiting up to the busy timeout), so the reads that follow are current.
        """
        query = select(Model).where(Model.name == name)
        if lock and s.get_bind().dialect.name == "sqlite":
            no_op = update(Model).where(Model.name == name).values(name=Model.name)
            s.execute(no_op.execution_options(synchronize_session=False))
        model = s.scalar(query.with_for_update() if lock else query)
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
