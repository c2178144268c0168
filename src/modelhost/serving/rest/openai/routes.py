"""Routes of the OpenAI-compatible API; the official ``openai`` SDK works with ``base_url=<server>/v1``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter
from starlette.responses import StreamingResponse

from modelhost.errors import ModelhostError, NotFound
from modelhost.runtimes.embeddings import EmbeddingsRuntime
from modelhost.runtimes.llm import LLMRuntime
from modelhost.serving.deps import Plane, SettingsDep
from modelhost.serving.responses import JSONBytes
from modelhost.serving.rest.openai.completions import create_chat_completion, create_completion
from modelhost.serving.rest.openai.embeddings import create_embeddings
from modelhost.serving.rest.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

SERVED_RUNTIMES = (LLMRuntime.name, EmbeddingsRuntime.name)


async def _runtime(plane: Plane, ref: str, kind: type[Any]) -> Any:
    try:
        _info, runtime = await plane.runtime_of(ref, kind)
    except ModelhostError as exc:
        if exc.param is None and (isinstance(exc, NotFound) or exc.status_code == 400):
            exc.param = "model"
        raise
    return runtime


def _respond(result: dict[str, Any] | AsyncIterator[bytes]) -> JSONBytes | StreamingResponse:
    if isinstance(result, dict):
        return JSONBytes(result)
    return StreamingResponse(
        result,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/models", summary="Models served on /v1 (LLMs and embedding models), by name and name@alias")
async def list_models(plane: Plane) -> JSONBytes:
    data: list[dict[str, Any]] = []
    for m in await anyio.to_thread.run_sync(plane.registry.list_models):
        if m.latest_version is None:
            continue
        info = await plane.resolve(m.name)
        if info.runtime not in SERVED_RUNTIMES:
            continue
        created = int(m.created_at.timestamp())
        data.append({"id": m.name, "object": "model", "created": created, "owned_by": "modelhost"})
        for alias in sorted(m.aliases):
            data.append(
                {"id": f"{m.name}@{alias}", "object": "model", "created": created, "owned_by": "modelhost"}
            )
    return JSONBytes({"object": "list", "data": data})


@router.get("/models/{model}", summary="One served model")
async def get_model(model: str, plane: Plane) -> JSONBytes:
    try:
        info = await plane.resolve(model)
    except NotFound as exc:
        exc.param = "model"
        raise
    if info.runtime not in SERVED_RUNTIMES:
        raise NotFound(f"model '{model}' is not served on /v1 (it is a {info.runtime} model)", param="model")
    return JSONBytes(
        {"id": model, "object": "model", "created": int(info.created_at.timestamp()), "owned_by": "modelhost"}
    )


@router.post("/completions", summary="Text completion (OpenAI-compatible), streaming with SSE")
async def completions(req: CompletionRequest, plane: Plane, settings: SettingsDep) -> Any:
    runtime = await _runtime(plane, req.model, LLMRuntime)
    return _respond(await create_completion(req, runtime, req.model, settings))


@router.post("/chat/completions", summary="Chat completion (OpenAI-compatible), streaming with SSE")
async def chat_completions(req: ChatCompletionRequest, plane: Plane, settings: SettingsDep) -> Any:
    runtime = await _runtime(plane, req.model, LLMRuntime)
    return _respond(await create_chat_completion(req, runtime, req.model, settings))


@router.post("/embeddings", summary="Embeddings (OpenAI-compatible): float or base64")
async def embeddings(req: EmbeddingRequest, plane: Plane) -> JSONBytes:
    runtime = await _runtime(plane, req.model, EmbeddingsRuntime)
    return JSONBytes(await create_embeddings(req, runtime, req.model))
