"""Serving logic of /v1/completions and /v1/chat/completions: prompts, choices, streaming (SSE)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from modelhost.config import Settings
from modelhost.dataplane.generation import Chunk, Stream, TokenInfo, stream
from modelhost.dataplane.sampling import SamplingParams
from modelhost.errors import InvalidInput, ModelhostError
from modelhost.runtimes.llm import LLMRuntime
from modelhost.serving.rest.openai.protocol import ChatCompletionRequest, CompletionRequest, SamplingFields

# Called once a request's generation ends (normally, by error or by disconnect) with
# (prompt tokens, completion tokens): the gateway settles the request's reserved tokens with it.
OnFinish = Callable[[int, int], Awaitable[None]]


def sampling_params(
    req: SamplingFields, runtime: LLMRuntime, logprobs: int | None, index: int
) -> SamplingParams:
    """The scheduler's parameters for choice ``index`` (seeded choices differ but stay reproducible)."""
    bias: dict[int, float] = {}
    vocab = runtime.scheduler.stepper.vocab_size
    for key, value in (req.logit_bias or {}).items():
        try:
            token = int(key)
        except ValueError:
            raise InvalidInput(
                f"logit_bias keys must be token ids, got {key!r}", param="logit_bias"
            ) from None
        if not 0 <= token < vocab:
            raise InvalidInput(
                f"logit_bias token id {token} is outside the vocabulary (0..{vocab - 1})", param="logit_bias"
            )
        bias[token] = value
    return SamplingParams(
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=max(req.top_k, 0),
        frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty,
        logit_bias=bias,
        seed=None if req.seed is None else req.seed + index,
        logprobs=logprobs,
    )


def check_n(req: SamplingFields, settings: Settings, prompts: int) -> None:
    if req.n > settings.max_n:
        raise InvalidInput(f"n must be at most {settings.max_n} (MODELHOST_MAX_N), got {req.n}", param="n")
    if req.n * prompts > settings.llm_max_queue + settings.llm_max_seqs:
        raise InvalidInput(
            f"{req.n * prompts} choices requested, more than this server queues at once", param="n"
        )


def completion_prompts(req: CompletionRequest, runtime: LLMRuntime) -> list[list[int]]:
    """Token ids of each prompt (a string, a list of strings, a token list or a list of token lists)."""
    prompt = req.prompt
    if isinstance(prompt, str):
        items: list[Any] = [prompt]
    elif prompt and all(isinstance(p, int) for p in prompt):
        items = [prompt]
    else:
        items = list(prompt)
    vocab = runtime.scheduler.stepper.vocab_size
    out: list[list[int]] = []
    for item in items:
        if isinstance(item, str):
            if not item:
                raise InvalidInput("the prompt is empty", param="prompt")
            out.append(runtime.encode(item))
        else:
            if not item or any(not 0 <= t < vocab for t in item):
                raise InvalidInput(
                    f"token prompts must be non-empty lists of ids in 0..{vocab - 1}", param="prompt"
                )
            out.append(list(item))
    return out


