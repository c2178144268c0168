"""Open Inference Protocol v2 REST messages (KServe / Triton / MLServer), as pydantic models.

Tensor ``data`` is typed ``Any`` here and decoded strictly by ``dataplane.codec``, so a large
tensor is not validated element by element twice.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
                   "FP32", "FP64", "BYTES"]  # fmt: skip


class RequestInput(_Strict):
    name: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: Any = Field(default=None, description="Row-major tensor data, flat or nested.")


class RequestOutput(_Strict):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequestModel(_Strict):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponseModel(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str] | None = None
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] | None = None


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ErrorResponse(BaseModel):
    error: str


class RepositoryIndexRequest(_Strict):
    ready: bool | None = None


class RepositoryIndexEntry(BaseModel):
    name: str
    version: str | None = None
    state: str | None = None
    reason: str | None = None


class RepositoryLoadRequest(_Strict):
    parameters: dict[str, Any] | None = None


# Every error a route can answer, in the OIP/admin shape (declared once per router for the OpenAPI spec).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 409, 413, 429, 500, 503, 504)
}
