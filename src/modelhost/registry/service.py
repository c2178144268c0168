"""The registry API: register immutable versions, move aliases (with history and protection), resolve.

This is the only module that writes registry tables; CLI, SDK and server all go through it.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelhost import __version__
from modelhost.config import Settings
from modelhost.errors import (
    AliasNotFound,
    InvalidInput,
    ModelNotFound,
    ProtectedAlias,
    VersionNotFound,
)
from modelhost.registry.db import make_engine, make_sessionmaker, migrate
from modelhost.registry.formats import ONNX, SKOPS, detect_format
from modelhost.registry.store import ArtifactStore
from modelhost.registry.tables import Alias, AliasHistory, Model, ModelVersion, utcnow
from modelhost.runtimes.base import Signature

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
DEFAULT_ALIAS = "production"


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: int
    format: str
    runtime: str
    artifact_uri: str
    sha256: str
    size_bytes: int
    signature: Signature
    metrics: dict[str, Any]
    params: dict[str, Any]
    tags: dict[str, Any]
    lineage: dict[str, Any]
    description: str
    created_by: str
    created_at: datetime
    aliases: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "format": self.format,
            "runtime": self.runtime,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "signature": self.signature.to_dict(),
            "metrics": self.metrics,
            "params": self.params,
            "tags": self.tags,
            "lineage": self.lineage,
            "description": self.description,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    task: str | None
    created_at: datetime
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "task": self.task,
            "created_at": self.created_at.isoformat(),
            "latest_version": self.latest_version,
            "aliases": self.aliases,
        }


@dataclass(frozen=True)
class AliasInfo:
    model: str
    name: str
    version: int
    protected: bool
    updated_at: datetime
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.name,
            "version": self.version,
            "protected": self.protected,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class AliasEvent:
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


def audit(s: Session, actor: str, action: str, target: str, **details: Any) -> None:
    """Audit entry in the same transaction as the change (imported late: gateway imports registry)."""
    from modelhost.gateway.audit import record

    record(s, actor, action, target, **details)


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name@alias`` into (name, alias); a plain name gives (name, None)."""
    name, sep, alias = ref.partition("@")
    if sep and not alias:
        raise InvalidInput(f"model reference '{ref}' has an empty alias after '@'")
    return name, (alias if sep else None)


