"""A lean forward for Llama-architecture causal LMs (SmolLM2, Llama 2/3 shapes) over our KV cache.

transformers' forward is general: per step it builds a cache object, masks and rotary tables, and runs
several hundred small modules through hooks and wrappers. On a small model on CPU that bookkeeping is
a large share of a decode step, and the KV cache grows by concatenation (a full copy per step). This
stepper computes the same function with the same weights (fp32 stays fp32):

* q/k/v and gate/up projections fused into one matmul each (the weight rows concatenated once);
* rotary cos/sin looked up from a table built once, instead of recomputed per step;
* the KV cache written in place into buffers with spare columns (grown in chunks), so a decode step
  copies one column per layer instead of the whole cache;
* ``F.rms_norm`` and SDPA with native grouped-query attention;
* optionally (``quant="int8"``, CPU) int8 weights for every projection and the lm_head, so a decode
  step reads a quarter of the fp32 bytes (see ``Int8Linear``).

It has the ``HFStepper`` call contract, so the scheduler and ``kvcache.BatchKV`` work unchanged:
layers are ``[B, kv_heads, L, head_dim]`` key/value tensors (keys after rotary), rows left-padded.
Models it does not cover exactly (other architectures, biases, scaled RoPE) keep ``HFStepper``.
"""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from modelhost.dataplane.kvcache import LayerKV

log = logging.getLogger(__name__)

# Columns added to a KV buffer when it is full (amortises reallocation to one per 64 decode steps).
KV_GROWTH = 64


def supports(model: Any) -> bool:
    """True when ``model`` is a plain Llama this stepper reproduces exactly."""
    config = getattr(model, "config", None)
    if config is None or type(model).__name__ != "LlamaForCausalLM":
        return False
    rope = getattr(config, "rope_parameters", None) or {}
    return (
        getattr(config, "model_type", None) == "llama"
        and not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False)
        and getattr(config, "hidden_act", None) == "silu"
        and getattr(config, "pretraining_tp", 1) == 1
        and rope.get("rope_type", "default") == "default"
    )


def _room(t: torch.Tensor, length: int) -> bool:
    """Whether ``t`` ([B, H, L, D]) is a prefix view of a buffer with at least ``length`` columns."""
    b, h, _, d = t.shape
    s = t.stride()
    if t.storage_offset() != 0 or s[3] != 1 or s[2] != d or s[1] % d:
        return False
    capacity = s[1] // d
    if capacity < length or s[0] != h * capacity * d:
        return False
    return t.untyped_storage().nbytes() >= b * h * capacity * d * t.element_size()


