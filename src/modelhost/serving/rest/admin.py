"""Admin REST API (/api/v1): registry reads and writes over HTTP, behind an admin API key.

Registering uploads the artifact as multipart form data; the server runs the same safety checks
as the CLI (safe format, trusted types, sha256 pin).
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from modelhost.errors import InvalidInput
from modelhost.serving.deps import Admin, AliasName, ModelName, Plane, RegistryDep
from modelhost.serving.rest.v2_protocol import ERROR_RESPONSES, ErrorResponse

router = APIRouter(prefix="/api/v1", tags=["Registry admin"], responses=ERROR_RESPONSES)
_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 409, 413)
}


class DeploymentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_batch_size: int | None = Field(default=None, ge=1, le=4096)
    max_wait_ms: float | None = Field(default=None, ge=0, le=10_000)
    workers: int | None = Field(default=None, ge=0, le=64)


class CanaryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    percent: float = Field(ge=0, le=100)


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = ""


class AliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    force: bool = False
    protect: bool | None = None
    reason: str = ""


def _json_field(name: str, raw: str | None) -> dict[str, Any] | None:
    if raw is None or raw == "":
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"form field '{name}' is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"form field '{name}' must be a JSON object")
    return value


def _unpack_directory(archive: Path) -> Path:
    """A model directory uploaded as an (uncompressed) tar: only regular files and folders, every
    path inside the archive; links, devices and paths escaping it are refused."""
    target = archive.with_suffix("")
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not (member.isfile() or member.isdir()):
                raise InvalidInput(f"archive member '{member.name}' is not a regular file or folder")
        try:
            tar.extractall(target, filter="data")  # refuses absolute paths and '..'
        except tarfile.FilterError as exc:
            raise InvalidInput(f"archive refused: {exc}") from None
    archive.unlink()
    entries = list(target.iterdir())
    # a tar of the folder itself (model/config.json, ...) or of its content (config.json, ...)
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target


@router.get("/models", responses=_ERRORS)
async def list_models(registry: RegistryDep, _actor: Admin) -> list[dict[str, Any]]:
    return [m.to_dict() for m in await anyio.to_thread.run_sync(registry.list_models)]


@router.get("/models/{name}", responses=_ERRORS)
async def get_model(name: ModelName, registry: RegistryDep, _actor: Admin) -> dict[str, Any]:
    return (await anyio.to_thread.run_sync(registry.get_model, name)).to_dict()


@router.get("/models/{name}/versions", responses=_ERRORS)
async def list_versions(name: ModelName, registry: RegistryDep, _actor: Admin) -> list[dict[str, Any]]:
    return [v.to_dict() for v in await anyio.to_thread.run_sync(registry.list_versions, name)]


@router.get("/models/{name}/versions/{version}", responses=_ERRORS)
async def get_version(name: ModelName, version: str, registry: RegistryDep, _actor: Admin) -> dict[str, Any]:
    return (await anyio.to_thread.run_sync(registry.get_version, name, version)).to_dict()


@router.post("/models/{name}/versions", status_code=201, responses=_ERRORS)
async def register_version(
    name: ModelName,
    registry: RegistryDep,
    actor: Admin,
    file: Annotated[
        UploadFile,
        File(description="The artifact: a file (skops, ONNX, ...) or a model directory as a .tar archive"),
    ],
    format: Annotated[str | None, Form()] = None,
    task: Annotated[
        str | None,
        Form(max_length=64, description="The model's task; for a transformers directory, its pipeline"),
    ] = None,
    convert_onnx: Annotated[bool, Form()] = False,
    description: Annotated[str, Form()] = "",
    metrics: Annotated[str | None, Form(description="JSON object")] = None,
    params: Annotated[str | None, Form(description="JSON object")] = None,
    tags: Annotated[str | None, Form(description="JSON object")] = None,
    lineage: Annotated[str | None, Form(description="JSON object")] = None,
) -> dict[str, Any]:
    filename = Path(file.filename or "artifact").name or "artifact"
    with tempfile.TemporaryDirectory(prefix="modelhost-upload-") as tmp:
        path = Path(tmp) / filename
        with open(path, "wb") as f:
            while chunk := await file.read(1024 * 1024):
                f.write(chunk)
        if path.suffix == ".tar" and tarfile.is_tarfile(path):
            path = await anyio.to_thread.run_sync(_unpack_directory, path)
        info = await anyio.to_thread.run_sync(
            lambda: registry.register_version(
                name,
                path,
                format=format,
                convert_onnx=convert_onnx,
                description=description,
                metrics=_json_field("metrics", metrics),
                params=_json_field("params", params),
                tags=_json_field("tags", tags),
                lineage={"source": f"upload:{filename}", **(_json_field("lineage", lineage) or {})},
                task=task or None,
                actor=actor,
            )
        )
    return info.to_dict()


@router.get("/models/{name}/aliases", responses=_ERRORS)
async def list_aliases(name: ModelName, registry: RegistryDep, _actor: Admin) -> list[dict[str, Any]]:
    return [a.to_dict() for a in await anyio.to_thread.run_sync(registry.list_aliases, name)]


@router.put("/models/{name}/aliases/{alias}", responses=_ERRORS)
async def set_alias(
    name: ModelName, alias: AliasName, body: AliasUpdate, registry: RegistryDep, plane: Plane, actor: Admin
) -> dict[str, Any]:
    info = await anyio.to_thread.run_sync(
        lambda: registry.set_alias(
            name, alias, body.version, actor=actor, reason=body.reason, force=body.force, protect=body.protect
        )
    )
    await plane.on_registry_change(name)
    return info.to_dict()


@router.delete("/models/{name}/aliases/{alias}", status_code=204, responses=_ERRORS)
async def delete_alias(
    name: ModelName, alias: AliasName, registry: RegistryDep, plane: Plane, actor: Admin, force: bool = False
) -> None:
    await anyio.to_thread.run_sync(lambda: registry.delete_alias(name, alias, actor=actor, force=force))
    await plane.on_registry_change(name)


@router.get("/models/{name}/aliases/{alias}/history", responses=_ERRORS)
async def alias_history(
    name: ModelName, alias: AliasName, registry: RegistryDep, _actor: Admin
) -> list[dict[str, Any]]:
    return [e.to_dict() for e in await anyio.to_thread.run_sync(registry.alias_history, name, alias)]


@router.post("/models/{name}/aliases/{alias}/rollback", responses=_ERRORS)
async def rollback_alias(
    name: ModelName,
    alias: AliasName,
    registry: RegistryDep,
    plane: Plane,
    actor: Admin,
    body: Rollback | None = None,
) -> dict[str, Any]:
    reason = body.reason if body is not None else ""
    info = await anyio.to_thread.run_sync(
        lambda: registry.rollback_alias(name, alias, actor=actor, reason=reason)
    )
    await plane.on_registry_change(name)
    return info.to_dict()


@router.get("/models/{name}/deployment", responses=_ERRORS)
async def get_deployment(name: ModelName, registry: RegistryDep, _actor: Admin) -> dict[str, Any]:
    return (await anyio.to_thread.run_sync(registry.get_deployment, name)).to_dict()


@router.patch("/models/{name}/deployment", responses=_ERRORS)
async def update_deployment(
    name: ModelName, body: DeploymentUpdate, registry: RegistryDep, plane: Plane, actor: Admin
) -> dict[str, Any]:
    info = await anyio.to_thread.run_sync(
        lambda: registry.set_deployment(
            name,
            max_batch_size=body.max_batch_size,
            max_wait_ms=body.max_wait_ms,
            workers=body.workers,
            actor=actor,
        )
    )
    await plane.on_registry_change(name)
    return info.to_dict()


@router.put("/models/{name}/canaries/{alias}", responses=_ERRORS)
async def set_canary(
    name: ModelName, alias: AliasName, body: CanaryUpdate, registry: RegistryDep, plane: Plane, actor: Admin
) -> dict[str, Any]:
    info = await anyio.to_thread.run_sync(
        lambda: registry.set_canary(name, alias, body.version, body.percent, actor=actor)
    )
    await plane.on_registry_change(name)
    return info.to_dict()


@router.delete("/models/{name}/canaries/{alias}", responses=_ERRORS)
async def clear_canary(
    name: ModelName, alias: AliasName, registry: RegistryDep, plane: Plane, actor: Admin
) -> dict[str, Any]:
    info = await anyio.to_thread.run_sync(lambda: registry.clear_canary(name, alias, actor=actor))
    await plane.on_registry_change(name)
    return info.to_dict()
