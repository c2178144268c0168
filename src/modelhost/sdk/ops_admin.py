"""SDK operations on the admin API (/api/v1): registry, aliases, deployments, canaries, API keys,
usage, audit, drift and server status. Each is a flow (see ``spec.py``) shared by both clients."""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import orjson

from modelhost.sdk.spec import Flow, Spec, drop_none, q
from modelhost.sdk.types import (
    AliasEvent,
    AliasRecord,
    AuditEntry,
    Deployment,
    DriftReport,
    KeyRecord,
    ModelRecord,
    Record,
    ServerStatus,
    UsageRecord,
    VersionRecord,
)

R = TypeVar("R", bound=Record)
Progress = Callable[[int, int], None]


def one(cls: type[R]) -> Callable[[httpx.Response], R]:
    return lambda resp: cls.parse(orjson.loads(resp.content))


def many(cls: type[R]) -> Callable[[httpx.Response], list[R]]:
    return lambda resp: [cls.parse(item) for item in orjson.loads(resp.content)]


def _m(name: str) -> str:
    return f"/api/v1/models/{q(name)}"


# --- models and versions --------------------------------------------------------------------------------


def registered_models() -> Flow[list[ModelRecord]]:
    """Every registered model with its latest version and aliases."""
    return (yield Spec("GET", "/api/v1/models", parse=many(ModelRecord)))


def get_model(name: str) -> Flow[ModelRecord]:
    return (yield Spec("GET", _m(name), parse=one(ModelRecord)))


def versions(name: str) -> Flow[list[VersionRecord]]:
    """The versions of ``name``, oldest first."""
    return (yield Spec("GET", f"{_m(name)}/versions", parse=many(VersionRecord)))


def get_version(name: str, version: int | str) -> Flow[VersionRecord]:
    """One version: signature, metrics, params, lineage, sha256."""
    return (yield Spec("GET", f"{_m(name)}/versions/{q(version)}", parse=one(VersionRecord)))


class _ProgressReader:
    """A binary file whose reads report (bytes read, total) to a callback, for upload progress."""

    def __init__(self, f: IO[bytes], total: int, progress: Progress) -> None:
        self._f, self._total, self._progress, self._done = f, total, progress, 0

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self._done += len(data)
        self._progress(self._done, self._total)
        return data

    def fileno(self) -> int:
        return self._f.fileno()

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def rewind(self) -> None:
        self._f.seek(0)
        self._done = 0


def register(
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
    progress: Progress | None = None,
) -> Flow[VersionRecord]:
    """Upload an artifact as a new version of ``name``; returns the version record. A directory
    (e.g. a transformers model) is sent as a tar archive; ``task`` picks its pipeline.

    ``progress(sent, total)`` is called as the file is read for upload (e.g. to drive a progress bar);
    the server then checks, pins and stores it before answering."""
    path = Path(path)
    form: dict[str, str] = {"description": description, "convert_onnx": str(convert_onnx).lower()}
    if format:
        form["format"] = format
    if task:
        form["task"] = task
    for key, value in (("metrics", metrics), ("params", params), ("tags", tags), ("lineage", lineage)):
        if value is not None:
            form[key] = orjson.dumps(value).decode()
    if path.is_dir():
        with tempfile.TemporaryDirectory(prefix="modelhost-upload-") as tmp:
            archive = Path(tmp) / f"{path.name}.tar"
            with tarfile.open(archive, "w") as tar:
                for file in sorted(p for p in path.rglob("*") if p.is_file()):
                    rel = file.relative_to(path)
                    if not any(part.startswith(".") for part in rel.parts):
                        tar.add(file, arcname=f"{path.name}/{rel.as_posix()}")
            return (yield from _upload(name, archive, form, progress))
    return (yield from _upload(name, path, form, progress))


def _upload(name: str, path: Path, form: dict[str, str], progress: Progress | None) -> Flow[VersionRecord]:
    with open(path, "rb") as f:
        reader = _ProgressReader(f, path.stat().st_size, progress or (lambda done, total: None))
        return (
            yield Spec(
                "POST",
                f"{_m(name)}/versions",
                data=form,
                files={"file": (path.name, reader, "application/octet-stream")},
                parse=one(VersionRecord),
                rewind=reader.rewind,
            )
        )


# --- aliases ----------------------------------------------------------------------------------------------


def aliases(name: str) -> Flow[list[AliasRecord]]:
    return (yield Spec("GET", f"{_m(name)}/aliases", parse=many(AliasRecord)))


def set_alias(
    name: str, alias: str, version: int, *, force: bool = False, protect: bool | None = None, reason: str = ""
) -> Flow[AliasRecord]:
    """Point ``alias`` at ``version``; a server serving ``name@alias`` hot-swaps to it."""
    body = {"version": version, "force": force, "protect": protect, "reason": reason}
    return (yield Spec("PUT", f"{_m(name)}/aliases/{q(alias)}", json=body, parse=one(AliasRecord)))


def delete_alias(name: str, alias: str, *, force: bool = False) -> Flow[None]:
    params = {"force": "true"} if force else None
    yield Spec("DELETE", f"{_m(name)}/aliases/{q(alias)}", params=params)


def alias_history(name: str, alias: str) -> Flow[list[AliasEvent]]:
    return (yield Spec("GET", f"{_m(name)}/aliases/{q(alias)}/history", parse=many(AliasEvent)))


