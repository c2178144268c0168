"""The continuous-batching scheduler on a tiny random-weight Llama built here (fast, no files)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import torch
from transformers import LlamaForCausalLM

from modelhost.dataplane.llama import LlamaStepper
from modelhost.dataplane.sampling import SamplingParams
from modelhost.dataplane.scheduler import GenerationRequest, HFStepper, Scheduler, TokenEvent
from modelhost.errors import ContextLengthExceeded, InvalidInput, Overloaded
from tests.runtimes.hf_tiny import tiny_llama

GREEDY = SamplingParams(temperature=0.0)


@pytest.fixture(scope="module")
def tiny_model() -> LlamaForCausalLM:
    return tiny_llama()


@pytest.fixture(params=[HFStepper, LlamaStepper], ids=["hf", "lean"])
def scheduler(tiny_model: LlamaForCausalLM, request: pytest.FixtureRequest) -> Iterator[Scheduler]:
    s = Scheduler(request.param(tiny_model), context_length=128, max_seqs=3, max_queue=16)
    yield s
    s.close()


class Collector:
    """Gathers one request's events and signals when it finished."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.finish: str | None = None
        self.done = threading.Event()

    def __call__(self, event: TokenEvent) -> None:
        if event.token is not None:
            self.tokens.append(event.token)
        if event.finish_reason is not None:
            self.finish = event.finish_reason
            self.done.set()

    def wait(self) -> Collector:
        assert self.done.wait(30), "generation did not finish"
        return self


def reference(model: LlamaForCausalLM, prompt: list[int], n: int) -> list[int]:
    out = model.generate(
        torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0
    )
    return list(out[0, len(prompt) :].tolist())


def test_requests_joining_and_leaving_match_sequential_greedy(
    scheduler: Scheduler, tiny_model: LlamaForCausalLM
) -> None:
    prompts = [[1, 2, 3], [5, 6, 7, 8, 9, 10, 11], [4], [20, 21, 22, 23], [30, 31], [40, 41, 42, 43, 44]]
    collectors = []
    for i, prompt in enumerate(prompts):
        c = Collector()
        scheduler.submit(GenerationRequest(prompt, GREEDY, 4 + 3 * i), c)
        collectors.append(c)
        time.sleep(0.005)  # arrive while others are decoding
    for i, (prompt, c) in enumerate(zip(prompts, collectors, strict=True)):
        assert c.wait().tokens == reference(tiny_model, prompt, 4 + 3 * i)
        assert c.finish == "length"
    assert scheduler.stats()["running"] == 0


def test_stop_token_ends_with_stop(scheduler: Scheduler, tiny_model: LlamaForCausalLM) -> None:
    expected = reference(tiny_model, [1, 2, 3], 6)
    stop_at = expected[2]
    c = Collector()
    scheduler.submit(GenerationRequest([1, 2, 3], GREEDY, 6, frozenset({stop_at})), c)
    c.wait()
    assert c.finish == "stop"
    assert c.tokens == expected[: expected.index(stop_at) + 1]


def test_cancelled_sequence_leaves_and_others_continue(
    scheduler: Scheduler, tiny_model: LlamaForCausalLM
) -> None:
    long = Collector()
    seq = scheduler.submit(GenerationRequest([7, 8], GREEDY, 100), long)
    other = Collector()
    scheduler.submit(GenerationRequest([9, 10, 11], GREEDY, 20), other)
    while len(long.tokens) < 3:
        time.sleep(0.001)
    seq.cancel()
    assert other.wait().tokens == reference(tiny_model, [9, 10, 11], 20)
    assert not long.done.is_set()  # a cancelled sequence gets no more events
    deadline = time.monotonic() + 5
    while scheduler.stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.stats()["running"] == 0
    assert len(long.tokens) < 100


def test_max_seqs_and_queue_limit(tiny_model: LlamaForCausalLM) -> None:
    gate = threading.Event()
    batch_sizes: list[int] = []

    class SlowStepper(HFStepper):
        def __call__(self, input_ids, *args, **kwargs):  # type: ignore[no-untyped-def]
            gate.wait(10)
            batch_sizes.append(int(input_ids.shape[0]))
            return super().__call__(input_ids, *args, **kwargs)

    s = Scheduler(SlowStepper(tiny_model), context_length=64, max_seqs=2, max_queue=2)
    try:
        cs = [Collector() for _ in range(3)]
        for c in cs:  # one is taken into prefill (blocked on the gate), two wait in the queue
            s.submit(GenerationRequest([1, 2], GREEDY, 3), c)
            time.sleep(0.02)
        with pytest.raises(Overloaded, match="queue limit 2"):
            s.submit(GenerationRequest([1, 2], GREEDY, 3), Collector())
        gate.set()
        for c in cs:
            assert c.wait().finish == "length"
        assert max(batch_sizes) == 2  # never more than max_seqs decode together
    finally:
        gate.set()
        s.close()


