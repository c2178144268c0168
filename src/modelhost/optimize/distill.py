"""Knowledge distillation (Hinton et al. 2015): a small PyTorch MLP student learns the teacher's
soft labels, its class probabilities softened by a temperature, on the teacher's training rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelhost.errors import InvalidInput
from modelhost.pipelines.torch import TorchFitted, fold_affine, standardise
from modelhost.runtimes import torch_arch


def distill(
    teacher_proba: np.ndarray,
    x: np.ndarray,
    classes: list[Any],
    hidden: tuple[int, ...] = (32,),
    temperature: float = 2.0,
    epochs: int = 60,
    lr: float = 0.01,
    seed: int = 0,
) -> TorchFitted:
    """Train a student on ``teacher_proba`` (rows of ``x``); KL divergence at ``temperature``."""
    import torch
    import torch.nn.functional as F

    if teacher_proba.shape[1] != len(classes):
        raise InvalidInput("--distill-from: the teacher's probabilities do not match its classes")
    if temperature <= 0:
        raise InvalidInput("--temperature must be positive")
    torch.manual_seed(seed)
    spec = torch_arch.ArchSpec(
        "mlp", x.shape[1], len(classes), hidden=hidden, output="softmax", classes=tuple(classes)
    )
    student = torch_arch.build(spec)
    mean, std = standardise(x)
    xs = torch.from_numpy(((x - mean) / std).astype(np.float32))
    # Soften the teacher: p_T ∝ p^(1/T), i.e. softmax(log p / T).
    logp = torch.log(torch.from_numpy(np.clip(teacher_proba, 1e-7, 1.0).astype(np.float32)))
    soft = torch.softmax(logp / temperature, dim=1)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(xs.shape[0], generator=g)
        for start in range(0, order.numel(), 64):
            idx = order[start : start + 64]
            opt.zero_grad()
            log_q = F.log_softmax(student(xs[idx]) / temperature, dim=1)
            # T² keeps gradient magnitudes comparable across temperatures.
            loss = F.kl_div(log_q, soft[idx], reduction="batchmean") * temperature**2
            loss.backward()
            opt.step()
    student.eval()
    fold_affine(student, mean, std)
    return TorchFitted(student, spec)
