"""The SDK on the OpenAI-compatible routes (chat, completions, streaming, embeddings) and the task
routes (summaries, classifications, speech, translation), sync and async, against the session-scoped
apps of this folder (their models load once). The rest of the SDK: tests/sdk/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelhost import AsyncClient, Client
from modelhost.errors import InvalidInput, ModelNotFound
from modelhost.sdk.types import ChatChunk, Completion
from tests.sdk.conftest import bridged

BECKETT = Path(__file__).parent.parent / "data" / "beckett.wav"
HI = [{"role": "user", "content": "What is the capital of France?"}]


def test_chat_complete_stream_and_embed(llm_client: TestClient) -> None:
    c = Client("http://testserver", http_client=llm_client)
    answer = c.chat("smollm2", HI, max_tokens=8, temperature=0)
    assert "Paris" in answer.text and answer.usage and answer.usage.completion_tokens <= 8
    chunks = list(c.chat_stream("smollm2", HI, max_tokens=8, temperature=0, include_usage=True))
    assert all(isinstance(ch, ChatChunk) for ch in chunks)
    assert "".join(ch.text for ch in chunks) == answer.text
    assert (
        chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == answer.usage.completion_tokens
    )
    done = c.complete("smollm2", "The capital of France is", max_tokens=4, temperature=0)
    streamed = list(c.complete_stream("smollm2", "The capital of France is", max_tokens=4, temperature=0))
    assert isinstance(done, Completion) and "".join(s.text for s in streamed) == done.text
    emb = c.embed("minilm", ["a cat", "a kitten", "a tax form"])
    vectors = emb.vectors
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    b64 = c.embed("minilm", ["a cat", "a kitten", "a tax form"], encoding_format="base64").vectors
    assert np.allclose(b64, vectors, atol=1e-5)
    assert {"smollm2", "minilm"} <= {m.id for m in c.openai_models()}


def test_text_tasks_and_openai_error_shape(llm_client: TestClient) -> None:
    c = Client("http://testserver", http_client=llm_client)
    text = ("The council approved a budget for buses. The buses are electric. "
            "My cat sleeps on cars. The budget also extends tram lines.")  # fmt: skip
    summary = c.summarize("minilm", text, sentences=2)
    assert summary.mode == "extractive" and summary.sentence_count == 4 and len(summary.sentence_indexes) == 2
    labels = c.classify("minilm", ["I love this phone", "the screen broke on day one"],
                        {"positive": "a happy, satisfied review", "negative": "an angry complaint"}).labels  # fmt: skip
    assert labels == ["positive", "negative"]
    with pytest.raises(ModelNotFound) as missing:
        c.chat("nope", "hi")
    assert missing.value.status_code == 404 and missing.value.param == "model"
    assert missing.value.code == "model_not_found"
    with pytest.raises(InvalidInput) as bad:
        c.chat("smollm2", "hi", temperature=5)
    assert bad.value.param == "temperature" and bad.value.body["error"]["type"] == "invalid_request_error"


def test_async_chat_stream_and_embed(llm_client: TestClient) -> None:
    async def scenario(c: AsyncClient) -> tuple[str, str, tuple[int, ...]]:
        answer = await c.chat("smollm2", "What is the capital of France?", max_tokens=8, temperature=0)
        stream = await c.chat_stream("smollm2", "What is the capital of France?", max_tokens=8, temperature=0)
        text = "".join([chunk.text async for chunk in stream])
        return answer.text, text, (await c.embed("minilm", "hello")).vectors.shape

    answer, streamed, shape = bridged(llm_client, scenario)
    assert answer == streamed and "Paris" in answer and shape == (1, 384)


# --- speech and translation (session-scoped task app) ------------------------------------------------


def test_transcribe_and_translate(task_client: TestClient) -> None:
    c = Client("http://testserver", http_client=task_client)
    assert "fail better" in c.transcribe("whisper", BECKETT).text.lower()
    verbose = c.transcribe("whisper", BECKETT.read_bytes(), verbose=True, filename="b.wav")
    assert verbose.language == "en" and verbose.duration and verbose.segments
    out = c.translate("translate", ["The cat is on the table.", "Good morning."], source="en", target="pt")
    assert len(out.texts) == 2 and "gato" in out.texts[0].lower()

    async def scenario(ac: AsyncClient) -> str:
        return (await ac.translate("translate", "Bom dia, amigo.", source="pt", target="en")).texts[0]

    assert "friend" in bridged(task_client, scenario).lower()