def extend(past: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
    """``past`` with ``new`` appended along the sequence axis, in place when its buffer has room."""
    if past is None:
        b, h, n, d = new.shape
        buf = new.new_empty((b, h, n + KV_GROWTH, d))
        buf[:, :, :n] = new
        return buf[:, :, :n]
    b, h, length, d = past.shape
    total = length + new.shape[2]
    if _room(past, total):
        full = past.as_strided((b, h, total, d), past.stride())
        full[:, :, length:] = new
        return full
    buf = past.new_empty((b, h, total + KV_GROWTH, d))
    buf[:, :, :length] = past
    buf[:, :, length:total] = new
    return buf[:, :, :total]


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel: (int8 weight, fp32 scale per row)."""
    w = weight.detach().float()
    low, high = torch.aminmax(w, dim=1)  # one pass, no |w| copy (this runs in the cold start)
    scale = (torch.maximum(high, -low) / 127.0).clamp_min(1e-12)
    int8 = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return int8, scale


class DenseLinear:
    """``x @ weight.T`` in the weight's own dtype."""

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight.detach()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class Int8Linear:
    """``x @ weight.T`` with the weight stored as int8, one fp32 scale per output channel.

    Decode on CPU is bound by the bytes of weights read per token; int8 reads a quarter of fp32. The
    kernel is fbgemm's dynamic quantized linear (VNNI/AVX-512 int8 dot products, int32 accumulation),
    the fastest of the CPU int8 and bf16 kernels measured on Zen 4 (benchmarks/RESULTS.md). It quantizes
    its whole input with one scale and zero point from the input's min and max. A single row (a
    single-stream decode step) is passed as it is: quantized on exactly its own range. Several rows (a
    prefill, a batched decode step) are each divided by their absolute maximum (the output multiplied
    back: exact, the layer being linear) and an anchor row ``[1, -1, 0, ...]`` pins the range to
    [-1, 1], so each row is quantized the same whatever else is in the batch (a multi-row batch's rows
    do not depend on their neighbours; a row alone is rounded on its own, slightly finer, range). Which
    variant where was measured on SmolLM2 (docs/openai.md): the anchor costs a lone decode row
    accuracy (one-sided outliers double its grid step), while a shared range costs a prefill its first
    token. Outputs are fp32.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        self._pack(*quantize_int8(weight))

    @classmethod
    def from_int8(cls, int8: torch.Tensor, scale: torch.Tensor) -> Int8Linear:
        """From ``quantize_int8``'s output (e.g. read back from a cache file)."""
        linear = cls.__new__(cls)
        linear._pack(int8, scale)
        return linear

    def _pack(self, int8: torch.Tensor, scale: torch.Tensor) -> None:
        zero = torch.zeros(int8.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # "quantized tensors are deprecated": still the fastest CPU kernel
            warnings.simplefilter("ignore", UserWarning)
            quantized = torch._make_per_channel_quantized_tensor(int8, scale.double(), zero, 0)
        self.out_features = int(int8.shape[0])
        self.packed = torch.ops.quantized.linear_prepack(quantized, None)
        self.anchor = torch.zeros((1, int8.shape[1]))
        self.anchor[0, :2] = torch.tensor([1.0, -1.0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        # Few, in-place ops: this wrapper runs 121 times per SmolLM2 decode step.
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).float()
        if rows.shape[0] == 1:
            out = torch.ops.quantized.linear_dynamic(rows, self.packed, False)
        else:
            peak = rows.abs().amax(dim=1, keepdim=True).clamp_min_(1e-30)
            unit = torch.cat((rows / peak, self.anchor))
            out = torch.ops.quantized.linear_dynamic(unit, self.packed, False)[:-1].mul_(peak)
        return out.view(*shape[:-1], self.out_features)


Linear = DenseLinear | Int8Linear
QUANT_MODES = ("none", "int8")


def int8_available() -> bool:
    """Whether this torch build has the fbgemm (x86) int8 kernels ``Int8Linear`` uses."""
    return "fbgemm" in torch.backends.quantized.supported_engines


def make_linear(weight: torch.Tensor, quant: str) -> Linear:
    if quant == "int8":
        return Int8Linear(weight)
    if quant != "none":
        raise ValueError(f"unknown weight quantization {quant!r} (one of {', '.join(QUANT_MODES)})")
    return DenseLinear(weight)


class _Weights:
    """Builds the forward's linear layers; int8 ones come from ``cache`` (a safetensors file) when it
    holds them, and are written there after quantizing otherwise, so a restart skips the quantization."""

    def __init__(self, quant: str, cache: Path | None) -> None:
        if quant not in QUANT_MODES:
            raise ValueError(f"unknown weight quantization {quant!r} (one of {', '.join(QUANT_MODES)})")
        self.quant, self.cache = quant, cache
        self.stored: dict[str, torch.Tensor] = {}
        if quant == "int8" and cache is not None and cache.is_file():
            from safetensors.torch import load_file

            self.stored = load_file(str(cache))
        self.new: dict[str, torch.Tensor] = {}

    def linear(self, name: str, weight: Callable[[], torch.Tensor]) -> Linear:
        if self.quant == "none":
            return DenseLinear(weight())
        if f"{name}.int8" in self.stored:
            int8, scale = self.stored[f"{name}.int8"], self.stored[f"{name}.scale"]
        else:
            int8, scale = quantize_int8(weight())
            self.new[f"{name}.int8"], self.new[f"{name}.scale"] = int8, scale
        return Int8Linear.from_int8(int8, scale)

    def save(self) -> None:
        if self.cache is None or not self.new:
            return
        from safetensors.torch import save_file

        tmp = self.cache.with_name(f".{uuid.uuid4().hex}.part")
        try:
            save_file(self.stored | self.new, str(tmp))
            os.replace(tmp, self.cache)
        except OSError as exc:  # a read-only cache costs the next start the quantization, nothing else
            log.warning("could not cache the int8 weights in %s: %s", self.cache, exc)
            tmp.unlink(missing_ok=True)


class _Layer:
    def __init__(self, layer: Any, weights: _Weights, name: str) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.qkv = weights.linear(
            f"{name}.qkv", lambda: torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        )
        self.o = weights.linear(f"{name}.o", lambda: attn.o_proj.weight)
        self.gate_up = weights.linear(
            f"{name}.gate_up", lambda: torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        )
        self.down = weights.linear(f"{name}.down", lambda: mlp.down_proj.weight)
        self.norm1 = layer.input_layernorm.weight.detach()
        self.norm2 = layer.post_attention_layernorm.weight.detach()


def _fault_in(t: torch.Tensor) -> None:
    """Read one value per 4 KB page of ``t``. Weights loaded from safetensors are a file mapping whose
    pages become resident as they are first read. With int8 projections nothing reads the fp32
    embedding table but ``F.embedding``, row by row, so the server's RSS grew as new token ids came in
    (+29 MB over a 1,000-request soak, up to the table's 113 MB on SmolLM2): it looked like a leak.
    Reading it once at load makes the resident size steady from the start."""
    flat = t.reshape(-1)
    step = max(1, 4096 // t.element_size())
    float(flat[::step].float().sum())


class LlamaStepper:
    """Forward of a ``LlamaForCausalLM`` (see the module docstring); returns last-position logits."""

    def __init__(self, model: Any, quant: str = "none", int8_cache: Path | None = None) -> None:
        """``quant="int8"`` quantizes the projections and lm_head (CPU); ``int8_cache`` is a file that
        keeps the quantized weights between starts (only for weights that never change under it)."""
        config = model.config
        self.model = model
        self.quant = quant
        self.vocab_size = int(config.vocab_size)
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.heads)
        self.eps = float(config.rms_norm_eps)
        self.hidden = int(config.hidden_size)
        inner = model.model
        self.embed = inner.embed_tokens.weight.detach()
        if quant != "none":
            _fault_in(self.embed)
        self.norm = inner.norm.weight.detach()
        weights = _Weights(quant, int8_cache)
        self.lm_head = weights.linear("lm_head", lambda: model.lm_head.weight)
        self.layers = [_Layer(layer, weights, f"layers.{i}") for i, layer in enumerate(inner.layers)]
        weights.save()
        self.split = [
            self.heads * self.head_dim,
            self.kv_heads * self.head_dim,
            self.kv_heads * self.head_dim,
        ]
        # The rotary table, computed exactly as transformers does (fp32 outer product, then cos/sin).
        rotary = inner.rotary_emb
        positions = torch.arange(
            int(config.max_position_embeddings), dtype=torch.float32, device=rotary.inv_freq.device
        )
        freqs = positions[:, None] * rotary.inv_freq.float()[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        # int8 projections return fp32, so the residual stream (and the rotary tables) are fp32 then.
        dtype = torch.float32 if quant == "int8" else self.embed.dtype
        self.cos = (emb.cos() * rotary.attention_scaling).to(dtype)
        self.sin = (emb.sin() * rotary.attention_scaling).to(dtype)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = self.head_dim // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return F.rms_norm(x, (self.hidden,), weight, self.eps)
        return weight * F.rms_norm(x.float(), (self.hidden,), None, self.eps).to(x.dtype)

    def _mask(self, attention_mask: torch.Tensor | None, past: int, steps: int) -> torch.Tensor | None:
        """Boolean [B|1, 1, T, past+T] attention mask; None when plain causal attention is enough."""
        total = past + steps
        if attention_mask is None and (steps == 1 or past == 0):
            return None
        device = self.embed.device
        query = torch.arange(past, total, device=device)[:, None]
        key = torch.arange(total, device=device)[None, :]
        allowed = key <= query  # causal
        if attention_mask is not None:
            allowed = allowed[None] & attention_mask.bool()[:, None, :]
            # A left-padding query row sees no key at all; letting it see itself keeps its (unused)
            # output finite, so no NaN reaches the cached K/V of padded positions.
            allowed = allowed | (key == query)[None]
            return allowed[:, None]
        return allowed[None, None]

    @torch.inference_mode()
    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor,
        layers: list[LayerKV],
    ) -> tuple[torch.Tensor, list[LayerKV]]:
        """Forward ``input_ids`` [B, T] after the cached ``layers``; ``attention_mask`` [B, past+T]
        (None: no padding anywhere)."""
        batch, steps = input_ids.shape
        past = int(layers[0][0].shape[2]) if layers else 0
        device = self.embed.device  # the scheduler builds its inputs on the CPU
        input_ids, position_ids = input_ids.to(device), position_ids.to(device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(device)
        mask = self._mask(attention_mask, past, steps)
        causal = mask is None and steps > 1
        cos = self.cos[position_ids].unsqueeze(1)  # [B, 1, T, D]
        sin = self.sin[position_ids].unsqueeze(1)
        x = F.embedding(input_ids, self.embed).to(self.cos.dtype)
        out: list[LayerKV] = []
        for index, layer in enumerate(self.layers):
            h = self._rms(x, layer.norm1)
            q, k, v = layer.qkv(h).split(self.split, dim=-1)
            q = self._rope(q.view(batch, steps, self.heads, self.head_dim).transpose(1, 2), cos, sin)
            k = self._rope(k.view(batch, steps, self.kv_heads, self.head_dim).transpose(1, 2), cos, sin)
            v = v.view(batch, steps, self.kv_heads, self.head_dim).transpose(1, 2)
            past_k, past_v = layers[index] if layers else (None, None)
            keys, values = extend(past_k, k), extend(past_v, v)
            out.append((keys, values))
            attn = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=mask, is_causal=causal, enable_gqa=self.heads != self.kv_heads
            )
            x = x + layer.o(attn.transpose(1, 2).reshape(batch, steps, -1))
            gate, up = layer.gate_up(self._rms(x, layer.norm2)).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        last = self._rms(x[:, -1, :], self.norm)
        return self.lm_head(last).float(), out
