"""LLMRuntime's choice of forward: int8 lean forward by default on CPU, the static compiled decoder
when MODELHOST_LLM_COMPILE resolves on (a tiny Llama directory built here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelhost.config import Settings
from modelhost.dataplane import static_decode
from modelhost.runtimes import llm
from modelhost.runtimes.llm import LLMRuntime

from .hf_tiny import tiny_llama, word_tokenizer


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = word_tokenizer(special=["<pad>", "<unk>", "</s>"], bert_template=False)
    model = tiny_llama(vocab_size=32, max_position_embeddings=128, eos_token_id=2, pad_token_id=0)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def load(path: Path, tmp_path: Path, **overrides: Any) -> LLMRuntime:
    settings = Settings(home=tmp_path, grpc_port=0, llm_max_seqs=2, **overrides)
    runtime = LLMRuntime(path, LLMRuntime.inspect(path, settings), settings)
    runtime.load()
    return runtime


def complete(runtime: LLMRuntime) -> str:
    out = runtime.predict({"text_input": np.array([b"good movie in paris"], dtype=object)}, ["text_output"])
    return str(out["text_output"][0])


def test_cpu_defaults_to_the_int8_lean_forward_without_static_decoding(
    llama_dir: Path, tmp_path: Path
) -> None:
    runtime = load(llama_dir, tmp_path)
    try:
        assert runtime.quant == "int8" and runtime.scheduler.static is None
        assert isinstance(complete(runtime), str)
    finally:
        runtime.unload()


def test_compile_on_decodes_through_the_static_decoder(
    llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Traced(static_decode.StaticDecoder):  # dynamo's eager backend: traced, no inductor build
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs, backend="eager")

    monkeypatch.setattr(llm, "StaticDecoder", Traced)
    eager = load(llama_dir, tmp_path, llm_cpu_quant="none", llm_compile="off")
    static = load(llama_dir, tmp_path, llm_cpu_quant="none", llm_compile="on")
    try:
        assert eager.scheduler.static is None
        assert static.scheduler.static is not None and static.scheduler.static.slots == 2
        text = complete(eager)
        assert text and complete(static) == text
    finally:
        eager.unload()
        static.unload()


def test_the_prefill_budget_defaults_larger_with_cuda_unless_set(llama_dir: Path, tmp_path: Path) -> None:
    default = LLMRuntime(
        llama_dir, LLMRuntime.inspect(llama_dir, Settings(home=tmp_path)), Settings(home=tmp_path)
    )
    assert default._prefill_budget(cuda=False) == 512
    assert default._prefill_budget(cuda=True) == llm.GPU_PREFILL_BUDGET == 4096
    chosen = Settings(home=tmp_path, llm_prefill_budget=300)
    runtime = LLMRuntime(llama_dir, LLMRuntime.inspect(llama_dir, chosen), chosen)
    assert runtime._prefill_budget(cuda=True) == runtime._prefill_budget(cuda=False) == 300
