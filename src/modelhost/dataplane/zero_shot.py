"""Zero-shot text classification over sentence embeddings: each label is described in words; a text
gets the label whose description is closest (cosine), with softmax scores over all labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modelhost.errors import InvalidInput
from modelhost.runtimes.embeddings import EmbeddingsRuntime

# Cosine similarities of MiniLM-like models sit in a narrow band; scaling them before the softmax
# (as CLIP does with its logit scale) makes the scores usable as confidences.
SCALE = 20.0


@dataclass(frozen=True)
class Classification:
    label: str
    scores: dict[str, float]


def classify(
    runtime: EmbeddingsRuntime, texts: Sequence[str], labels: Mapping[str, str]
) -> list[Classification]:
    """``labels`` maps each label to its description (the label itself when none is given)."""
    if len(labels) < 2:
        raise InvalidInput("give at least two labels", param="labels")
    if any(not t.strip() for t in texts):
        raise InvalidInput("input must not contain empty texts", param="input")
    names = list(labels)
    return from_vectors(runtime.embed(inputs(texts, labels)), len(texts), names)


def inputs(texts: Sequence[str], labels: Mapping[str, str]) -> list[str]:
    """What to embed: the texts, then each label's description."""
    return [*texts, *(labels[n] or n for n in labels)]


def from_vectors(vectors: np.ndarray, n_texts: int, names: Sequence[str]) -> list[Classification]:
    """Classify from the embeddings of ``inputs(texts, labels)``."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = unit[:n_texts] @ unit[n_texts:].T
    logits = SCALE * sims
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return [
        Classification(
            names[int(row.argmax())], {n: round(float(p), 4) for n, p in zip(names, row, strict=True)}
        )
        for row in probs
    ]
