"""Continuous batching for LLM generation.

One engine thread per loaded model runs a loop of *steps*. At each token boundary it

1. drops sequences that finished or were cancelled (client gone, stop string seen),
2. admits waiting requests (FIFO) while fewer than ``max_seqs`` run, prefilling each alone, up to a
   budget of prompt tokens per step so long prompts do not stall the running streams,
3. runs one batched decode forward for every running sequence and samples the next tokens with each
   sequence's own parameters.

The KV cache is ours (``kvcache.BatchKV``); transformers only provides the model forward. Tokens go
back to each request through a callback, which the async side turns into an asyncio queue.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from modelhost.dataplane.kvcache import BatchKV, LayerKV, cache_layers, left_padded, make_cache
from modelhost.dataplane.sampling import SamplingParams, make_generator, sample
from modelhost.dataplane.static_decode import StaticDecoder
from modelhost.errors import ContextLengthExceeded, InvalidInput, ModelNotReady, Overloaded

log = logging.getLogger(__name__)

TRIM_EVERY_S = 5.0  # see Scheduler._trim_heap


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on other C libraries."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _malloc_trim()


@dataclass
class TokenEvent:
    """One generated token (or only a finish reason when ``token`` is None)."""

    token: int | None
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] | None = None
    finish_reason: str | None = None


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    params: SamplingParams
    max_tokens: int
    stop_token_ids: frozenset[int] = frozenset()


@dataclass
class Sequence:
    """A request's state inside the scheduler."""

    id: int
    request: GenerationRequest
    emit: Callable[[TokenEvent], None]
    generated: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None
    slot: int = -1  # its row of the static decoder's cache, when the scheduler has one
    cancelled: bool = False
    finished: bool = False

    def cancel(self) -> None:
        """Ask the scheduler to drop this sequence at the next token boundary (thread-safe)."""
        self.cancelled = True


