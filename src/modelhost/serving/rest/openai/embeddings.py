"""Serving logic of /v1/embeddings: inputs in order, float or base64 vectors, token usage."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import numpy as np

from modelhost.errors import InvalidInput
from modelhost.runtimes.embeddings import EmbeddingsRuntime
from modelhost.serving.rest.openai.protocol import EmbeddingRequest


def _texts(req: EmbeddingRequest, runtime: EmbeddingsRuntime) -> list[str]:
    value = req.input
    if isinstance(value, str):
        return [value]
    if all(isinstance(v, int) for v in value):
        return [runtime.model.tokenizer.decode(value)]
    return [v if isinstance(v, str) else runtime.model.tokenizer.decode(v) for v in value]


async def create_embeddings(req: EmbeddingRequest, runtime: EmbeddingsRuntime, model: str) -> dict[str, Any]:
    dim = runtime.signature.extra.get("dimensions", -1)
    if req.dimensions is not None and req.dimensions != dim:
        raise InvalidInput(
            f"model '{model}' returns {dim}-dimensional embeddings and cannot shorten them; "
            f"omit dimensions or pass {dim}",
            param="dimensions",
        )
    texts = _texts(req, runtime)
    vectors, counts = await anyio.to_thread.run_sync(runtime.embed_counted, texts)
    # Rows stay numpy arrays: the response renderer (orjson) writes float32 arrays natively, far faster
    # than building Python float lists; base64 encodes each row's little-endian bytes.
    embeddings: list[Any]
    if req.encoding_format == "base64":
        raw = np.ascontiguousarray(vectors, dtype="<f4")
        embeddings = [base64.b64encode(row.tobytes()).decode() for row in raw]
    else:
        embeddings = list(vectors)
    data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)]
    tokens = sum(counts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
