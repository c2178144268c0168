"""Aliases: point, protect, delete, history, rollback."""

from __future__ import annotations

from sqlalchemy import select

from modelhost.errors import AliasNotFound, ProtectedAlias, VersionNotFound
from modelhost.registry.core import RegistryCore, audit
from modelhost.registry.records import AliasEvent, AliasInfo, check_alias_name, parse_version
from modelhost.registry.tables import Alias, AliasHistory, ModelVersion, utcnow


class AliasesMixin(RegistryCore):
    def get_alias(self, name: str, alias: str) -> AliasInfo:
        with self.session() as s:
            model = self._model(s, name)
            row = s.scalar(select(Alias).where(Alias.model_id == model.id, Alias.name == alias))
            if row is None:
                raise AliasNotFound(f"model '{name}' has no alias '{alias}'")
            return AliasInfo(
                name, row.name, row.target.version, row.protected, row.updated_at, row.updated_by
            )

    def list_aliases(self, name: str) -> list[AliasInfo]:
        with self.session() as s:
            model = self._model(s, name)
            rows = s.scalars(select(Alias).where(Alias.model_id == model.id).order_by(Alias.name)).all()
            return [
                AliasInfo(name, a.name, a.target.version, a.protected, a.updated_at, a.updated_by)
                for a in rows
            ]

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | str,
        *,
        actor: str = "",
        reason: str = "",
        force: bool = False,
        protect: bool | None = None,
        kind: str = "set",
    ) -> AliasInfo:
        """Point ``alias`` at ``version``; a protected alias moves (or loses protection) only with force."""
        check_alias_name(alias)
        number = parse_version(version)
        with self.session() as s:
            model = self._model(s, name, lock=True)
            target = s.scalar(
                select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == number)
            )
            if target is None:
                raise VersionNotFound(f"model '{name}' has no version {number}")
            row = s.scalar(select(Alias).where(Alias.model_id == model.id, Alias.name == alias))
            previous = row.target.version if row is not None else None
            moving = previous != number or protect is False
            if row is not None and row.protected and not force and moving:
                raise ProtectedAlias(
                    f"alias '{alias}' of '{name}' is protected (now version {previous}); "
                    'moving or unprotecting it needs force (CLI: --force, API: "force": true)'
                )
            now = utcnow()
            if row is None:
                row = Alias(model_id=model.id, name=alias, version_id=target.id, protected=bool(protect))
                s.add(row)
            else:
                row.version_id = target.id
                if protect is not None:
                    row.protected = protect
            row.updated_at, row.updated_by = now, actor
            action = "alias.rollback" if kind == "rollback" else "alias.set"
            audit(
                s,
                actor,
                action,
                f"model:{name}@{alias}",
                from_version=previous,
                to_version=number,
                reason=reason,
            )
            if previous != number:
                s.add(
                    AliasHistory(
                        model_id=model.id,
                        alias=alias,
                        from_version=previous,
                        to_version=number,
                        actor=actor,
                        reason=reason,
                        at=now,
                        kind=kind,
                    )
                )
            s.commit()
            return AliasInfo(name, alias, number, row.protected, now, actor)

    def delete_alias(
        self, name: str, alias: str, *, actor: str = "", reason: str = "", force: bool = False
    ) -> None:
        with self.session() as s:
            model = self._model(s, name, lock=True)
            row = s.scalar(select(Alias).where(Alias.model_id == model.id, Alias.name == alias))
            if row is None:
                raise AliasNotFound(f"model '{name}' has no alias '{alias}'")
            if row.protected and not force:
                raise ProtectedAlias(f"alias '{alias}' of '{name}' is protected; deleting it needs force")
            s.add(
                AliasHistory(
                    model_id=model.id,
                    alias=alias,
                    from_version=row.target.version,
                    to_version=None,
                    actor=actor,
                    reason=reason,
                    at=utcnow(),
                    kind="delete",
                )
            )
            audit(
                s,
                actor,
                "alias.delete",
                f"model:{name}@{alias}",
                from_version=row.target.version,
                reason=reason,
            )
            s.delete(row)
            s.commit()

    def alias_history(self, name: str, alias: str) -> list[AliasEvent]:
        with self.session() as s:
            model = self._model(s, name)
            rows = s.scalars(
                select(AliasHistory)
                .where(AliasHistory.model_id == model.id, AliasHistory.alias == alias)
                .order_by(AliasHistory.id)
            ).all()
            if (
                not rows
                and s.scalar(select(Alias).where(Alias.model_id == model.id, Alias.name == alias)) is None
            ):
                raise AliasNotFound(f"model '{name}' has no alias '{alias}' and never had one")
            return [
                AliasEvent(r.alias, r.from_version, r.to_version, r.actor, r.reason, r.at, r.kind)
                for r in rows
            ]

    def rollback_alias(self, name: str, alias: str, *, actor: str = "", reason: str = "") -> AliasInfo:
        """Move ``alias`` back to the version it pointed at before its latest move.

        Rollbacks stack: rolling back twice after 1 -> 2 -> 3 returns to 1, not to 3. Rolling back a
        protected alias needs no force, since it returns to a version that alias already served.
        """
        stack: list[int] = []
        for event in self.alias_history(name, alias):
            if event.kind == "rollback":
                if stack:
                    stack.pop()
            elif event.to_version is not None:
                stack.append(event.to_version)
            else:
                stack.clear()
        current = self.get_alias(name, alias).version
        if len(stack) < 2:
            raise AliasNotFound(f"alias '{alias}' of '{name}' has no earlier version to roll back to")
        target = stack[-2]
        return self.set_alias(
            name,
            alias,
            target,
            actor=actor,
            reason=reason or f"rollback from {current}",
            force=True,
            kind="rollback",
        )
