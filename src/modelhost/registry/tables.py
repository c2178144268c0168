"""SQLAlchemy tables of the registry. Schema changes go through Alembic (registry/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.types import DateTime as _DateTime
from sqlalchemy.types import TypeDecorator

from modelhost.errors import ImmutableVersion


def utcnow() -> datetime:
    return datetime.now(UTC)


class DateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them without a zone)."""

    impl = _DateTime(timezone=True)
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__()

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored in the registry; use timezone-aware UTC")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    task: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model", order_by="ModelVersion.version", cascade="all, delete-orphan"
    )
    aliases: Mapped[list[Alias]] = relationship(back_populates="model", cascade="all, delete-orphan")


class ModelVersion(Base):
    """One immutable version: its artifact is pinned by sha256 and never changes."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    format: Mapped[str] = mapped_column(String(32), nullable=False)
    runtime: Mapped[str] = mapped_column(String(32), nullable=False)
    artifact_uri: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    signature: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    created_by: Mapped[str] = mapped_column(String(128), default="", nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)

    model: Mapped[Model] = relationship(back_populates="versions")


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_alias_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), nullable=False)
    protected: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(128), default="", nullable=False)

    model: Mapped[Model] = relationship(back_populates="aliases")
    target: Mapped[ModelVersion] = relationship()


class AliasHistory(Base):
    """Append-only log of alias moves: who moved which alias from which version to which, and when."""

    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    alias: Mapped[str] = mapped_column(String(64), nullable=False)
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(128), default="", nullable=False)
    reason: Mapped[str] = mapped_column(Text, default="", nullable=False)
    # "set", "rollback" or "delete": rollback walks back over earlier rollbacks
    kind: Mapped[str] = mapped_column(String(16), default="set", nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


_IMMUTABLE_COLUMNS = (
    "model_id",
    "version",
    "format",
    "runtime",
    "artifact_uri",
    "sha256",
    "size_bytes",
    "signature",
    "metrics",
    "params",
    "lineage",
    "created_at",
    "created_by",
)


@event.listens_for(Session, "before_flush")
def _refuse_version_changes(session: Session, _ctx: object, _instances: object) -> None:
    """Versions are immutable: refuse any flush that edits a pinned column or deletes a version alone."""
    for obj in session.dirty:
        if isinstance(obj, ModelVersion) and session.is_modified(obj):
            state = obj.__dict__.get("_sa_instance_state")
            changed = [
                c for c in _IMMUTABLE_COLUMNS if state is not None and state.attrs[c].history.has_changes()
            ]
            if changed:
                raise ImmutableVersion(
                    f"model versions are immutable; refused change of {', '.join(changed)} "
                    f"on version {obj.version}: register a new version instead"
                )


class Deployment(Base):
    """How a model is served: batching, worker processes and canary traffic splits per alias."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    max_batch_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_wait_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    workers: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # alias -> {"version": int, "percent": float}
    canaries: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(128), default="", nullable=False)


class ReferenceData(Base):
    """A sample of the data a version was trained on (and its predictions), the baseline for drift."""

    __tablename__ = "reference_data"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    input_name: Mapped[str] = mapped_column(String(128), nullable=False)
    features: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    sample: Mapped[list[list[Any]]] = mapped_column(JSON, nullable=False)
    predictions: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class PredictionLog(Base):
    """Sampled requests and answers per model version (for drift and debugging)."""

    __tablename__ = "prediction_log"
    __table_args__ = (Index("ix_prediction_log_model_version_at", "model", "version", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(128), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


# The gateway's tables (keys, usage, audit) live in the same database and metadata.
from modelhost.gateway import tables as _gateway_tables  # noqa: E402, F401
