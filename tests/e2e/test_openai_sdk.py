"""The official ``openai`` SDK against the real server started by ``modelhost demo --serve``."""

from __future__ import annotations

import httpx
import pytest
from openai import BadRequestError, NotFoundError, OpenAI

from .conftest import Server

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: Server) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_models(client: OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"smollm2", "smollm2@production", "minilm"} <= ids
    assert "iris" not in ids  # tabular models are served on /v2 only


def test_chat_and_streaming_with_usage(client: OpenAI) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    chat = client.chat.completions.create(
        model="smollm2@production", messages=messages, temperature=0, max_tokens=8
    )  # type: ignore[arg-type]
    text = chat.choices[0].message.content or ""
    assert "Paris" in text
    assert chat.usage is not None and chat.usage.completion_tokens <= 8
    chunks = list(
        client.chat.completions.create(
            model="smollm2",
            messages=messages,  # type: ignore[arg-type]
            temperature=0,
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == chat.usage.total_tokens


def test_completion_with_penalties_and_seed(client: OpenAI) -> None:
    kwargs = {
        "model": "smollm2",
        "prompt": "Once upon a time",
        "max_tokens": 4,
        "temperature": 0.8,
        "top_p": 0.9,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.5,
        "seed": 3,
    }
    a = client.completions.create(**kwargs)  # type: ignore[call-overload]
    b = client.completions.create(**kwargs)  # type: ignore[call-overload]
    assert a.choices[0].text == b.choices[0].text
    assert a.usage is not None and a.usage.prompt_tokens == 4


def test_embeddings_base64_default_of_the_sdk(client: OpenAI) -> None:
    emb = client.embeddings.create(model="minilm", input=["first", "second", "third"])
    assert [d.index for d in emb.data] == [0, 1, 2]
    assert len(emb.data[0].embedding) == 384
    assert emb.usage.prompt_tokens > 0


def test_errors_in_openai_shape(client: OpenAI, server: Server) -> None:
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(BadRequestError) as info:
        client.completions.create(model="smollm2", prompt="x", temperature=9)
    assert info.value.body["param"] == "temperature"  # type: ignore[index]
    r = httpx.post(f"{server.url}/v1/completions", json={"model": "smollm2", "prompt": "x", "functions": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "functions"


def test_client_disconnect_mid_stream_keeps_serving(server: Server, client: OpenAI) -> None:
    body = {
        "model": "smollm2",
        "prompt": "Count: 1, 2, 3,",
        "max_tokens": 200,
        "stream": True,
        "ignore_eos": True,
    }
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=60) as r:
        for i, _line in enumerate(r.iter_lines()):
            if i >= 4:
                break  # leave after a few tokens: the server must cancel the sequence
    out = client.completions.create(model="smollm2", prompt="Hello", max_tokens=2, temperature=0)
    assert out.choices[0].finish_reason == "length"
