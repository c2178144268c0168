"""Open Inference Protocol v2 REST routes, including the model repository and binary tensor
extensions. Everything here is translation; the work happens in the DataPlane."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, get_args

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from modelhost.dataplane import codec
from modelhost.dataplane.plane import DataPlane
from modelhost.dataplane.types import InferenceRequest, InferenceResponse, RequestedOutput, Tensor
from modelhost.errors import InvalidInput, ModelNotReady
from modelhost.gateway.service import Reservation
from modelhost.serving.deps import CurrentKey, GatewayDep, Loader, Metered, ModelRef, Plane, Reader
from modelhost.serving.errors import format_validation_errors
from modelhost.serving.responses import JSONBytes
from modelhost.serving.rest.v2_protocol import (
    ERROR_RESPONSES,
    Datatype,
    ErrorResponse,
    InferenceRequestModel,
    InferenceResponseModel,
    ModelMetadataResponse,
    RepositoryIndexEntry,
    RepositoryIndexRequest,
    RepositoryLoadRequest,
    RequestInput,
    RequestOutput,
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
    parsed = _plain_request(obj)
    if parsed is None:  # anything the plain check is unsure of: pydantic decides (and words the error)
        try:
            req = InferenceRequestModel.model_validate(obj)
        except ValidationError as exc:
            raise InvalidInput(format_validation_errors(list(exc.errors()))) from None
        parsed = (
            req.id,
            req.parameters,
            [(i.name, i.datatype, i.shape, i.parameters, i.data) for i in req.inputs],
            None if req.outputs is None else [(o.name, o.parameters) for o in req.outputs],
        )
    request_id, top_params, inputs, requested = parsed
    tensors: list[Tensor] = []
    offset = 0
    for name, datatype, shape, parameters, data in inputs:
        params = parameters or {}
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(f"input '{name}': binary_data_size must be a non-negative integer")
            if offset + size > len(binary):
                raise InvalidInput(f"input '{name}': binary data of {size} bytes runs past the request body")
            array = codec.decode_binary(name, datatype, shape, binary[offset : offset + size])
            offset += size
        else:
            if data is None:
                raise InvalidInput(f"input '{name}' has no 'data' (and no binary_data_size parameter)")
            array = codec.decode_json(name, datatype, shape, data)
        tensors.append(Tensor(name, datatype, tuple(shape), array, params))
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} bytes of binary data follow the inputs but belong to none"
        )
    top = top_params or {}
    outputs = None
    binary_outputs: set[str] = set()
    if requested is not None:
        outputs = [RequestedOutput(name, params or {}) for name, params in requested]
        binary_outputs = {o.name for o in outputs if o.parameters.get("binary_data") is True}
    request = InferenceRequest(inputs=tensors, outputs=outputs, id=request_id, parameters=top)
    return request, top.get("binary_data_output") is True, binary_outputs


_TOP_FIELDS = frozenset(InferenceRequestModel.model_fields)
_INPUT_FIELDS = frozenset(RequestInput.model_fields)
_OUTPUT_FIELDS = frozenset(RequestOutput.model_fields)
_DATATYPES = frozenset(get_args(Datatype))
_PlainInput = tuple[str, str, list[int], dict[str, Any] | None, Any]
_PlainRequest = tuple[
    str | None, dict[str, Any] | None, list[_PlainInput], list[tuple[str, dict[str, Any] | None]] | None
]


def _plain_request(obj: dict[str, Any]) -> _PlainRequest | None:
    """The request's fields when the body is exactly what ``InferenceRequestModel`` accepts without
    coercion (the common case), checked in plain Python at a fraction of pydantic's cost; None when
    anything is unusual, and pydantic then validates (same acceptance, its own error messages)."""
    if not obj.keys() <= _TOP_FIELDS:
        return None
    request_id, params, inputs, outputs = (
        obj.get("id"),
        obj.get("parameters"),
        obj.get("inputs"),
        obj.get("outputs"),
    )
    if (request_id is not None and type(request_id) is not str) or (
        params is not None and type(params) is not dict
    ):
        return None
    if type(inputs) is not list or not inputs:
        return None
    plain: list[_PlainInput] = []
    for inp in inputs:
        if type(inp) is not dict or not inp.keys() <= _INPUT_FIELDS:
            return None
        name, datatype, shape, inp_params = (
            inp.get("name"),
            inp.get("datatype"),
            inp.get("shape"),
            inp.get("parameters"),
        )
        if type(name) is not str or not name or datatype not in _DATATYPES or type(shape) is not list:
            return None
        if not all(type(d) is int and d >= 0 for d in shape):
            return None
        if inp_params is not None and type(inp_params) is not dict:
            return None
        plain.append((name, str(datatype), shape, inp_params, inp.get("data")))
    requested: list[tuple[str, dict[str, Any] | None]] | None = None
    if outputs is not None:
        if type(outputs) is not list:
            return None
        requested = []
        for out in outputs:
            if type(out) is not dict or not out.keys() <= _OUTPUT_FIELDS or type(out.get("name")) is not str:
                return None
            out_params = out.get("parameters")
            if out_params is not None and type(out_params) is not dict:
                return None
            requested.append((out["name"], out_params))
    return request_id, params, plain, requested


def encode_infer_response(resp: InferenceResponse, all_binary: bool, binary_outputs: set[str]) -> Response:
    body, headers = encode_infer_body(resp, all_binary, binary_outputs)
    return Response(body, media_type=headers.pop("content-type"), headers=headers)


def encode_infer_body(
    resp: InferenceResponse, all_binary: bool, binary_outputs: set[str]
) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers (content-type first)."""
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
        return header, {"content-type": "application/json"}
    return header + b"".join(chunks), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(header)),
    }


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


async def run_infer(
    plane: DataPlane,
    usage: Reservation,
    model_name: str,
    model_version: str | None,
    body: bytes,
    headers: Callable[[str], str | None],
    log_payloads: bool,
) -> tuple[bytes, dict[str, str]]:
    """One OIP infer request, from the body read to the response body and headers; shared by the
    route below and the ASGI fast path (``v2_fast``) so both behave the same."""
    try:
        infer_request, all_binary, binary_outputs = decode_infer_request(body, headers(HEADER_LENGTH))
    except InvalidInput:
        plane.count_rejected(model_name, model_version, "rest", 400)
        raise
    if log_payloads:
        log.debug("infer %s: %s", model_name, body[:4096].decode("utf-8", "replace"))
    resp = await plane.infer(
        model_name, model_version, infer_request, routing_key=headers(ROUTING_KEY_HEADER)
    )
    usage.version = resp.model_version
    usage.rows = max((t.shape[0] for t in infer_request.inputs if t.shape), default=0)
    payload, response_headers = encode_infer_body(resp, all_binary, binary_outputs)
    response_headers[VERSION_HEADER] = resp.model_version
    return payload, response_headers


async def _infer(
    request: Request, plane: Plane, usage: Metered, model_name: str, model_version: str | None
) -> Response:
    body = await request.body()
    log_payloads = request.app.state.settings.log_payloads
    payload, headers = await run_infer(
        plane, usage, model_name, model_version, body, request.headers.get, log_payloads
    )
    return Response(payload, media_type=headers.pop("content-type"), headers=headers)


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
