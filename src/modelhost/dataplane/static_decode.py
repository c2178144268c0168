"""Decode over a static, slot-based KV cache: the shape torch.compile and CUDA graphs need (GPU path).

``LlamaStepper`` grows its left-padded cache as sequences join and leave, so tensor shapes and addresses
change from step to step; that suits eager CPU execution. A GPU decode step for a small model is
instead bound by kernel launches, which CUDA graphs remove, and a graph replays only on tensors of the
same shapes at the same addresses. ``StaticDecoder`` therefore allocates per-layer K/V buffers once,
``[slots, kv_heads, capacity, head_dim]``; each sequence owns a slot (its row) and writes its new key
and value at its own position; one decode step runs every slot; attention is masked per slot to the
positions it has written. Attention reads a prefix of the buffers: ``ATTENTION_BUCKET`` columns times
a power of two, so a compiled step is specialised (and, on CUDA, graph-captured) once per bucket.

The step is plain tensor code (``fullgraph=True`` traces it: a test checks that on CPU with dynamo's
eager backend), device-agnostic, and runs uncompiled on CPU, where the tests compare it with
``LlamaStepper``. The scheduler decodes through it when ``MODELHOST_LLM_COMPILE`` resolves on (each
running sequence holds a slot); ``benchmarks/llm.py --synthetic-1b`` times it on a Llama-shaped 1.2B
model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from modelhost.dataplane.llama import DenseLinear, LlamaStepper

# Attention spans at least this many columns, doubling as sequences grow (one compiled graph per span).
ATTENTION_BUCKET = 256


def compile_mode(setting: str, device: torch.device) -> bool:
    """Resolve ``auto|on|off``: auto compiles only on CUDA (CPU compile time costs the cold start)."""
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"compile must be auto, on or off, not {setting!r}")
    return setting == "on" or (setting == "auto" and device.type == "cuda")


class StaticDecoder:
    """Batched decode of up to ``slots`` sequences of at most ``capacity`` tokens (see module doc)."""

    def __init__(
        self,
        stepper: LlamaStepper,
        *,
        slots: int,
        capacity: int,
        compile: bool = False,
        backend: str = "inductor",
    ) -> None:
        if stepper.quant != "none":
            raise ValueError(
                "the static decoder runs dense weights (bf16 on GPU); build the stepper with quant='none'"
            )
        self.stepper = stepper
        self.slots, self.capacity = slots, capacity
        dtype, device = stepper.embed.dtype, stepper.embed.device
        shape = (slots, stepper.kv_heads, capacity, stepper.head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in stepper.layers]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in stepper.layers]
        self.lengths = [0] * slots  # tokens written per slot
        self.cos, self.sin = stepper.cos.to(device), stepper.sin.to(device)
        self._rows = torch.arange(slots, device=device)
        self._columns = torch.arange(capacity, device=device)
        self._step: Any = self._forward
        if compile:
            if device.type == "cuda":
                # CUDA graphs copy every input that is not known to keep its address into a graph-owned
                # buffer before each replay; weights and caches are fixed, so say so (the caches are then
                # written in place, and no weight is copied per step).
                for t in self._fixed_tensors():
                    torch._dynamo.mark_static_address(t)
            # Dynamo counts recompiles per code object: every decoder (one per loaded model version)
            # and span bucket is one; the default limit of 8 would silently fall back to eager.
            dynamo_config = torch._dynamo.config
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
            mode = "reduce-overhead" if device.type == "cuda" and backend == "inductor" else None
            self._step = torch.compile(self._forward, mode=mode, fullgraph=True, backend=backend)

    def _fixed_tensors(self) -> list[torch.Tensor]:
        s = self.stepper
        tensors = [*self.keys, *self.values, self.cos, self.sin, self._rows, self._columns, s.embed, s.norm]
        for layer in s.layers:
            tensors += [layer.norm1, layer.norm2]
            tensors += [
                lin.weight
                for lin in (layer.qkv, layer.o, layer.gate_up, layer.down)
                if isinstance(lin, DenseLinear)
            ]
        if isinstance(s.lm_head, DenseLinear):
            tensors.append(s.lm_head.weight)
        return tensors

    @torch.inference_mode()
    def prefill(self, slot: int, prompt: list[int]) -> torch.Tensor:
        """Run ``prompt`` into ``slot`` (replacing what it held); returns the last position's logits [V]."""
        n = len(prompt)
        if not 0 < n < self.capacity:
            raise ValueError(f"a prompt of {n} tokens does not fit a slot of {self.capacity}")
        device = self.keys[0].device
        ids = torch.tensor([prompt], device=device)
        logits, layers = self.stepper(ids, None, torch.arange(n, device=device)[None], [])
        for index, (k, v) in enumerate(layers):
            self.keys[index][slot, :, :n] = k[0]
            self.values[index][slot, :, :n] = v[0]
        self.lengths[slot] = n
        return logits[0]

    def release(self, slot: int) -> None:
        """Mark ``slot`` empty (its stale cache columns are never attended to again)."""
        self.lengths[slot] = 0

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """One step for every slot: ``tokens`` [slots] are each slot's last token; returns logits
        [slots, V]. An empty slot decodes garbage at its column 0 that nobody reads, and stays empty."""
        if max(self.lengths) >= self.capacity:
            raise ValueError(f"a slot is full ({self.capacity} tokens)")
        device = self.keys[0].device
        positions = torch.tensor(self.lengths, device=device)
        # Powers of two from ATTENTION_BUCKET up: a handful of compiled graphs for any context length
        # (dynamo recompiles at most 8 times per function by default).
        span = ATTENTION_BUCKET
        while span < max(self.lengths) + 1:
            span *= 2
        span = min(span, self.capacity)
        logits = self._step(tokens.to(device), positions, span)
        self.lengths = [n + 1 if n else 0 for n in self.lengths]
        return logits

    def _forward(self, tokens: torch.Tensor, positions: torch.Tensor, span: int) -> torch.Tensor:
        s = self.stepper
        batch = tokens.shape[0]
        cos = self.cos[positions][:, None, None, :]  # [S, 1, 1, D]
        sin = self.sin[positions][:, None, None, :]
        # Slot i sees the columns it has written, and the one it writes now.
        mask = (self._columns[:span][None, :] <= positions[:, None])[:, None, None, :]
        x = F.embedding(tokens[:, None], s.embed)
        for index, layer in enumerate(s.layers):
            assert isinstance(layer.qkv, DenseLinear)
            h = s._rms(x, layer.norm1)
            q, k, v = layer.qkv(h).split(s.split, dim=-1)
            q = s._rope(q.view(batch, 1, s.heads, s.head_dim).transpose(1, 2), cos, sin)
            k = s._rope(k.view(batch, 1, s.kv_heads, s.head_dim).transpose(1, 2), cos, sin)
            v = v.view(batch, 1, s.kv_heads, s.head_dim).transpose(1, 2)
            keys, values = self.keys[index], self.values[index]
            keys[self._rows, :, positions] = k[:, :, 0]
            values[self._rows, :, positions] = v[:, :, 0]
            attn = F.scaled_dot_product_attention(
                q,
                keys[:, :, :span],
                values[:, :, :span],
                attn_mask=mask,
                enable_gqa=s.heads != s.kv_heads,
            )
            x = x + layer.o(attn.transpose(1, 2).reshape(batch, 1, -1))
            gate, up = layer.gate_up(s._rms(x, layer.norm2)).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        return s.lm_head(s._rms(x[:, -1, :], s.norm)).float()
