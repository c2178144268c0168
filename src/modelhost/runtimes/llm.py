"""Causal language models (a transformers safetensors directory, or a GGUF file converted once).

Generation runs on our continuous-batching scheduler (dataplane/scheduler.py); this module loads the
weights and tokenizer and knows how to turn chat messages into a prompt.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.dataplane import llama
from modelhost.dataplane.llama import LlamaStepper
from modelhost.dataplane.sampling import SamplingParams
from modelhost.dataplane.scheduler import GenerationRequest, HFStepper, Scheduler, TokenEvent
from modelhost.dataplane.static_decode import StaticDecoder, compile_mode
from modelhost.errors import InvalidInput, UnsupportedFormat
from modelhost.registry.formats import GGUF, TRANSFORMERS
from modelhost.registry.store import sha256_file
from modelhost.runtimes.base import Runtime, Signature, TensorSpec

log = logging.getLogger(__name__)
_CONVERT_LOCK = threading.Lock()
# Prompt tokens per prefill between decode steps with CUDA, unless MODELHOST_LLM_PREFILL_BUDGET says.
GPU_PREFILL_BUDGET = 4096
INT8_CACHE = "int8-weights-v1.safetensors"  # the int8 weights of a converted GGUF (lean forward)


def gguf_cache_dir(settings: Settings, sha256: str) -> Path:
    return settings.resolved_cache_dir / "gguf" / sha256


def convert_gguf(path: Path, settings: Settings, sha256: str | None = None) -> Path:
    """Dequantize a GGUF file to a safetensors transformers directory, once per GGUF sha256."""
    sha = sha256 or sha256_file(path)
    target = gguf_cache_dir(settings, sha)
    if (target / "config.json").is_file():
        return target
    with _CONVERT_LOCK:
        if (target / "config.json").is_file():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        log.info("converting %s to safetensors (once; cached in %s)", path.name, target)
        try:
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        except Exception as exc:
            raise UnsupportedFormat(f"{path.name} could not be read as a GGUF language model: {exc}") from exc
        # The weights are dequantized already; transformers only keeps a "gguf quantized" marker that
        # refuses saving, so drop it and save plain safetensors.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = target.with_name(f".{uuid.uuid4().hex}.part")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # a half-written directory from an interrupted conversion
            shutil.rmtree(target)
        os.replace(tmp, target)
    return target


def _context_length(config: Any) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


class LLMRuntime(Runtime):
    """A causal LM served by the continuous-batching scheduler."""

    name = "llm"
    formats = (GGUF, TRANSFORMERS)

    @classmethod
    def _model_dir(cls, path: Path, settings: Settings) -> Path:
        return convert_gguf(path, settings) if path.is_file() else path

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        model_dir = cls._model_dir(path, settings)
        config = json.loads((model_dir / "config.json").read_text())
        architectures = config.get("architectures") or []
        if not any(str(a).endswith("ForCausalLM") for a in architectures):
            raise UnsupportedFormat(
                f"{path.name} is a transformers model ({', '.join(architectures) or 'no architecture'}) "
                "but not a causal language model (…ForCausalLM)"
            )
        context = min(int(config.get("max_position_embeddings") or 2048), settings.llm_max_context)
        return Signature(
            inputs=(TensorSpec("text_input", "BYTES", (-1,)),),
            outputs=(TensorSpec("text_output", "BYTES", (-1,)),),
            extra={"kind": "llm", "architecture": architectures[0], "context_length": context},
        )

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = self._model_dir(self.path, self.settings)
        cuda = torch.cuda.is_available()
        dtype = torch.bfloat16 if cuda else getattr(torch, self.settings.llm_cpu_dtype)
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype).eval()
        if cuda:
            self.model = self.model.to("cuda")
        quant = "none" if cuda or not llama.int8_available() else self.settings.llm_cpu_quant
        if not (self.settings.llm_fast_forward and llama.supports(self.model)):
            quant = "none"
        with ThreadPoolExecutor(1) as pool:
            # Quantizing the weights is torch work that releases the GIL: it overlaps the tokenizer's
            # (mostly Python) loading, which shortens the cold start.
            future = pool.submit(self._stepper, quant, model_dir)
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            stepper = future.result()
        self.context_length = min(_context_length(self.model.config), self.settings.llm_max_context)
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        log.info(
            "LLM %s: %s forward, %s, weights quantized: %s",
            self.path.name,
            type(stepper).__name__,
            dtype,
            quant,
        )
        self.quant = quant
        static = None
        compiled = compile_mode(self.settings.llm_compile, self.model.device)
        if compiled and isinstance(stepper, LlamaStepper) and quant == "none":
            # Slots for every sequence the scheduler runs, each as long as the context.
            slots = self.settings.llm_max_seqs
            static = StaticDecoder(stepper, slots=slots, capacity=self.context_length, compile=True)
            started = time.perf_counter()
            static.warm_up()  # compile and capture every attention span now, not at a request
            log.info("LLM %s: decode step compiled in %.1f s", self.path.name, time.perf_counter() - started)
        log.info("LLM %s: static compiled decode: %s", self.path.name, static is not None)
        self.scheduler = Scheduler(
            stepper,
            static=static,
            context_length=self.context_length,
            max_seqs=self.settings.llm_max_seqs,
            max_queue=self.settings.llm_max_queue,
            prefill_budget=self._prefill_budget(cuda),
        )

    def _prefill_budget(self, cuda: bool) -> int:
        if cuda and "llm_prefill_budget" not in self.settings.model_fields_set:
            return GPU_PREFILL_BUDGET
        return self.settings.llm_prefill_budget

    def _stepper(self, quant: str, model_dir: Path) -> HFStepper | LlamaStepper:
        if self.settings.llm_fast_forward and llama.supports(self.model):
            # A GGUF's conversion directory is keyed by the GGUF's sha256, so its weights never change:
            # the int8 weights are cached next to them (a transformers directory is quantized per load).
            cache = model_dir / INT8_CACHE if self.path.is_file() else None
            return LlamaStepper(self.model, quant=quant, int8_cache=cache)
        return HFStepper(self.model)

    def unload(self) -> None:
        self.scheduler.close()
        del self.model

    # --- prompts ----------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        return ids

    def chat_prompt(self, messages: list[dict[str, Any]]) -> list[int]:
        """Token ids of ``messages`` through the tokenizer's chat template, ready for the reply."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise InvalidInput("this model has no chat template; use /v1/completions with a prompt")
        try:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as exc:  # jinja errors: the template rejected the messages
            raise InvalidInput(f"the chat template rejected the messages: {exc}") from exc
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))

    def token_text(self, token: int) -> str:
        piece = self.tokenizer.convert_ids_to_tokens(int(token))
        return str(self.tokenizer.convert_tokens_to_string([piece])) if isinstance(piece, str) else ""

    # --- OIP v2: greedy completion of each text_input ------------------------------------------------

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        texts = [x.decode() if isinstance(x, bytes) else str(x) for x in inputs["text_input"].reshape(-1)]
        results = []
        for text in texts:
            done = threading.Event()
            tokens: list[int] = []

            def emit(event: TokenEvent, tokens: list[int] = tokens, done: threading.Event = done) -> None:
                if event.token is not None and event.token not in self.eos_ids:
                    tokens.append(event.token)
                if event.finish_reason is not None:
                    done.set()

            request = GenerationRequest(
                self.encode(text), SamplingParams(temperature=0.0), 64, frozenset(self.eos_ids)
            )
            self.scheduler.submit(request, emit)
            done.wait()
            results.append(self.decode(tokens))
        return {"text_output": np.array(results, dtype=object)}


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids
