"""The KV cache of the running batch, managed by us over transformers' cache objects.

Each row is one sequence. Rows have different lengths, so the batch cache is left-padded: row ``i``
has ``pad[i]`` masked positions before its real tokens. Joining sequences are prefilled together
(``left_padded``) and padded to the batch's length; a finished one leaves by being dropped from the batch dimension,
after which padding columns no row needs any more are cut off, so memory follows the live sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LayerKV = tuple[torch.Tensor, torch.Tensor]  # keys, values: [B, kv_heads, L, head_dim]


def left_padded(prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Input ids, attention mask and position ids [B, longest] of a prefill with each prompt
    right-aligned (its real tokens in its last columns, positions from 0); the mask is None when every
    prompt has the same length (nothing padded)."""
    lengths = [len(p) for p in prompts]
    longest = max(lengths)
    ids = torch.zeros((len(prompts), longest), dtype=torch.long)
    mask = torch.zeros_like(ids)
    positions = torch.zeros_like(ids)
    for row, (prompt, n) in enumerate(zip(prompts, lengths, strict=True)):
        ids[row, longest - n :] = torch.tensor(prompt)
        mask[row, longest - n :] = 1
        positions[row, longest - n :] = torch.arange(n)
    return ids, (mask if longest != min(lengths) else None), positions


def cache_layers(cache: object) -> list[LayerKV]:
    """The per-layer (keys, values) tensors of a transformers cache, across transformers versions."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))  # type: ignore[attr-defined]


def make_cache(layers: list[LayerKV]) -> object:
    """A transformers DynamicCache holding ``layers`` (``update`` initialises each layer)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for index, (k, v) in enumerate(layers):
        cache.update(k, v, index)
    return cache


@dataclass
class BatchKV:
    """Per-layer K/V of the running batch plus each row's left padding."""

    layers: list[LayerKV]
    pad: list[int]

    @property
    def length(self) -> int:
        return 0 if not self.layers else int(self.layers[0][0].shape[2])

    @property
    def size(self) -> int:
        return len(self.pad)

    def attention_mask(self) -> torch.Tensor:
        """[B, L] with 0 over each row's left padding."""
        positions = torch.arange(self.length)[None, :]
        return (positions >= torch.tensor(self.pad)[:, None]).long()

    def real_lengths(self) -> list[int]:
        return [self.length - p for p in self.pad]

    def append_rows(self, other: BatchKV) -> None:
        """Add ``other``'s rows at the end, left-padding whichever side is shorter."""
        if not self.layers:
            self.layers, self.pad = other.layers, list(other.pad)
            return
        target = max(self.length, other.length)
        grow_self, grow_other = target - self.length, target - other.length
        merged: list[LayerKV] = []
        for (k1, v1), (k2, v2) in zip(self.layers, other.layers, strict=True):
            merged.append(
                (
                    torch.cat([_left_pad(k1, grow_self), _left_pad(k2, grow_other)], dim=0),
                    torch.cat([_left_pad(v1, grow_self), _left_pad(v2, grow_other)], dim=0),
                )
            )
        self.layers = merged
        self.pad = [p + grow_self for p in self.pad] + [p + grow_other for p in other.pad]

    def keep_rows(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order) and cut padding columns that no kept row needs."""
        if not rows:
            self.layers, self.pad = [], []
            return
        index = torch.tensor(rows, dtype=torch.long)
        pad = [self.pad[r] for r in rows]
        cut = min(pad)
        self.layers = [
            (
                k.index_select(0, index)[:, :, cut:].contiguous(),
                v.index_select(0, index)[:, :, cut:].contiguous(),
            )
            for k, v in self.layers
        ]
        self.pad = [p - cut for p in pad]


def _left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
    if n == 0:
        return t
    shape = list(t.shape)
    shape[2] = n
    return torch.cat([t.new_zeros(shape), t], dim=2)