def rollback_alias(name: str, alias: str, *, reason: str = "") -> Flow[AliasRecord]:
    """Move ``alias`` back to the version it pointed at before its latest move."""
    path = f"{_m(name)}/aliases/{q(alias)}/rollback"
    return (yield Spec("POST", path, json={"reason": reason}, parse=one(AliasRecord)))


# --- deployments and canaries -------------------------------------------------------------------------


def get_deployment(name: str) -> Flow[Deployment]:
    """Batching, workers and canaries of ``name`` (None = the server default)."""
    return (yield Spec("GET", f"{_m(name)}/deployment", parse=one(Deployment)))


def update_deployment(
    name: str,
    *,
    max_batch_size: int | None = None,
    max_wait_ms: float | None = None,
    workers: int | None = None,
) -> Flow[Deployment]:
    """Change how ``name`` is served; arguments left out keep their value."""
    body = drop_none({"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, "workers": workers})
    return (yield Spec("PATCH", f"{_m(name)}/deployment", json=body, parse=one(Deployment)))


def set_canary(name: str, alias: str, version: int, percent: float) -> Flow[Deployment]:
    """Send ``percent`` % of ``name@alias`` traffic to ``version``."""
    body = {"version": version, "percent": percent}
    return (yield Spec("PUT", f"{_m(name)}/canaries/{q(alias)}", json=body, parse=one(Deployment)))


def remove_canary(name: str, alias: str) -> Flow[Deployment]:
    return (yield Spec("DELETE", f"{_m(name)}/canaries/{q(alias)}", parse=one(Deployment)))


# --- gateway ----------------------------------------------------------------------------------------------


def create_key(
    name: str,
    scopes: Sequence[str],
    *,
    owner: str = "",
    expires_at: str | datetime | None = None,
    limits: dict[str, Any] | None = None,
) -> Flow[KeyRecord]:
    """Create an API key; the answer's ``key`` is the only time the secret is shown."""
    expiry = expires_at.isoformat() if isinstance(expires_at, datetime) else expires_at
    body = {
        "name": name,
        "scopes": list(scopes),
        "owner": owner,
        "expires_at": expiry,
        "limits": limits or {},
    }
    return (yield Spec("POST", "/api/v1/keys", json=body, parse=one(KeyRecord)))


def list_keys(include_revoked: bool = True) -> Flow[list[KeyRecord]]:
    params = {"include_revoked": str(include_revoked).lower()}
    return (yield Spec("GET", "/api/v1/keys", params=params, parse=many(KeyRecord)))


def get_key(key_id: str) -> Flow[KeyRecord]:
    return (yield Spec("GET", f"/api/v1/keys/{q(key_id)}", parse=one(KeyRecord)))


def revoke_key(key_id: str) -> Flow[KeyRecord]:
    return (yield Spec("POST", f"/api/v1/keys/{q(key_id)}/revoke", parse=one(KeyRecord)))


def rotate_key(key_id: str) -> Flow[KeyRecord]:
    """A new key (in ``key``) with the same name, scopes and limits; the old one is revoked."""
    return (yield Spec("POST", f"/api/v1/keys/{q(key_id)}/rotate", parse=one(KeyRecord)))


def _usage_params(**filters: str | None) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if v}


def usage(
    *, key_id: str | None = None, model: str | None = None, since: str | None = None, until: str | None = None
) -> Flow[list[UsageRecord]]:
    """Usage rows per key, model, version and day (days as YYYY-MM-DD)."""
    params = _usage_params(key_id=key_id, model=model, since=since, until=until)
    return (yield Spec("GET", "/api/v1/usage", params=params, parse=many(UsageRecord)))


def usage_csv(
    *, key_id: str | None = None, model: str | None = None, since: str | None = None, until: str | None = None
) -> Flow[str]:
    params = {**_usage_params(key_id=key_id, model=model, since=since, until=until), "format": "csv"}
    return (yield Spec("GET", "/api/v1/usage", params=params, parse=lambda r: r.text))


def audit(
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: str | datetime | None = None,
    limit: int = 100,
) -> Flow[list[AuditEntry]]:
    """Audit entries, newest first (``target`` is a prefix, e.g. ``model:iris``)."""
    when = since.isoformat() if isinstance(since, datetime) else since
    params: dict[str, Any] = {"limit": limit}
    params.update(_usage_params(actor=actor, action=action, target=target, since=when))
    return (yield Spec("GET", "/api/v1/audit", params=params, parse=many(AuditEntry)))


# --- operations -----------------------------------------------------------------------------------------


def drift(model: str, *, version: str | int | None = None, limit: int = 5000) -> Flow[DriftReport]:
    """Drift of the version ``model`` (name or name@alias) serves, against its reference data."""
    params = drop_none({"version": None if version is None else str(version), "limit": limit})
    return (yield Spec("GET", f"/api/v1/drift/{q(model, '@')}", params=params, parse=one(DriftReport)))


def status() -> Flow[ServerStatus]:
    """Loaded models (state, in flight, batching, workers) and the server's memory."""
    return (yield Spec("GET", "/api/v1/status", parse=one(ServerStatus)))


def metrics() -> Flow[str]:
    """The Prometheus exposition text of ``/metrics``."""
    return (yield Spec("GET", "/metrics", parse=lambda r: r.text))