class HFStepper:
    """Runs a transformers causal LM forward over our cache; returns last-position logits."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.vocab_size = int(model.config.vocab_size)
        params = inspect.signature(model.forward).parameters
        self._keep = "logits_to_keep" if "logits_to_keep" in params else None
        # transformers 5.x renamed past_key_values to cache (argument and output field).
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @torch.inference_mode()
    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor,
        layers: list[LayerKV],
    ) -> tuple[torch.Tensor, list[LayerKV]]:
        """Forward ``input_ids`` after the cached ``layers``; a None mask means no padding anywhere
        (transformers then takes its plain causal path, which is cheaper)."""
        kwargs: dict[str, Any] = {}
        if self._keep:
            kwargs[self._keep] = 1
        kwargs[self._cache_arg] = make_cache(layers)
        device = self.model.device  # the scheduler builds its inputs on the CPU
        out = self.model(
            input_ids=input_ids.to(device),
            attention_mask=None if attention_mask is None else attention_mask.to(device),
            position_ids=position_ids.to(device),
            use_cache=True,
            **kwargs,
        )
        return out.logits[:, -1, :], cache_layers(getattr(out, self._cache_arg))


class Stepper(Protocol):
    """A model forward over our cache: ``HFStepper`` or ``llama.LlamaStepper``."""

    vocab_size: int

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor,
        layers: list[LayerKV],
    ) -> tuple[torch.Tensor, list[LayerKV]]: ...


class Scheduler:
    """Continuous-batching generation over one model (see the module docstring)."""

    def __init__(
        self,
        stepper: Stepper,
        *,
        context_length: int,
        max_seqs: int = 16,
        max_queue: int = 64,
        prefill_budget: int = 512,
        static: StaticDecoder | None = None,
    ) -> None:
        """``static``: decode on its slot cache (the compiled GPU path) instead of ``stepper``'s growing
        left-padded cache; prefills still run through ``stepper``."""
        if static is not None and static.slots < max_seqs:
            raise ValueError(f"the static decoder has {static.slots} slots for {max_seqs} sequences")
        self.stepper = stepper
        self.static = static
        self._free_slots = list(range(max_seqs))[::-1]
        self.context_length = context_length
        self.max_seqs = max_seqs
        self.max_queue = max_queue
        self.prefill_budget = prefill_budget
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._running: list[Sequence] = []
        self._kv = BatchKV(layers=[], pad=[])
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._stopping = False
        self.steps = 0
        self._trimmed_at = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="llm-scheduler", daemon=True)
        self._thread.start()

    # --- called from other threads ------------------------------------------------------------------

    def submit(self, request: GenerationRequest, emit: Callable[[TokenEvent], None]) -> Sequence:
        """Queue a request; ``emit`` is called from the engine thread for every token."""
        if not request.prompt_ids:
            raise InvalidInput("the prompt is empty")
        if request.max_tokens < 1:
            raise InvalidInput("max_tokens must be at least 1")
        needed = len(request.prompt_ids) + request.max_tokens
        if len(request.prompt_ids) >= self.context_length:
            raise ContextLengthExceeded(
                f"this model's maximum context length is {self.context_length} tokens; the prompt has "
                f"{len(request.prompt_ids)} tokens"
            )
        if needed > self.context_length:
            raise ContextLengthExceeded(
                f"this model's maximum context length is {self.context_length} tokens; you requested "
                f"{needed} tokens ({len(request.prompt_ids)} in the prompt, {request.max_tokens} for the "
                "completion); reduce the prompt or max_tokens"
            )
        seq = Sequence(
            id=next(self._ids), request=request, emit=emit, generator=make_generator(request.params.seed)
        )
        with self._cond:
            if self._stopping:
                raise ModelNotReady("the model is being unloaded")
            if len(self._waiting) >= self.max_queue:
                raise Overloaded(
                    f"the model is overloaded: {len(self._running)} sequences running and "
                    f"{len(self._waiting)} waiting (queue limit {self.max_queue}); retry later"
                )
            self._waiting.append(seq)
            self._cond.notify()
        return seq

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {"running": len(self._running), "waiting": len(self._waiting), "steps": self.steps}

    def close(self) -> None:
        """Stop the engine thread; sequences still queued or running end with finish_reason 'abort'."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=30)

    # --- the engine thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not self._waiting and not self._running:
                    self._cond.wait()
                if self._stopping:
                    break
            try:
                self._step()
                self._trim_heap()
            except Exception as exc:  # a model failure ends the affected sequences, not the server
                log.exception("LLM step failed")
                self._fail_all(f"error: {type(exc).__name__}: {exc}")
        self._fail_all("abort")

    def _trim_heap(self) -> None:
        """Hand freed heap pages back to the system every ``TRIM_EVERY_S`` of decoding (glibc only).

        Steps allocate activations of ever-changing shapes (prompt lengths, batch sizes); glibc keeps
        the freed chunks, so a long-running server's RSS crept up by ~13 KB per request with int8
        weights although nothing leaked (benchmarks/RESULTS.md, LLM soak). ``malloc_trim`` returns
        them; a few milliseconds every few seconds.
        """
        now = time.monotonic()
        if now - self._trimmed_at < TRIM_EVERY_S:
            return
        self._trimmed_at = now
        if _MALLOC_TRIM is not None:
            _MALLOC_TRIM(0)

    def _fail_all(self, reason: str) -> None:
        with self._cond:
            victims = self._running + list(self._waiting)
            self._running, self._waiting = [], collections.deque()
            self._kv = BatchKV(layers=[], pad=[])
            for seq in victims:
                self._release(seq)
        for seq in victims:
            seq.finished = True
            seq.emit(TokenEvent(token=None, finish_reason=reason))

    def _step(self) -> None:
        self._drop_done()
        self._admit()
        if self._running:
            self._decode()
            self.steps += 1

    def _drop_done(self) -> None:
        keep = [i for i, s in enumerate(self._running) if not (s.finished or s.cancelled)]
        if len(keep) != len(self._running):
            for seq in self._running:
                if seq.finished or seq.cancelled:
                    self._release(seq)
            self._running = [self._running[i] for i in keep]
            if self.static is None:
                self._kv.keep_rows(keep)

    def _release(self, seq: Sequence) -> None:
        if self.static is not None and seq.slot >= 0:
            self.static.release(seq.slot)
            self._free_slots.append(seq.slot)
            seq.slot = -1

    def _admit(self) -> None:
        budget = self.prefill_budget
        group: list[Sequence] = []
        with self._cond:
            while self._waiting and len(self._running) + len(group) < self.max_seqs:
                seq = self._waiting[0]
                if seq.cancelled:
                    self._waiting.popleft()
                    continue
                # The first prefill of a step always runs so a long prompt cannot starve.
                if group and budget < len(seq.request.prompt_ids):
                    break
                self._waiting.popleft()
                budget -= len(seq.request.prompt_ids)
                group.append(seq)
        if group:
            self._prefill(group)

    def _prefill(self, group: list[Sequence]) -> None:
        """Prefill the joining sequences in one forward, left-padded to the longest prompt (with a
        static decoder, each into its own slot)."""
        if self.static is not None:
            for seq in group:
                seq.slot = self._free_slots.pop()
            logits = self.static.prefill_many([s.slot for s in group], [s.request.prompt_ids for s in group])
            self._running.extend(group)
            self._sample_and_emit(group, logits)
            self._drop_done()
            return
        ids, mask, positions = left_padded([s.request.prompt_ids for s in group])
        logits, layers = self.stepper(ids, mask, positions, [])
        longest = ids.shape[1]
        self._kv.append_rows(BatchKV(layers=layers, pad=[longest - len(s.request.prompt_ids) for s in group]))
        self._running.extend(group)
        self._sample_and_emit(group, logits)
        self._drop_done()

    def _decode(self) -> None:
        seqs = self._running
        if self.static is not None:
            tokens = torch.zeros(self.static.slots, dtype=torch.long)
            slots = torch.tensor([s.slot for s in seqs])
            tokens[slots] = torch.tensor([s.generated[-1] for s in seqs])
            self._sample_and_emit(seqs, self.static.decode(tokens)[slots.to(self.static.keys[0].device)])
            return
        last = torch.tensor([[s.generated[-1]] for s in seqs], dtype=torch.long)
        mask = None
        if any(self._kv.pad):
            mask = torch.cat([self._kv.attention_mask(), torch.ones((len(seqs), 1), dtype=torch.long)], dim=1)
        positions = torch.tensor([[n] for n in self._kv.real_lengths()], dtype=torch.long)
        logits, layers = self.stepper(last, mask, positions, self._kv.layers)
        self._kv.layers = layers
        self._sample_and_emit(seqs, logits)

    def _sample_and_emit(self, seqs: list[Sequence], logits: torch.Tensor) -> None:
        result = sample(
            logits.float(),  # on the model's device: a GPU step copies back token ids, not [B, V] logits
            [s.request.params for s in seqs],
            [s.generated for s in seqs],
            [s.generator for s in seqs],
        )
        for row, seq in enumerate(seqs):
            token = result.tokens[row]
            seq.generated.append(token)
            req = seq.request
            finish: str | None = None
            if token in req.stop_token_ids:
                finish = "stop"
            elif (
                len(seq.generated) >= req.max_tokens
                or len(req.prompt_ids) + len(seq.generated) >= self.context_length
            ):
                finish = "length"
            if finish is not None:
                seq.finished = True
            if not seq.cancelled:
                seq.emit(TokenEvent(token, result.logprobs[row], result.top_logprobs[row], finish))