class Choices:
    """Starts every choice's generation up front (errors before any byte is sent), then merges them."""

    def __init__(self, streams: list[Stream]) -> None:
        self.streams = streams

    @classmethod
    def start(
        cls,
        runtime: LLMRuntime,
        prompts: list[list[int]],
        n: int,
        params: Callable[[int], SamplingParams],
        max_tokens: Callable[[list[int]], int],
        stop: list[str],
        ignore_eos: bool,
    ) -> Choices:
        streams: list[Stream] = []
        try:
            for p, ids in enumerate(prompts):
                for i in range(n):
                    streams.append(stream(runtime, ids, params(p * n + i), max_tokens(ids), stop, ignore_eos))
        except BaseException:
            for s in streams:  # a later choice was refused (queue full): drop the earlier ones
                s.cancel()
            raise
        return cls(streams)

    async def merged(self) -> AsyncIterator[tuple[int, Chunk]]:
        """(choice index, chunk) in arrival order; closing this closes every choice's generation."""
        queue: asyncio.Queue[tuple[int, Chunk | BaseException | None]] = asyncio.Queue()

        async def pump(index: int, source: Stream) -> None:
            try:
                async for chunk in source:
                    await queue.put((index, chunk))
                await queue.put((index, None))
            except BaseException as exc:
                await queue.put((index, exc))
                raise

        tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(self.streams)]
        remaining = len(tasks)
        try:
            while remaining:
                index, item = await queue.get()
                if item is None:
                    remaining -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield index, item
        finally:
            for task in tasks:
                task.cancel()
            for source in self.streams:
                source.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def collect(self) -> list[Chunk]:
        texts: list[list[str]] = [[] for _ in self.streams]
        tokens: list[list[TokenInfo]] = [[] for _ in self.streams]
        last: list[Chunk] = [Chunk("") for _ in self.streams]
        async for index, chunk in self.merged():
            texts[index].append(chunk.text)
            tokens[index].extend(chunk.tokens)
            last[index] = chunk
        return [
            Chunk("".join(t), tk, c.finish_reason, c.completion_tokens)
            for t, tk, c in zip(texts, tokens, last, strict=True)
        ]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def sse_error(exc: BaseException) -> bytes:
    status = exc.status_code if isinstance(exc, ModelhostError) else 500
    message = exc.message if isinstance(exc, ModelhostError) else f"internal error ({type(exc).__name__})"
    code = exc.code if isinstance(exc, ModelhostError) else "internal_error"
    return sse(
        {
            "error": {
                "message": message,
                "type": "server_error" if status >= 500 else "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
    )


# --- /v1/completions ---------------------------------------------------------------------------------


def completion_logprobs(tokens: list[TokenInfo], offset: int) -> dict[str, Any]:
    offsets, at = [], offset
    for t in tokens:
        offsets.append(at)
        at += len(t.text)
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top_logprobs or []) for t in tokens],
        "text_offset": offsets,
    }


