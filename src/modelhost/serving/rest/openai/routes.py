"""Routes of the OpenAI-compatible API; the official ``openai`` SDK works with ``base_url=<server>/v1``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.responses import StreamingResponse

from modelhost.errors import ModelhostError, NotFound
from modelhost.gateway.keys import ApiKey
from modelhost.gateway.service import Gateway
from modelhost.monitoring.metrics import Metrics
from modelhost.registry import VersionInfo
from modelhost.runtimes.embeddings import EmbeddingsRuntime
from modelhost.runtimes.llm import LLMRuntime
from modelhost.runtimes.upstream import UpstreamRuntime
from modelhost.serving.deps import CurrentKey, GatewayDep, Plane, SettingsDep
from modelhost.serving.responses import JSONBytes
from modelhost.serving.rest.openai.completions import create_chat_completion, create_completion
from modelhost.serving.rest.openai.disconnect import cancel_on_disconnect
from modelhost.serving.rest.openai.embeddings import create_embeddings
from modelhost.serving.rest.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from modelhost.serving.rest.openai.upstream import counted, proxy_embeddings, proxy_generation


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    """OpenAI's error shape, used for every error on /v1."""

    error: OpenAIErrorBody


router = APIRouter(
    prefix="/v1",
    tags=["OpenAI-compatible"],
    responses={s: {"model": OpenAIErrorResponse} for s in (400, 401, 403, 404, 413, 429, 500, 502, 503, 504)},
)
_JSON_OR_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/event-stream": {"schema": {"type": "string"}}}}
}

SERVED_RUNTIMES = (LLMRuntime.name, EmbeddingsRuntime.name, UpstreamRuntime.name)


def _on_v1(info: VersionInfo) -> bool:
    """Served by these routes: an LLM, embeddings or upstream version, or a model standing in for one
    (a transformers feature-extraction pipeline declares ``serves: ["embeddings"]``)."""
    serves = info.signature.extra.get("serves") or []
    return info.runtime in SERVED_RUNTIMES or any(r in SERVED_RUNTIMES for r in serves)


async def _served(plane: Plane, ref: str, kind: type[Any]) -> tuple[VersionInfo, Any]:
    try:
        info, runtime = await plane.runtime_of(ref, kind)
    except ModelhostError as exc:
        if exc.param is None and (isinstance(exc, NotFound) or exc.status_code == 400):
            exc.param = "model"
        raise
    return info, runtime


async def _upstream(plane: Plane, ref: str) -> tuple[VersionInfo, UpstreamRuntime] | None:
    """The upstream runtime when ``ref`` resolves to a remote OpenAI-compatible upstream, else None."""
    try:
        info = await plane.resolve(ref)
    except ModelhostError:
        return None  # the local path raises it, with param="model"
    if info.runtime != UpstreamRuntime.name:
        return None
    served: tuple[VersionInfo, UpstreamRuntime] = await _served(plane, ref, UpstreamRuntime)
    return served


async def _target(plane: Plane, ref: str, kind: type[Any], reservation: Any) -> tuple[VersionInfo, Any]:
    """The version and runtime serving ``ref``: a remote upstream, else a loaded runtime of ``kind``.
    When that fails (unknown model, wrong kind, not loaded) the reservation is given back."""
    try:
        remote = await _upstream(plane, ref)
        return remote if remote is not None else await _served(plane, ref, kind)
    except BaseException:
        await reservation.settle(error=True)
        raise


async def _admit(key: ApiKey, gateway: Gateway, model: str, max_tokens: int) -> Any:
    """Scope check and admission: the worst-case output (``max_tokens`` per choice) is reserved now,
    prompt and actual output tokens are settled when generation ends."""
    try:
        key.require_infer(model)
    except ModelhostError as exc:
        exc.param = "model"
        raise
    return await gateway.admit(key, model, max_tokens=max_tokens)


