"""Registry records (frozen dataclasses handed out by the Registry) and name/version parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelhost.errors import InvalidInput, VersionNotFound
from modelhost.registry.tables import ModelVersion
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
    kind: str = "set"

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "reason": self.reason,
            "kind": self.kind,
            "at": self.at.isoformat(),
        }


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


def version_info(v: ModelVersion, model_name: str, aliases: tuple[str, ...] = ()) -> VersionInfo:
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


def check_json_dict(what: str, value: dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(f"{what} must be an object with string keys")
    return dict(value)


@dataclass(frozen=True)
class Canary:
    """Send ``percent`` % of the traffic for ``name@alias`` to ``version``."""

    version: int
    percent: float

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "percent": self.percent}


@dataclass(frozen=True)
class DeploymentInfo:
    """Serving settings of one model; ``None`` means "use the server default"."""

    model: str
    max_batch_size: int | None = None
    max_wait_ms: float | None = None
    workers: int | None = None
    canaries: dict[str, Canary] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_batch_size": self.max_batch_size,
            "max_wait_ms": self.max_wait_ms,
            "workers": self.workers,
            "canaries": {a: c.to_dict() for a, c in self.canaries.items()},
        }
