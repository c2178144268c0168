"""Async generation over the scheduler: detokenisation, stop strings, cancellation.

``stream`` yields text deltas as tokens arrive. Stop strings are matched on the decoded text and never
appear in the output: text that could still be the start of a stop string is held back until it can
not be. When the consumer goes away (client disconnect) the sequence is cancelled at the next token.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from modelhost.dataplane.sampling import SamplingParams
from modelhost.dataplane.scheduler import GenerationRequest, TokenEvent
from modelhost.dataplane.scheduler import Sequence as ScheduledSequence
from modelhost.errors import ModelhostError
from modelhost.runtimes.llm import LLMRuntime


@dataclass
class TokenInfo:
    token: int
    text: str
    logprob: float | None
    top_logprobs: list[tuple[str, float]] | None


@dataclass
class Chunk:
    """New text since the previous chunk, the tokens that made it, and the finish reason at the end."""

    text: str
    tokens: list[TokenInfo] = field(default_factory=list)
    finish_reason: str | None = None
    completion_tokens: int = 0


class GenerationFailed(ModelhostError):
    """The engine ended a sequence early: the model is being unloaded, or its forward failed."""

    status_code = 503
    code = "generation_failed"


def _find_stop(text: str, stops: Sequence[str], start: int) -> int:
    """Index of the earliest stop string occurrence at or after ``start``; -1 when none."""
    found = -1
    for stop in stops:
        at = text.find(stop, start)
        if at != -1 and (found == -1 or at < found):
            found = at
    return found


class Stream:
    """A queued generation: iterate it for chunks; ``cancel`` drops it even if never iterated."""

    def __init__(self, seq: ScheduledSequence, chunks: AsyncIterator[Chunk]) -> None:
        self._seq = seq
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[Chunk]:
        return self._chunks

    def cancel(self) -> None:
        self._seq.cancel()


def stream(
    runtime: LLMRuntime,
    prompt_ids: list[int],
    params: SamplingParams,
    max_tokens: int,
    stop: Sequence[str] = (),
    ignore_eos: bool = False,
) -> Stream:
    """Queue a generation now (so overload and context errors raise here, before any response is
    started) and return its chunks; the last one carries ``finish_reason`` ('stop' or 'length')."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[TokenEvent] = asyncio.Queue()

    def emit(event: TokenEvent) -> None:  # engine thread → event loop
        loop.call_soon_threadsafe(queue.put_nowait, event)

    eos = frozenset() if ignore_eos else frozenset(runtime.eos_ids)
    seq = runtime.scheduler.submit(GenerationRequest(prompt_ids, params, max_tokens, eos), emit)
    return Stream(seq, _chunks(runtime, seq, queue, eos, stop))


async def _chunks(
    runtime: LLMRuntime,
    seq: ScheduledSequence,
    queue: asyncio.Queue[TokenEvent],
    eos: frozenset[int],
    stop: Sequence[str],
) -> AsyncIterator[Chunk]:
    hold = max((len(s) for s in stop), default=1) - 1
    ids: list[int] = []
    emitted = 0
    pending: list[TokenInfo] = []
    try:
        while True:
            event = await queue.get()
            if event.finish_reason is not None and event.finish_reason not in ("stop", "length"):
                raise GenerationFailed(f"generation ended early ({event.finish_reason})")
            if event.token is not None:
                ids.append(event.token)
                if event.token not in eos:
                    pending.append(_token_info(runtime, event))
            text = runtime.decode([t for t in ids if t not in eos])
            search_from = max(0, emitted - hold)
            at = _find_stop(text, stop, search_from) if stop else -1
            if at != -1:
                seq.cancel()
                yield Chunk(text[emitted:at], pending, "stop", len(ids))
                return
            if event.finish_reason is not None:
                yield Chunk(text[emitted:], pending, event.finish_reason, len(ids))
                return
            safe = len(text) - hold
            if text.endswith("\ufffd"):  # half a multi-byte character: wait for the next token
                safe = min(safe, len(text) - 1)
            if safe > emitted:
                yield Chunk(text[emitted:safe], pending, None, len(ids))
                emitted, pending = safe, []
    finally:
        seq.cancel()


def _token_info(runtime: LLMRuntime, event: TokenEvent) -> TokenInfo:
    assert event.token is not None
    top = None
    if event.top_logprobs is not None:
        top = [(runtime.token_text(t), lp) for t, lp in event.top_logprobs]
    return TokenInfo(event.token, runtime.token_text(event.token), event.logprob, top)


async def complete(
    runtime: LLMRuntime,
    prompt_ids: list[int],
    params: SamplingParams,
    max_tokens: int,
    stop: Sequence[str] = (),
    ignore_eos: bool = False,
) -> Chunk:
    """The whole completion as one chunk."""
    text: list[str] = []
    tokens: list[TokenInfo] = []
    last = Chunk("")
    async for chunk in stream(runtime, prompt_ids, params, max_tokens, stop, ignore_eos):
        text.append(chunk.text)
        tokens.extend(chunk.tokens)
        last = chunk
    return Chunk("".join(text), tokens, last.finish_reason, last.completion_tokens)
