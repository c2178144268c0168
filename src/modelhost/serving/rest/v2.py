"""Open Inference Protocol v2 REST routes, including the model repository and binary tensor
extensions. Everything here is translation; the work happens in the DataPlane."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from modelhost.dataplane import codec
from modelhost.dataplane.types import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelhost.errors import InvalidInput, ModelNotReady
from modelhost.serving.deps import CurrentKey, GatewayDep, Loader, Metered, ModelRef, Plane, Reader
from modelhost.serving.errors import format_validation_errors
from modelhost.serving.responses import JSONBytes
from modelhost.serving.rest.v2_protocol import (
    ERROR_RESPONSES,
    ErrorResponse,
    InferenceRequestModel,
    InferenceResponseModel,
    ModelMetadataResponse,
    RepositoryIndexEntry,
    RepositoryIndexRequest,
    RepositoryLoadRequest,
    ServerMetadataResponse,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v2", tags=["Open Inference Protocol v2"], responses=ERROR_RESPONSES)
HEADER_LENGTH = "inference-header-content-length"
# Canary splits are sticky per routing key; every answer names the version that produced it.
ROUTING_KEY_HEADER = "x-modelhost-routing-key"
VERSION_HEADER = "x-modelhost-model-version"
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad request"},
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    403: {"model": ErrorResponse, "description": "The key's scopes do not allow this"},
    404: {"model": ErrorResponse, "description": "Unknown model or version"},
    503: {"model": ErrorResponse, "description": "Not ready"},
}
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequestModel"}},
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "JSON header (Inference-Header-Content-Length bytes) + binary tensors",
                }
            },
        },
    }
}


def _parse_json(raw: bytes | memoryview, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None


async def _optional_body(
    request: Request, model: type[RepositoryIndexRequest | RepositoryLoadRequest]
) -> Any:
    raw = await request.body()
    if not raw.strip():
        return model()
    try:
        return model.model_validate(_parse_json(raw, "request body"))
    except ValidationError as exc:
        raise InvalidInput(format_validation_errors(list(exc.errors()))) from None


def decode_infer_request(body: bytes, header_length: str | None) -> tuple[InferenceRequest, bool, set[str]]:
    """Parse an OIP infer body (JSON, or JSON header + binary tensors).

    Returns the request, whether all outputs should be binary, and the outputs asked for in binary.
    """
    binary = b""
    view = memoryview(body)
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise InvalidInput(
                f"Inference-Header-Content-Length must be an integer, got {header_length!r}"
            ) from None
        if not 0 < n <= len(body):
            raise InvalidInput(
                f"Inference-Header-Content-Length {n} is outside the body of {len(body)} bytes"
            )
        view, binary = view[:n], body[n:]
    obj = _parse_json(view, "request body")
    if not isinstance(obj, dict):
        raise InvalidInput("request body must be a JSON object with an 'inputs' list")
    try:
        req = InferenceRequestModel.model_validate(obj)
    except ValidationError as exc:
        raise InvalidInput(format_validation_errors(list(exc.errors()))) from None
    tensors: list[Tensor] = []
    offset = 0
    for inp in req.inputs:
        params = inp.parameters or {}
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(f"input '{inp.name}': binary_data_size must be a non-negative integer")
            if offset + size > len(binary):
                raise InvalidInput(
                    f"input '{inp.name}': binary data of {size} bytes runs past the request body"
                )
            array = codec.decode_binary(inp.name, inp.datatype, inp.shape, binary[offset : offset + size])
            offset += size
        else:
            if inp.data is None:
                raise InvalidInput(f"input '{inp.name}' has no 'data' (and no binary_data_size parameter)")
            array = codec.decode_json(inp.name, inp.datatype, inp.shape, inp.data)
        tensors.append(Tensor(inp.name, inp.datatype, tuple(inp.shape), array, params))
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} bytes of binary data follow the inputs but belong to none"
        )
    top = req.parameters or {}
    outputs = None
    binary_outputs: set[str] = set()
    if req.outputs is not None:
        outputs = [RequestedOutput(o.name, o.parameters or {}) for o in req.outputs]
        binary_outputs = {o.name for o in outputs if o.parameters.get("binary_data") is True}
    request = InferenceRequest(inputs=tensors, outputs=outputs, id=req.id, parameters=top)
    return request, top.get("binary_data_output") is True, binary_outputs


def encode_infer_response(resp: InferenceResponse, all_binary: bool, binary_outputs: set[str]) -> Response:
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for t in resp.outputs:
        if all_binary or t.name in binary_outputs:
            datatype, shape, raw = codec.encode_binary(t.data)
            outputs.append(
                {
                    "name": t.name,
                    "datatype": datatype,
                    "shape": shape,
                    "parameters": {"binary_data_size": len(raw)},
                }
            )
            chunks.append(raw)
        else:
            datatype, shape, data = codec.encode_json(t.data)
            outputs.append({"name": t.name, "datatype": datatype, "shape": shape, "data": data})
    body: dict[str, Any] = {
        "model_name": resp.model_name,
        "model_version": resp.model_version,
        "outputs": outputs,
    }
    if resp.id is not None:
        body["id"] = resp.id
    if resp.parameters:
        body["parameters"] = resp.parameters
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return Response(header, media_type="application/json")
    return Response(
        header + b"".join(chunks),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


# --- health and metadata -------------------------------------------------------------------------


@router.get("/health/live", responses=_ERRORS)
async def server_live(plane: Plane) -> dict[str, bool]:
    return {"live": plane.live()}


@router.get("/health/ready", responses=_ERRORS)
async def server_ready(plane: Plane) -> Response:
    if not plane.ready():
        failed = plane.failed_models() if plane.started else []
        if failed:
            raise ModelNotReady(f"models failed to load (MODELHOST_STRICT_READINESS): {'; '.join(failed)}")
        raise ModelNotReady("the server is starting: models are still loading")
    return JSONBytes({"ready": True})


@router.get("", response_model=ServerMetadataResponse)
async def server_metadata(plane: Plane, _key: CurrentKey) -> dict[str, Any]:
    return plane.server_metadata()


@router.get("/models/{model_name}", response_model=ModelMetadataResponse, responses=_ERRORS)
async def model_metadata(model_name: ModelRef, plane: Plane, _key: Reader) -> dict[str, Any]:
    return await plane.model_metadata(model_name)


@router.get(
    "/models/{model_name}/versions/{model_version}", response_model=ModelMetadataResponse, responses=_ERRORS
)
async def model_version_metadata(
    model_name: ModelRef, model_version: str, plane: Plane, _key: Reader
) -> dict[str, Any]:
    return await plane.model_metadata(model_name, model_version)


async def _ready(plane: Plane, model_name: ModelRef, model_version: str | None) -> Response:
    info, ready = await plane.model_ready(model_name, model_version)
    if not ready:
        raise ModelNotReady(f"model '{model_name}' version {info.version} is not loaded")
    return JSONBytes({"name": model_name, "ready": True})


@router.get("/models/{model_name}/ready", responses=_ERRORS)
async def model_ready(model_name: ModelRef, plane: Plane, _key: Reader) -> Response:
    return await _ready(plane, model_name, None)


@router.get("/models/{model_name}/versions/{model_version}/ready", responses=_ERRORS)
async def model_version_ready(
    model_name: ModelRef, model_version: str, plane: Plane, _key: Reader
) -> Response:
    return await _ready(plane, model_name, model_version)


# --- inference -------------------------------------------------------------------------------------


async def _infer(
    request: Request, plane: Plane, usage: Metered, model_name: str, model_version: str | None
) -> Response:
    body = await request.body()
    try:
        infer_request, all_binary, binary_outputs = decode_infer_request(
            body, request.headers.get(HEADER_LENGTH)
        )
    except InvalidInput:
        plane.count_rejected(model_name, model_version, "rest", 400)
        raise
    if request.app.state.settings.log_payloads:
        log.debug("infer %s: %s", model_name, body[:4096].decode("utf-8", "replace"))
    routing_key = request.headers.get(ROUTING_KEY_HEADER)
    resp = await plane.infer(model_name, model_version, infer_request, routing_key=routing_key)
    usage.version = resp.model_version
    usage.rows = max((t.shape[0] for t in infer_request.inputs if t.shape), default=0)
    response = encode_infer_response(resp, all_binary, binary_outputs)
    response.headers[VERSION_HEADER] = resp.model_version
    return response


@router.post(
    "/models/{model_name}/infer",
    response_model=InferenceResponseModel,
    responses=_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def infer(model_name: ModelRef, request: Request, plane: Plane, usage: Metered) -> Response:
    return await _infer(request, plane, usage, model_name, None)


@router.post(
    "/models/{model_name}/versions/{model_version}/infer",
    response_model=InferenceResponseModel,
    responses=_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def infer_version(
    model_name: ModelRef, model_version: str, request: Request, plane: Plane, usage: Metered
) -> Response:
    return await _infer(request, plane, usage, model_name, model_version)


# --- model repository extension -----------------------------------------------------------------


@router.post("/repository/index", response_model=list[RepositoryIndexEntry], responses=_ERRORS)
async def repository_index(request: Request, plane: Plane, _key: Reader) -> list[dict[str, Any]]:
    body = await _optional_body(request, RepositoryIndexRequest)
    return await plane.repository_index(ready_only=bool(body.ready))


@router.post("/repository/models/{model_name}/load", responses=_ERRORS)
async def repository_load(
    model_name: ModelRef, request: Request, plane: Plane, key: Loader, gateway: GatewayDep
) -> Response:
    await _optional_body(request, RepositoryLoadRequest)
    entry = await plane.load(model_name)
    await anyio.to_thread.run_sync(
        lambda: gateway.audit.record(
            key.actor, "model.load", f"model:{model_name}", version=entry.info.version
        )
    )
    return JSONBytes({"name": model_name, "version": str(entry.info.version), "state": str(entry.state)})


@router.post("/repository/models/{model_name}/unload", responses=_ERRORS)
async def repository_unload(
    model_name: ModelRef, request: Request, plane: Plane, key: Loader, gateway: GatewayDep
) -> Response:
    await _optional_body(request, RepositoryLoadRequest)
    versions = await plane.unload(model_name)
    await anyio.to_thread.run_sync(
        lambda: gateway.audit.record(key.actor, "model.unload", f"model:{model_name}", versions=versions)
    )
    return JSONBytes({"name": model_name, "unloaded_versions": [str(v) for v in versions]})
