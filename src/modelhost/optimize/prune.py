"""Global magnitude pruning of a PyTorch MLP: the smallest |w| across all Linear weight matrices are
set to zero (biases kept). The result is still a dense safetensors file; it compresses well and is
the input for sparse kernels or further quantization."""

from __future__ import annotations

from typing import Any

from modelhost.errors import InvalidInput


def prune_magnitude(module: Any, amount: float) -> dict[str, float]:
    """Zero the fraction ``amount`` of Linear weights with the smallest magnitude, in place."""
    import torch
    from torch import nn

    if not 0 < amount < 1:
        raise InvalidInput(f"--prune takes a fraction between 0 and 1, got {amount}")
    weights = [m.weight for m in module.modules() if isinstance(m, nn.Linear)]
    if not weights:
        raise InvalidInput("--prune: the model has no linear layers to prune")
    with torch.no_grad():
        magnitudes = torch.cat([w.abs().flatten() for w in weights])
        k = int(amount * magnitudes.numel())
        threshold = magnitudes.kthvalue(max(k, 1)).values
        for w in weights:
            w.mul_((w.abs() > threshold).to(w.dtype))
        total = sum(w.numel() for w in weights)
        zeros = sum(int((w == 0).sum()) for w in weights)
    return {"sparsity": zeros / total, "weights": float(total)}