def test_fifo_admission_is_fair(tiny_model: LlamaForCausalLM) -> None:
    s = Scheduler(HFStepper(tiny_model), context_length=64, max_seqs=1, max_queue=8)
    order: list[int] = []
    try:
        collectors = []
        for i in range(4):
            c = Collector()

            def emit(event: TokenEvent, c: Collector = c, i: int = i) -> None:
                if event.finish_reason is not None:
                    order.append(i)
                c(event)

            s.submit(GenerationRequest([1, 2, 3], GREEDY, 3), emit)
            collectors.append(c)
        for c in collectors:
            c.wait()
        assert order == [0, 1, 2, 3]
    finally:
        s.close()


def test_bad_requests_are_refused_before_queueing(scheduler: Scheduler) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        scheduler.submit(GenerationRequest([], GREEDY, 3), Collector())
    with pytest.raises(ContextLengthExceeded, match="maximum context length is 128"):
        scheduler.submit(GenerationRequest([1] * 100, GREEDY, 50), Collector())
    with pytest.raises(ContextLengthExceeded, match="the prompt has 200"):
        scheduler.submit(GenerationRequest([1] * 200, GREEDY, 1), Collector())
    assert scheduler.stats()["waiting"] == 0


def test_cache_is_released_after_many_requests(scheduler: Scheduler) -> None:
    for _ in range(3):
        cs = [Collector() for _ in range(4)]
        for c in cs:
            scheduler.submit(GenerationRequest([3, 4, 5], SamplingParams(seed=1), 5), c)
        for c in cs:
            c.wait()
    # The collectors are woken before the scheduler thread frees the batch's cache: wait for it.
    deadline = time.monotonic() + 5
    while (scheduler.stats()["running"] or scheduler._kv.pad) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler._kv.layers == [] and scheduler._kv.pad == []


def test_freed_heap_is_trimmed_while_decoding(scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelhost.dataplane import scheduler as module

    calls: list[int] = []
    monkeypatch.setattr(module, "_MALLOC_TRIM", calls.append)
    monkeypatch.setattr(module, "TRIM_EVERY_S", 0.0)  # every step
    c = Collector()
    scheduler.submit(GenerationRequest([3, 4, 5], SamplingParams(seed=1), 4), c)
    c.wait()
    assert calls and set(calls) == {0}
    calls.clear()
    monkeypatch.setattr(module, "TRIM_EVERY_S", 3600.0)  # not again within the hour
    scheduler._trimmed_at = time.monotonic()
    c = Collector()
    scheduler.submit(GenerationRequest([3, 4, 5], SamplingParams(seed=1), 4), c)
    c.wait()
    assert calls == []


def test_close_aborts_waiting_requests(tiny_model: LlamaForCausalLM) -> None:
    s = Scheduler(HFStepper(tiny_model), context_length=128, max_seqs=1)
    c = Collector()
    s.submit(GenerationRequest([1], GREEDY, 120), c)
    s.close()
    assert c.wait().finish in ("abort", "length")


@pytest.mark.parametrize("base", [HFStepper, LlamaStepper], ids=["hf", "lean"])
def test_prompts_prefilled_together_match_sequential_greedy(
    tiny_model: LlamaForCausalLM, base: type[HFStepper] | type[LlamaStepper]
) -> None:
    gate = threading.Event()

    class GatedStepper(base):  # type: ignore[valid-type,misc]
        def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            gate.wait(10)
            return super().__call__(*args, **kwargs)

    s = Scheduler(GatedStepper(tiny_model), context_length=128, max_seqs=8, prefill_budget=64)
    try:
        prompts = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [4], [20, 21, 22], [30, 31, 32, 33, 34, 35]]
        first = Collector()
        s.submit(GenerationRequest([50, 51], GREEDY, 6), first)  # holds the engine at the gate
        time.sleep(0.05)
        collectors = []
        for p in prompts:  # these queue up and join in one padded prefill
            c = Collector()
            s.submit(GenerationRequest(p, GREEDY, 6), c)
            collectors.append(c)
        gate.set()
        assert first.wait().tokens == reference(tiny_model, [50, 51], 6)
        for p, c in zip(prompts, collectors, strict=True):
            assert c.wait().tokens == reference(tiny_model, p, 6)
    finally:
        gate.set()
        s.close()
