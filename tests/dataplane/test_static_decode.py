"""The static-cache decode step (the GPU path) against the lean forward, on CPU with a tiny model."""

from __future__ import annotations

import pytest
import torch

from modelhost.dataplane import static_decode
from modelhost.dataplane.llama import LlamaStepper
from modelhost.dataplane.static_decode import StaticDecoder, compile_mode

from .test_llama import tiny


def reference(stepper: LlamaStepper, prompt: list[int], forced: list[int]) -> list[torch.Tensor]:
    """Logits after the prompt and after each forced token, one sequence alone."""
    logits, layers = stepper(torch.tensor([prompt]), None, torch.arange(len(prompt))[None], [])
    out = [logits[0]]
    for i, token in enumerate(forced):
        logits, layers = stepper(torch.tensor([[token]]), None, torch.tensor([[len(prompt) + i]]), layers)
        out.append(logits[0])
    return out


@pytest.mark.parametrize("compiled", [False, True])
def test_static_decode_matches_the_lean_forward_per_slot(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static_decode, "ATTENTION_BUCKET", 4)  # cross several attention spans
    stepper = LlamaStepper(tiny())
    # Dynamo's eager backend traces the step with fullgraph=True (any graph break fails) in seconds.
    decoder = StaticDecoder(stepper, slots=3, capacity=24, compile=compiled, backend="eager")
    prompts = [[5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8], [9]]
    forced = [list(range(10 * row + 11, 10 * row + 21)) for row in range(3)]
    first = [decoder.prefill(slot, prompt) for slot, prompt in enumerate(prompts)]
    steps = [torch.stack(first)]
    for i in range(10):  # attention spans 16 columns, then 24 (the capacity)
        steps.append(decoder.decode(torch.tensor([f[i] for f in forced])))
    assert decoder.lengths == [3 + 10, 8 + 10, 1 + 10]
    for slot, prompt in enumerate(prompts):
        ref = reference(stepper, prompt, forced[slot])
        for step, expected in enumerate(ref):
            torch.testing.assert_close(steps[step][slot], expected, rtol=1e-4, atol=1e-4)


def test_a_group_prefill_fills_each_slot_as_a_prefill_alone_does() -> None:
    stepper = LlamaStepper(tiny())
    alone = StaticDecoder(stepper, slots=4, capacity=24)
    grouped = StaticDecoder(stepper, slots=4, capacity=24)
    prompts = [[5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 8], [9]]
    slots = [3, 0, 2]  # any slots, in any order
    expected = torch.stack([alone.prefill(slot, p) for slot, p in zip(slots, prompts, strict=True)])
    got = grouped.prefill_many(slots, prompts)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert grouped.lengths == alone.lengths == [8, 0, 1, 3]
    for layer in range(len(stepper.layers)):
        for slot, prompt in zip(slots, prompts, strict=True):
            n = len(prompt)
            torch.testing.assert_close(grouped.keys[layer][slot, :, :n], alone.keys[layer][slot, :, :n])
            torch.testing.assert_close(grouped.values[layer][slot, :, :n], alone.values[layer][slot, :, :n])
        assert not grouped.keys[layer][1].any()  # the slot nobody prefilled is untouched
    # The next decode step agrees too.
    feed = torch.tensor([11, 0, 12, 13])
    torch.testing.assert_close(grouped.decode(feed)[slots], alone.decode(feed)[slots], rtol=1e-4, atol=1e-5)


def test_a_slot_is_refilled_without_seeing_its_previous_sequence() -> None:
    stepper = LlamaStepper(tiny())
    decoder = StaticDecoder(stepper, slots=1, capacity=16)
    decoder.prefill(0, [1, 2, 3, 4, 5, 6])
    decoder.decode(torch.tensor([7]))
    decoder.prefill(0, [8, 9])
    got = decoder.decode(torch.tensor([10]))
    torch.testing.assert_close(got[0], reference(stepper, [8, 9], [10])[1], rtol=1e-4, atol=1e-4)


def test_full_slots_and_quantized_steppers_are_refused() -> None:
    decoder = StaticDecoder(LlamaStepper(tiny()), slots=1, capacity=4)
    with pytest.raises(ValueError, match="does not fit"):
        decoder.prefill(0, [1, 2, 3, 4])
    decoder.prefill(0, [1, 2, 3])
    decoder.decode(torch.tensor([4]))
    with pytest.raises(ValueError, match="full"):
        decoder.decode(torch.tensor([5]))
    with pytest.raises(ValueError, match="dense"):
        StaticDecoder(LlamaStepper(tiny(), quant="int8"), slots=1, capacity=4)


def test_compile_auto_means_cuda_only() -> None:
    assert compile_mode("auto", torch.device("cuda")) is True
    assert compile_mode("auto", torch.device("cpu")) is False
    assert compile_mode("on", torch.device("cpu")) is True
    assert compile_mode("off", torch.device("cuda")) is False
    with pytest.raises(ValueError, match="maybe"):
        compile_mode("maybe", torch.device("cpu"))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "traced"])
def test_scheduler_on_the_static_decoder_matches_sequential_greedy(compiled: bool) -> None:
    import threading
    import time

    from modelhost.dataplane.sampling import SamplingParams
    from modelhost.dataplane.scheduler import GenerationRequest, Scheduler, TokenEvent

    model = tiny()
    stepper = LlamaStepper(model)
    decoder = StaticDecoder(stepper, slots=3, capacity=64, compile=compiled, backend="eager")
    scheduler = Scheduler(stepper, context_length=64, max_seqs=3, static=decoder)
    prompts = [[1, 2, 3], [5, 6, 7, 8, 9, 10, 11], [4], [20, 21, 22, 23], [30, 31], [40, 41, 42, 43, 44]]
    results: list[list[int]] = [[] for _ in prompts]
    done = [threading.Event() for _ in prompts]
    try:
        for i, prompt in enumerate(prompts):  # more requests than slots: slots are freed and refilled

            def emit(event: TokenEvent, i: int = i) -> None:
                if event.token is not None:
                    results[i].append(event.token)
                if event.finish_reason is not None:
                    done[i].set()

            scheduler.submit(GenerationRequest(prompt, SamplingParams(temperature=0.0), 4 + 3 * i), emit)
            time.sleep(0.005)
        assert all(d.wait(60) for d in done)
        for i, prompt in enumerate(prompts):
            ref = model.generate(
                torch.tensor([prompt]), max_new_tokens=4 + 3 * i, min_new_tokens=4 + 3 * i, do_sample=False
            )
            assert results[i] == ref[0, len(prompt) :].tolist()
        deadline = time.monotonic() + 5
        while scheduler.stats()["running"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(scheduler._free_slots) == [0, 1, 2] and decoder.lengths == [0, 0, 0]
    finally:
        scheduler.close()


def test_scheduler_refuses_a_decoder_with_too_few_slots() -> None:
    from modelhost.dataplane.scheduler import Scheduler

    stepper = LlamaStepper(tiny())
    with pytest.raises(ValueError, match="slots"):
        Scheduler(stepper, context_length=16, max_seqs=4, static=StaticDecoder(stepper, slots=2, capacity=16))
