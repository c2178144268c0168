"""Sentence embeddings: a sentence-transformers directory (safetensors weights)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelhost.config import Settings
from modelhost.errors import UnsupportedFormat
from modelhost.registry.formats import SENTENCE_TRANSFORMERS
from modelhost.runtimes.base import Runtime, Signature, TensorSpec


def _dimension(path: Path) -> int:
    """The embedding size from the model's config (hidden size, or a Dense/pooling module's output)."""
    pooling = path / "1_Pooling" / "config.json"
    if pooling.is_file():
        dim = json.loads(pooling.read_text()).get("word_embedding_dimension")
        if isinstance(dim, int):
            return dim
    config = path / "config.json"
    if config.is_file():
        dim = json.loads(config.read_text()).get("hidden_size")
        if isinstance(dim, int):
            return dim
    return -1


class EmbeddingsRuntime(Runtime):
    name = "embeddings"
    formats = (SENTENCE_TRANSFORMERS,)

    @classmethod
    def inspect(cls, path: Path, settings: Settings) -> Signature:
        if not (path / "modules.json").is_file():
            raise UnsupportedFormat(f"{path.name} is not a sentence-transformers directory (no modules.json)")
        dim = _dimension(path)
        return Signature(
            inputs=(TensorSpec("text", "BYTES", (-1,)),),
            outputs=(TensorSpec("embedding", "FP32", (-1, dim)),),
            extra={"kind": "embeddings", "dimensions": dim},
        )

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer

        self.model: Any = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        self.max_tokens = int(self.model.max_seq_length or 512)

    def unload(self) -> None:
        del self.model

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text uses (special tokens included, truncated at the model's limit)."""
        encoded = self.model.tokenizer(
            list(texts), add_special_tokens=True, truncation=True, max_length=self.max_tokens
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def embed_counted(self, texts: Sequence[str], batch_size: int = 32) -> tuple[np.ndarray, list[int]]:
        """Embeddings of ``texts`` and the tokens each used, tokenizing each text once.

        The same computation as ``encode`` (length-sorted batches, the model's modules in order) without
        its generic per-call machinery, and the token counts come from the same attention mask rather
        than a second tokenizer pass.
        """
        import torch

        items = list(texts)
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        vectors = np.empty((len(items), max(0, int(self.signature.extra.get("dimensions", 0)))), np.float32)
        counts = [0] * len(items)
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                rows = order[start : start + batch_size]
                features = self.model.preprocess([items[i] for i in rows])
                lengths = features["attention_mask"].sum(dim=1).tolist()
                out = self.model.forward(features)["sentence_embedding"].float().numpy()
                if vectors.shape[1] != out.shape[1]:  # the signature did not know the dimension
                    vectors = np.empty((len(items), out.shape[1]), dtype=np.float32)
                vectors[rows] = out
                for row, n in zip(rows, lengths, strict=True):
                    counts[row] = int(n)
        return vectors, counts

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        vectors: np.ndarray = self.model.encode(
            list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=False
        )
        return vectors.astype(np.float32, copy=False)

    def predict(self, inputs: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        texts = [x.decode() if isinstance(x, bytes) else str(x) for x in inputs["text"].reshape(-1)]
        return {"embedding": self.embed(texts)}
