"""Decode over a static, slot-based KV cache: the shape torch.compile and CUDA graphs need (GPU path).

``LlamaStepper`` grows its left-padded cache as sequences join and leave, so tensor shapes and addresses
change from step to step; that suits eager CPU execution. A GPU decode step for a small model is
instead bound by kernel launches, which CUDA graphs remove, and a graph replays only on tensors of the
same shapes at the same addresses. ``StaticDecoder`` therefore allocates per-layer K/V buffers once,
``[slots, kv_heads, capacity, head_dim]``; each sequence owns a slot (its row) and writes its new key
and value at its own position; one decode step runs every slot; attention is masked per slot to the
positions it has written. Attention reads a prefix of the buffers: ``ATTENTION_BUCKET`` columns times
a power of two, so a compiled step is specialised once for the first span and once (span dynamic) for
all others.

On CUDA the compiled step (inductor, without its own CUDA graphs) is captured into one
``torch.cuda.CUDAGraph`` per span, with the token and position inputs in fixed buffers: a replay is
one launch. Measured on an H200 with a Llama-shaped 1.24B model (benchmarks/llm_gpu.py), torch's
``mode="reduce-overhead"`` (CUDA graph trees) cost 1.41 ms per batch-1 step against 1.15 ms for the same
kernels in a graph of our own; attention as two batched matmuls and a softmax (decode has one query)
took another 0.09 ms off SDPA with a mask and grouped-query heads.

The step is plain tensor code (``fullgraph=True`` traces it: a test checks that on CPU with dynamo's
eager backend), device-agnostic, and runs uncompiled on CPU, where the tests compare it with
``LlamaStepper``. The scheduler decodes through it when ``MODELHOST_LLM_COMPILE`` resolves on (each
running sequence holds a slot); ``benchmarks/llm_gpu.py`` times it on a Llama-shaped 1.2B model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from modelhost.dataplane.kvcache import left_padded
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
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._use_graphs = compile and device.type == "cuda"
        if self._use_graphs:
            self._tokens = torch.zeros(slots, dtype=torch.long, device=device)  # the graphs' inputs
            self._positions = torch.zeros(slots, dtype=torch.long, device=device)
            self._pool = torch.cuda.graph_pool_handle()
        if compile:
            # Dynamo counts recompiles per code object: every decoder (one per loaded model version)
            # and span bucket is one; the default limit of 8 would silently fall back to eager.
            dynamo_config = torch._dynamo.config
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
            self._step = torch.compile(self._forward, fullgraph=True, backend=backend)

    def prefill(self, slot: int, prompt: list[int]) -> torch.Tensor:
        """Run ``prompt`` into ``slot`` (replacing what it held); returns the last position's logits [V]."""
        return self.prefill_many([slot], [prompt])[0]

    @torch.inference_mode()
    def prefill_many(self, slots: list[int], prompts: list[list[int]]) -> torch.Tensor:
        """Run each prompt into its slot in one forward (left-padded to the longest); returns the last
        position's logits of each [len(prompts), V]. A GPU prefill is bound by kernel launches, so one
        forward for the group costs about what one prompt does."""
        lengths = [len(p) for p in prompts]
        for n in lengths:
            if not 0 < n < self.capacity:
                raise ValueError(f"a prompt of {n} tokens does not fit a slot of {self.capacity}")
        device = self.keys[0].device
        ids, mask, positions = left_padded(prompts)
        logits, layers = self.stepper(ids, mask, positions, [])
        longest = ids.shape[1]
        # Row r's real tokens sit in its last n_r columns; they go to columns [0, n_r) of its slot.
        rows = torch.tensor([r for r, n in enumerate(lengths) for _ in range(n)], device=device)
        source = torch.tensor([longest - n + c for n in lengths for c in range(n)], device=device)
        target = torch.tensor([c for n in lengths for c in range(n)], device=device)
        slot_rows = torch.tensor(
            [slot for slot, n in zip(slots, lengths, strict=True) for _ in range(n)], device=device
        )
        for index, (k, v) in enumerate(layers):
            self.keys[index][slot_rows, :, target] = k[rows, :, source]
            self.values[index][slot_rows, :, target] = v[rows, :, source]
        for slot, n in zip(slots, lengths, strict=True):
            self.lengths[slot] = n
        return logits

    def release(self, slot: int) -> None:
        """Mark ``slot`` empty (its stale cache columns are never attended to again)."""
        self.lengths[slot] = 0

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """One step for every slot: ``tokens`` [slots] are each slot's last token; returns logits
        [slots, V], valid until the next ``decode`` (on CUDA they live in the graph's memory). An empty
        slot decodes garbage at its column 0 that nobody reads, and stays empty."""
        if max(self.lengths) >= self.capacity:
            raise ValueError(f"a slot is full ({self.capacity} tokens)")
        span = self.span(max(self.lengths) + 1)
        positions = torch.tensor(self.lengths)
        if self._use_graphs:
            self._tokens.copy_(tokens, non_blocking=True)
            self._positions.copy_(positions, non_blocking=True)
            graph, logits = self._graph(span)
            graph.replay()
        else:
            device = self.keys[0].device
            logits = self._step(tokens.to(device), positions.to(device), span)
        self.lengths = [n + 1 if n else 0 for n in self.lengths]
        return logits

    def span(self, columns: int) -> int:
        """The attention span for ``columns`` written columns: ATTENTION_BUCKET times a power of two
        (a handful of compiled specialisations for any context length), at most the capacity."""
        span = ATTENTION_BUCKET
        while span < columns:
            span *= 2
        return min(span, self.capacity)

    def warm_up(self) -> None:
        """Compile and capture the step for every span up to the capacity now, so that no request waits
        for a compile (CUDA; only empty slots' column 0 is written)."""
        if not self._use_graphs:
            return
        span = 0
        while span < self.capacity:
            span = self.span(span + 1)
            with torch.inference_mode():
                self._graph(span)

    def _graph(self, span: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        """The captured step for ``span``: run twice on a side stream (compiling it), then captured.
        The runs write each slot's K/V at its position from the input buffers, as the replay after
        them does again (the same values), so capturing at any point of a decode is harmless."""
        if span not in self._graphs:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._step(self._tokens, self._positions, span)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: another thread's CUDA work (another model) does not break the capture.
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                logits = self._step(self._tokens, self._positions, span)
            self._graphs[span] = (graph, logits)
        return self._graphs[span]

    def _forward(self, tokens: torch.Tensor, positions: torch.Tensor, span: int) -> torch.Tensor:
        s = self.stepper
        batch = tokens.shape[0]
        cos = self.cos[positions][:, None, None, :]  # [S, 1, 1, D]
        sin = self.sin[positions][:, None, None, :]
        # Slot i sees the columns it has written, and the one it writes now.
        allowed = (self._columns[:span][None, :] <= positions[:, None])[:, None, None, :]
        group, scale = s.heads // s.kv_heads, s.head_dim**-0.5
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
            # One query per slot: attention as two batched matmuls over [S, kv_heads, group, ...]
            # (faster than SDPA with a mask and grouped-query heads for a single query row).
            q = q.reshape(batch, s.kv_heads, group, s.head_dim) * scale
            scores = torch.matmul(q, keys[:, :, :span].transpose(-1, -2)).float()
            probs = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1).to(q.dtype)
            attn = torch.matmul(probs, values[:, :, :span])  # [S, kv_heads, group, head_dim]
            x = x + layer.o(attn.reshape(batch, 1, -1))
            gate, up = layer.gate_up(s._rms(x, layer.norm2)).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        return s.lm_head(s._rms(x[:, -1, :], s.norm)).float()
