"""``POST /v2/models/{model}/explain``: an OIP inference request in, SHAP values out (OIP response
shape, outputs ``shap_values`` and ``base_values``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from modelhost.explain.online import explain
from modelhost.serving.deps import Metered, ModelRef, Plane
from modelhost.serving.rest.v2 import (
    _ERRORS,
    _INFER_BODY,
    HEADER_LENGTH,
    decode_infer_request,
    encode_infer_response,
)
from modelhost.serving.rest.v2_protocol import (
    ERROR_RESPONSES,
    InferenceResponseModel,
)

router = APIRouter(prefix="/v2", tags=["Explanations"], responses=ERROR_RESPONSES)


async def _explain(request: Request, plane: Plane, model_name: str, model_version: str | None) -> Response:
    body = await request.body()
    req, all_binary, binary_outputs = decode_infer_request(body, request.headers.get(HEADER_LENGTH))
    resp = await explain(plane, model_name, model_version, req)
    return encode_infer_response(resp, all_binary, binary_outputs)


@router.post(
    "/models/{model_name}/explain",
    response_model=InferenceResponseModel,
    responses=_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def explain_model(model_name: ModelRef, request: Request, plane: Plane, _usage: Metered) -> Response:
    return await _explain(request, plane, model_name, None)


@router.post(
    "/models/{model_name}/versions/{model_version}/explain",
    response_model=InferenceResponseModel,
    responses=_ERRORS,
    openapi_extra=_INFER_BODY,
)
async def explain_version(
    model_name: ModelRef, model_version: str, request: Request, plane: Plane, _usage: Metered
) -> Response:
    return await _explain(request, plane, model_name, model_version)