def check_model_name(name: str) -> None:
    if not MODEL_NAME_RE.match(name):
        raise InvalidInput(
            f"invalid model name '{name}': use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def check_alias_name(alias: str) -> None:
    if not ALIAS_RE.match(alias):
        raise InvalidInput(
            f"invalid alias '{alias}': use 1-64 lowercase letters, digits, '_' or '-', starting with a letter"
        )


def parse_version(version: str | int) -> int:
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise VersionNotFound(f"version '{version}' does not exist: versions are positive integers") from None
    if number < 1:
        raise VersionNotFound(f"version '{version}' does not exist: versions are positive integers")
    return number


def _version_info(v: ModelVersion, model_name: str, aliases: tuple[str, ...] = ()) -> VersionInfo:
    return VersionInfo(
        model=model_name,
        version=v.version,
        format=v.format,
        runtime=v.runtime,
        artifact_uri=v.artifact_uri,
        sha256=v.sha256,
        size_bytes=v.size_bytes,
        signature=Signature.from_dict(v.signature),
        metrics=dict(v.metrics),
        params=dict(v.params),
        tags=dict(v.tags),
        lineage=dict(v.lineage),
        description=v.description,
        created_by=v.created_by,
        created_at=v.created_at,
        aliases=aliases,
    )


def _check_json_dict(what: str, value: dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{what} must be an object with string keys")
    return dict(value)


class Registry:
    """Registry service over one database and one artifact store."""

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

    def register_version(
        self,
        name: str,
        path: str | Path,
        *,
        format: str | None = None,
        convert_onnx: bool = False,
        description: str = "",
        metrics: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
        task: str | None = None,
        actor: str = "",
    ) -> VersionInfo:
        """Validate an artifact (safe format, loadable, signature), store it pinned, add a version."""
        check_model_name(name)
        metrics, params = _check_json_dict("metrics", metrics), _check_json_dict("params", params)
        tags, lineage = _check_json_dict("tags", tags), _check_json_dict("lineage", lineage)
        path = Path(path)
        detected = detect_format(path)
        if format is not None and format != detected:
            raise InvalidInput(f"--format {format} was given but {path.name} is a {detected} file")
        lineage.setdefault("source", str(path))
        lineage["modelhost_version"] = __version__
        with tempfile.TemporaryDirectory(prefix="modelhost-register-") as tmp:
            if convert_onnx:
                if detected != SKOPS:
                    raise InvalidInput(f"--convert-onnx converts scikit-learn (skops) files, not {detected}")
                from modelhost.optimize.onnx_export import sklearn_to_onnx
                from modelhost.registry.store import sha256_file
                from modelhost.runtimes.sklearn import load_skops

                lineage["converted_from"] = {"format": SKOPS, "sha256": sha256_file(path)}
                path = sklearn_to_onnx(load_skops(path, self.settings), Path(tmp) / f"{path.stem}.onnx")
                detected = ONNX
            # Imported here: runtimes import registry.formats, so a module-level import would be circular.
            from modelhost.runtimes import runtime_for_format

            runtime_cls = runtime_for_format(detected)
            signature = runtime_cls.inspect(path, self.settings)
            stored = self.store.put(path)
        for _attempt in range(5):
            with self.session() as s:
                model = s.scalar(select(Model).where(Model.name == name))
                if model is None:
                    model = Model(name=name, description="", task=task)
                    s.add(model)
                    s.flush()
                elif task and not model.task:
                    model.task = task
                number = (
                    s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id))
                    or 0
                ) + 1
                row = ModelVersion(
                    model_id=model.id,
                    version=number,
                    format=detected,
                    runtime=runtime_cls.name,
                    artifact_uri=stored.uri,
                    sha256=stored.sha256,
                    size_bytes=stored.size_bytes,
                    signature=signature.to_dict(),
                    metrics=metrics,
                    params=params,
                    tags=tags,
                    lineage=lineage,
                    description=description,
                    created_by=actor,
                    created_at=utcnow(),
                )
                s.add(row)
                audit(s, actor, "version.register", f"model:{name}/{number}", sha256=stored.sha256)
                try:
                    s.commit()
                except IntegrityError:
                    s.rollback()  # another writer took this number (or created the model); try again
                    continue
                return _version_info(row, name)
        raise InvalidInput(f"could not allocate a version number for '{name}' (too many concurrent writers)")

    def list_models(self) -> list[ModelInfo]:
        with self.session() as s:
            models = s.scalars(select(Model).order_by(Model.name)).all()
            return [self._model_info(s, m) for m in models]

    def _model_info(self, s: Session, m: Model) -> ModelInfo:
        latest = s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == m.id))
        aliases = {
            a: v
            for a, v in s.execute(
                select(Alias.name, ModelVersion.version)
                .join(ModelVersion, Alias.version_id == ModelVersion.id)
                .where(Alias.model_id == m.id)
            ).all()
        }
        return ModelInfo(m.name, m.description, m.task, m.created_at, latest, aliases)

    def get_model(self, name: str) -> ModelInfo:
        with self.session() as s:
            return self._model_info(s, self._model(s, name))

    def list_versions(self, name: str) -> list[VersionInfo]:
        with self.session() as s:
            model = self._model(s, name)
            by_version = self._aliases_by_version(s, model.id)
            rows = s.scalars(
                select(ModelVersion).where(ModelVersion.model_id == model.id).order_by(ModelVersion.version)
            ).all()
            return [_version_info(v, name, tuple(sorted(by_version.get(v.version, [])))) for v in rows]

    def get_version(self, name: str, version: int | str) -> VersionInfo:
        number = parse_version(version)
        with self.session() as s:
            model = self._model(s, name)
            row = s.scalar(
                select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == number)
            )
            if row is None:
                known = s.scalars(select(ModelVersion.version).where(ModelVersion.model_id == model.id)).all()
                raise VersionNotFound(
                    f"model '{name}' has no version {number} (versions: {', '.join(map(str, known)) or 'none'})"
                )
            by_version = self._aliases_by_version(s, model.id)
            return _version_info(row, name, tuple(sorted(by_version.get(number, []))))

    def resolve(self, ref: str, version: str | int | None = None) -> VersionInfo:
        """Resolve ``name``, ``name@alias`` or ``name`` + version to one version.

        A plain name means the 'production' alias if set, else the latest version.
        """
        name, alias = parse_model_ref(ref)
        if alias is not None and version is not None:
            raise InvalidInput(f"give either an alias or a version for '{name}', not both")
        if version is not None:
            return self.get_version(name, version)
        if alias is not None:
            return self.get_version(name, self.get_alias(name, alias).version)
        with self.session() as s:
            model = self._model(s, name)
            prod = s.scalar(
                select(ModelVersion.version)
                .join(Alias, Alias.version_id == ModelVersion.id)
                .where(Alias.model_id == model.id, Alias.name == DEFAULT_ALIAS)
            )
            latest = s.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == model.id))
        if prod is None and latest is None:
            raise VersionNotFound(f"model '{name}' has no versions yet")
        return self.get_version(name, prod if prod is not None else latest)  # type: ignore[arg-type]

    def artifact_path(self, v: VersionInfo) -> Path:
        """A local path to the version's artifact, verified against its sha256 pin."""
        return self.store.fetch(v.artifact_uri, v.sha256)

    # --- aliases ------------------------------------------------------------------------------

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
    ) -> AliasInfo:
        """Point ``alias`` at ``version``; a protected alias moves (or loses protection) only with force."""
        check_alias_name(alias)
        number = parse_version(version)
        with self.session() as s:
            model = self._model(s, name)
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
            action = "alias.rollback" if previous is not None and number < previous else "alias.set"
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
                    )
                )
            s.commit()
            return AliasInfo(name, alias, number, row.protected, now, actor)

    def delete_alias(
        self, name: str, alias: str, *, actor: str = "", reason: str = "", force: bool = False
    ) -> None:
        with self.session() as s:
            model = self._model(s, name)
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
            return [AliasEvent(r.alias, r.from_version, r.to_version, r.actor, r.reason, r.at) for r in rows]
