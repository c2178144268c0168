"""The audit log: who registered, promoted, rolled back or deleted what, who created or revoked keys.

Entries are written in the same transaction as the change they describe (``record`` takes the
caller's session), so a change without its audit entry cannot be committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelhost.gateway.tables import AuditEntry
from modelhost.registry.tables import utcnow


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details,
        }


def record(s: Session, actor: str, action: str, target: str, **details: Any) -> None:
    """Add an audit entry to the caller's open transaction."""
    s.add(AuditEntry(at=utcnow(), actor=actor or "unknown", action=action, target=target, details=details))


class AuditLog:
    """Queries over the append-only audit log."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self._sessions = sessions

    def record(self, actor: str, action: str, target: str, **details: Any) -> None:
        """Write one entry in its own transaction (for actions that change nothing else)."""
        with self._sessions() as s:
            record(s, actor, action, target, **details)
            s.commit()

    def query(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Newest first; ``target`` matches a prefix (``model:iris`` finds every iris action)."""
        stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(max(1, min(limit, 10_000)))
        if actor:
            stmt = stmt.where(AuditEntry.actor == actor)
        if action:
            stmt = stmt.where(AuditEntry.action == action)
        if target:
            stmt = stmt.where(AuditEntry.target.startswith(target, autoescape=True))
        if since is not None:
            stmt = stmt.where(AuditEntry.at >= since)
        with self._sessions() as s:
            return [
                AuditEvent(e.id, e.at, e.actor, e.action, e.target, dict(e.details)) for e in s.scalars(stmt)
            ]