async def _generate(
    make: Any, reservation: Any, metrics: Metrics, info: VersionInfo
) -> JSONBytes | StreamingResponse:
    labels = (info.model, str(info.version))
    started = time.perf_counter()

    async def on_finish(prompt_tokens: int, completion_tokens: int) -> None:
        metrics.tokens.labels(*labels, "prompt").inc(prompt_tokens)
        metrics.tokens.labels(*labels, "completion").inc(completion_tokens)
        await reservation.settle(input_tokens=prompt_tokens, output_tokens=completion_tokens)

    async def timed(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Time to first token and the gaps between streamed chunks (each carries one or more tokens)."""
        last: float | None = None
        async for chunk in chunks:
            now = time.perf_counter()
            if last is None:
                metrics.ttft.labels(*labels).observe(now - started)
            else:
                metrics.itl.labels(*labels).observe(now - last)
            last = now
            yield chunk

    try:
        result = await make(on_finish)
    except BaseException:
        await reservation.settle(error=True)
        raise
    if not isinstance(result, dict):
        result = timed(result)
    if isinstance(result, dict):
        if not result.get("usage"):
            # only an upstream answers without usage: charge what was reserved (documented in docs/openai.md)
            await reservation.settle(output_tokens=reservation.max_tokens)
        used = result.get("usage") or {}
        metrics.tokens.labels(*labels, "prompt").inc(used.get("prompt_tokens", 0))
        metrics.tokens.labels(*labels, "completion").inc(used.get("completion_tokens", 0))
        await reservation.settle(
            input_tokens=used.get("prompt_tokens", 0), output_tokens=used.get("completion_tokens", 0)
        )
    response = _respond(result)
    response.headers.update(reservation.headers or {})
    return response


def _respond(result: dict[str, Any] | AsyncIterator[bytes]) -> JSONBytes | StreamingResponse:
    if isinstance(result, dict):
        return JSONBytes(result)
    return StreamingResponse(
        result,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/models", summary="Models served on /v1 (LLMs and embedding models), by name and name@alias")
async def list_models(plane: Plane, _key: CurrentKey) -> JSONBytes:
    data: list[dict[str, Any]] = []
    for m in await anyio.to_thread.run_sync(plane.registry.list_models):
        if m.latest_version is None:
            continue
        info = await plane.resolve(m.name)
        if not _on_v1(info):
            continue
        created = int(m.created_at.timestamp())
        data.append({"id": m.name, "object": "model", "created": created, "owned_by": "modelhost"})
        for alias in sorted(m.aliases):
            data.append(
                {"id": f"{m.name}@{alias}", "object": "model", "created": created, "owned_by": "modelhost"}
            )
    return JSONBytes({"object": "list", "data": data})


@router.get("/models/{model}", summary="One served model")
async def get_model(model: str, plane: Plane, key: CurrentKey) -> JSONBytes:
    key.require_read(model)
    try:
        info = await plane.resolve(model)
    except NotFound as exc:
        exc.param = "model"
        raise
    if not _on_v1(info):
        raise NotFound(f"model '{model}' is not served on /v1 (it is a {info.runtime} model)", param="model")
    return JSONBytes(
        {"id": model, "object": "model", "created": int(info.created_at.timestamp()), "owned_by": "modelhost"}
    )


async def _generation(
    plane: Plane,
    req: Any,
    request: Request,
    reservation: Any,
    local: Callable[[Any, Any], Coroutine[Any, Any, Any]],
) -> Any:
    """A completion or chat completion: proxied to a remote upstream, or ``local(runtime, done)`` on
    a loaded LLM (cancelled when the client disconnects)."""
    info, runtime = await _target(plane, req.model, LLMRuntime, reservation)
    if isinstance(runtime, UpstreamRuntime):
        upstream = runtime
        return await counted(
            plane.metrics,
            info.model,
            info.version,
            _generate(
                lambda done: proxy_generation(req, upstream, req.model, done, request),
                reservation,
                plane.metrics,
                info,
            ),
        )
    return await _generate(
        lambda done: cancel_on_disconnect(request, local(runtime, done)), reservation, plane.metrics, info
    )


@router.post(
    "/completions", summary="Text completion (OpenAI-compatible), streaming with SSE", responses=_JSON_OR_SSE
)
async def completions(
    req: CompletionRequest,
    plane: Plane,
    settings: SettingsDep,
    key: CurrentKey,
    gateway: GatewayDep,
    request: Request,
) -> Any:
    reservation = await _admit(key, gateway, req.model, (req.max_tokens or 16) * req.n)
    return await _generation(
        plane,
        req,
        request,
        reservation,
        lambda rt, done: create_completion(req, rt, req.model, settings, done),
    )


@router.post(
    "/chat/completions",
    summary="Chat completion (OpenAI-compatible), streaming with SSE",
    responses=_JSON_OR_SSE,
)
async def chat_completions(
    req: ChatCompletionRequest,
    plane: Plane,
    settings: SettingsDep,
    key: CurrentKey,
    gateway: GatewayDep,
    request: Request,
) -> Any:
    budget = req.max_completion_tokens or req.max_tokens or settings.llm_max_context
    reservation = await _admit(key, gateway, req.model, budget * req.n)
    return await _generation(
        plane,
        req,
        request,
        reservation,
        lambda rt, done: create_chat_completion(req, rt, req.model, settings, done),
    )


@router.post("/embeddings", summary="Embeddings (OpenAI-compatible): float or base64")
async def embeddings(
    req: EmbeddingRequest, plane: Plane, key: CurrentKey, gateway: GatewayDep, request: Request
) -> JSONBytes:
    reservation = await _admit(key, gateway, req.model, 0)
    info, runtime = await _target(plane, req.model, EmbeddingsRuntime, reservation)
    try:
        if isinstance(runtime, UpstreamRuntime):
            work = proxy_embeddings(req, runtime, req.model, request)
            result = await counted(plane.metrics, info.model, info.version, work)
        else:
            result = await create_embeddings(req, runtime, req.model)
    except BaseException:
        await reservation.settle(error=True)
        raise
    await reservation.settle(input_tokens=(result.get("usage") or {}).get("prompt_tokens", 0))
    response = JSONBytes(result)
    response.headers.update(reservation.headers or {})
    return response
