"""Serving logic of /v1 routes for remote OpenAI-compatible upstreams (runtimes/upstream.py).

The client's validated request goes upstream with the upstream's model name; the answer comes back with
our own ``id`` and the model name the client asked for. Streams are relayed event by event; usage comes
from the upstream (``stream_options.include_usage`` is always requested upstream, and the usage chunk is
passed on only when the client asked for it). The gateway settles the reservation with that usage.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from starlette.requests import Request

from modelhost.errors import ModelhostError
from modelhost.runtimes.upstream import Capability, UpstreamRuntime
from modelhost.serving.rest.openai.completions import SSE_DONE, OnFinish, sse, sse_error
from modelhost.serving.rest.openai.disconnect import cancel_on_disconnect
from modelhost.serving.rest.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

T = TypeVar("T")


def _body(
    req: CompletionRequest | ChatCompletionRequest | EmbeddingRequest, runtime: UpstreamRuntime
) -> dict[str, Any]:
    """The client's request as it was sent (fields left unset stay unset), for the upstream's model."""
    body = req.model_dump(exclude_unset=True, mode="json")
    body["model"] = runtime.upstream_model
    if isinstance(req, CompletionRequest):
        body["max_tokens"] = req.max_tokens  # our default (16) is what the reservation counted
    if body.get("stream"):
        body["stream_options"] = {"include_usage": True}
    return body


async def proxy_generation(
    req: CompletionRequest | ChatCompletionRequest,
    runtime: UpstreamRuntime,
    model: str,
    on_finish: OnFinish,
    request: Request | None = None,
) -> dict[str, Any] | AsyncIterator[bytes]:
    """A completion or chat completion answered by the upstream: a dict, or SSE bytes when streaming."""
    capability: Capability = "chat" if isinstance(req, ChatCompletionRequest) else "completions"
    runtime.check(capability, model)
    body = _body(req, runtime)
    rid = f"{'chatcmpl' if capability == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
    if not req.stream:
        result = await cancel_on_disconnect(request, runtime.post(capability, body))
        result["id"], result["model"] = rid, model
        return result
    response = await cancel_on_disconnect(request, runtime.open_stream(capability, body))
    wants_usage = bool(req.stream_options and req.stream_options.include_usage)
    return _relay(runtime, runtime.events(response), rid, model, wants_usage, on_finish)


async def _relay(
    runtime: UpstreamRuntime,
    events: AsyncIterator[dict[str, Any]],
    rid: str,
    model: str,
    wants_usage: bool,
    on_finish: OnFinish,
) -> AsyncIterator[bytes]:
    """Pass the upstream's events on one by one under our id and model name. Without a usage event
    (an upstream that ignores include_usage, or a client gone before the end) the completion tokens are
    estimated as one per streamed event carrying text."""
    usage: dict[str, Any] | None = None
    pieces = 0
    try:
        async for event in events:
            if "error" in event and not event.get("choices"):
                error = (
                    event["error"] if isinstance(event["error"], dict) else {"message": str(event["error"])}
                )
                error["message"] = f"upstream: {error.get('message', '')}"
                yield sse({"error": error})
                continue
            event["id"], event["model"] = rid, model
            if event.get("usage"):
                usage = event["usage"]
            pieces += sum(1 for c in event.get("choices") or () if _has_text(c))
            if not wants_usage:
                event.pop("usage", None)
                if not event.get("choices"):
                    continue
            yield sse(event)
    except Exception as exc:
        yield sse_error(exc)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
        if usage is not None:
            await on_finish(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        else:
            await on_finish(0, pieces)
    yield SSE_DONE


def _has_text(choice: dict[str, Any]) -> bool:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return bool(delta.get("content"))
    return bool(choice.get("text"))


async def proxy_embeddings(
    req: EmbeddingRequest, runtime: UpstreamRuntime, model: str, request: Request | None = None
) -> dict[str, Any]:
    runtime.check("embeddings", model)
    result = await cancel_on_disconnect(request, runtime.post("embeddings", _body(req, runtime)))
    result["model"] = model
    return result


def count_outcome(metrics: Any, model: str, version: int, status: int) -> None:
    """Requests to upstream models by outcome (status), like /v2 inference counts its requests."""
    metrics.requests.labels(model, str(version), "openai", str(status)).inc()


async def counted(metrics: Any, model: str, version: int, work: Awaitable[T]) -> T:
    try:
        result = await work
    except ModelhostError as exc:
        count_outcome(metrics, model, version, exc.status_code)
        raise
    count_outcome(metrics, model, version, 200)
    return result