async def create_completion(
    req: CompletionRequest,
    runtime: LLMRuntime,
    model: str,
    settings: Settings,
    on_finish: OnFinish | None = None,
) -> dict[str, Any] | AsyncIterator[bytes]:
    prompts = completion_prompts(req, runtime)
    check_n(req, settings, len(prompts))
    max_tokens = req.max_tokens if req.max_tokens is not None else 16
    choices = Choices.start(
        runtime,
        prompts,
        req.n,
        lambda i: sampling_params(req, runtime, req.logprobs, i),
        lambda ids: max_tokens,
        req.stops(),
        req.ignore_eos,
    )
    rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    prompt_texts = [runtime.decode(ids) for ids in prompts] if req.echo else []
    prompt_tokens = sum(len(p) for p in prompts)

    def head(index: int) -> str:
        return prompt_texts[index // req.n] if req.echo else ""

    if req.stream:
        return _stream_completion(req, choices, rid, created, model, head, prompt_tokens, on_finish)
    results = await choices.collect()
    out = []
    for i, r in enumerate(results):
        text = head(i) + r.text
        out.append(
            {
                "index": i,
                "text": text,
                "logprobs": completion_logprobs(r.tokens, len(head(i))) if req.logprobs is not None else None,
                "finish_reason": r.finish_reason,
            }
        )
    return {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": out,
        "usage": usage(prompt_tokens, sum(r.completion_tokens for r in results)),
    }


async def _stream_completion(
    req: CompletionRequest,
    choices: Choices,
    rid: str,
    created: int,
    model: str,
    head: Callable[[int], str],
    prompt_tokens: int,
    on_finish: OnFinish | None = None,
) -> AsyncIterator[bytes]:
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    base = {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
    }
    completion_tokens: dict[int, int] = {}
    sent_head: set[int] = set()
    offsets: dict[int, int] = {}
    try:
        async for index, chunk in choices.merged():
            text = chunk.text
            if index not in sent_head:
                sent_head.add(index)
                text = head(index) + text
            completion_tokens[index] = chunk.completion_tokens
            if not text and chunk.finish_reason is None:
                continue
            logprobs = None
            if req.logprobs is not None:
                logprobs = completion_logprobs(chunk.tokens, offsets.get(index, len(head(index))))
                offsets[index] = offsets.get(index, len(head(index))) + sum(len(t.text) for t in chunk.tokens)
            choice = {
                "index": index,
                "text": text,
                "logprobs": logprobs,
                "finish_reason": chunk.finish_reason,
            }
            yield sse({**base, "choices": [choice], **({"usage": None} if include_usage else {})})
        if include_usage:
            yield sse({**base, "choices": [], "usage": usage(prompt_tokens, sum(completion_tokens.values()))})
    except Exception as exc:
        yield sse_error(exc)
    finally:
        if on_finish is not None:
            await on_finish(prompt_tokens, sum(completion_tokens.values()))
    yield SSE_DONE


# --- /v1/chat/completions ------------------------------------------------------------------------------


def chat_logprobs(tokens: list[TokenInfo]) -> dict[str, Any]:
    def entry(text: str, logprob: float | None) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

    return {
        "content": [
            {**entry(t.text, t.logprob), "top_logprobs": [entry(s, lp) for s, lp in (t.top_logprobs or [])]}
            for t in tokens
        ]
    }


async def create_chat_completion(
    req: ChatCompletionRequest,
    runtime: LLMRuntime,
    model: str,
    settings: Settings,
    on_finish: OnFinish | None = None,
) -> dict[str, Any] | AsyncIterator[bytes]:
    messages = [
        {"role": m.role if m.role != "developer" else "system", "content": m.text()} for m in req.messages
    ]
    prompt = runtime.chat_prompt(messages)
    check_n(req, settings, 1)
    limit = req.completion_limit()
    context = runtime.context_length
    logprobs = (req.top_logprobs or 0) if req.logprobs else None

    def max_tokens(ids: list[int]) -> int:
        # Without a limit the reply may use the rest of the context window (OpenAI's behaviour).
        return limit if limit is not None else max(1, context - len(ids))

    choices = Choices.start(
        runtime,
        [prompt],
        req.n,
        lambda i: sampling_params(req, runtime, logprobs, i),
        max_tokens,
        req.stops(),
        req.ignore_eos,
    )
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if req.stream:
        return _stream_chat(req, choices, rid, created, model, len(prompt), on_finish)
    results = await choices.collect()
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": r.text},
                "logprobs": chat_logprobs(r.tokens) if req.logprobs else None,
                "finish_reason": r.finish_reason,
            }
            for i, r in enumerate(results)
        ],
        "usage": usage(len(prompt), sum(r.completion_tokens for r in results)),
    }


async def _stream_chat(
    req: ChatCompletionRequest,
    choices: Choices,
    rid: str,
    created: int,
    model: str,
    prompt_tokens: int,
    on_finish: OnFinish | None = None,
) -> AsyncIterator[bytes]:
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    base = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
    }
    extra = {"usage": None} if include_usage else {}
    completion_tokens: dict[int, int] = {}
    try:
        for i in range(len(choices.streams)):
            first = {
                "index": i,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
            yield sse({**base, "choices": [first], **extra})
        async for index, chunk in choices.merged():
            completion_tokens[index] = chunk.completion_tokens
            if not chunk.text and chunk.finish_reason is None:
                continue
            choice = {
                "index": index,
                "delta": {"content": chunk.text} if chunk.text else {},
                "logprobs": chat_logprobs(chunk.tokens) if req.logprobs else None,
                "finish_reason": chunk.finish_reason,
            }
            yield sse({**base, "choices": [choice], **extra})
        if include_usage:
            yield sse({**base, "choices": [], "usage": usage(prompt_tokens, sum(completion_tokens.values()))})
    except Exception as exc:
        yield sse_error(exc)
    finally:
        if on_finish is not None:
            await on_finish(prompt_tokens, sum(completion_tokens.values()))
    yield SSE_DONE
